// schedule.cpp — warm-up then cosine / linear / constant learning rate (see schedule.h).
#include "optim/schedule.h"
#include <cmath>
#include <numbers>
#include "core/error.h"

namespace skein {

double lr_at(const LrSchedule& s, int64_t step) {
  SKEIN_CHECK(step >= 0, "lr_at: step must be >= 0, got ", step);
  SKEIN_CHECK(std::isfinite(s.peak_lr) && s.peak_lr >= 0, "lr_at: peak_lr must be finite and >= 0, got ", s.peak_lr);
  SKEIN_CHECK(s.warmup >= 0, "lr_at: warmup must be >= 0, got ", s.warmup);
  if (step < s.warmup) return s.peak_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup);
  if (s.decay == LrDecay::constant || s.decay == LrDecay::plateau) return s.peak_lr;

  SKEIN_CHECK(std::isfinite(s.min_lr) && s.min_lr >= 0 && s.min_lr <= s.peak_lr,
              "lr_at: min_lr must lie in [0, peak_lr = ", s.peak_lr, "], got ", s.min_lr);
  SKEIN_CHECK(s.total >= s.warmup, "lr_at: total (", s.total, ") must be >= warmup (", s.warmup, ")");
  if (step >= s.total) return s.min_lr;
  const double progress = static_cast<double>(step - s.warmup) / static_cast<double>(s.total - s.warmup);
  if (s.decay == LrDecay::linear) return s.peak_lr + (s.min_lr - s.peak_lr) * progress;
  return s.min_lr + (s.peak_lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

LrDecay parse_lr_decay(const std::string& name) {
  if (name == "cosine") return LrDecay::cosine;
  if (name == "linear") return LrDecay::linear;
  if (name == "constant") return LrDecay::constant;
  if (name == "plateau") return LrDecay::plateau;
  SKEIN_CHECK(false, "lr schedule '", name, "' is unknown (choose cosine, linear, constant or plateau)");
  return LrDecay::constant;
}

const char* lr_decay_name(LrDecay decay) {
  switch (decay) {
    case LrDecay::cosine: return "cosine";
    case LrDecay::linear: return "linear";
    case LrDecay::constant: return "constant";
    case LrDecay::plateau: return "plateau";
  }
  return "?";
}

}  // namespace skein
