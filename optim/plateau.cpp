// plateau.cpp — ReduceLROnPlateau (see plateau.h), step for step PyTorch's.
#include "optim/plateau.h"
#include <bit>
#include <cmath>
#include "core/error.h"

namespace skein {

ReduceLROnPlateau::ReduceLROnPlateau(PlateauOptions o) : o_(o) {
  SKEIN_CHECK(o.factor > 0 && o.factor < 1, "optim.plateau_factor must lie in (0, 1), got ", o.factor);
  SKEIN_CHECK(o.patience >= 0, "optim.plateau_patience must be >= 0, got ", o.patience);
  SKEIN_CHECK(o.threshold >= 0 && o.threshold < 1, "optim.plateau_threshold must lie in [0, 1), got ", o.threshold);
  SKEIN_CHECK(o.cooldown >= 0, "optim.plateau_cooldown must be >= 0, got ", o.cooldown);
  SKEIN_CHECK(o.min_scale >= 0 && o.min_scale <= 1, "ReduceLROnPlateau: min_scale must lie in [0, 1], got ", o.min_scale);
}

double ReduceLROnPlateau::step(double metric) {
  if (metric < best_ * (1.0 - o_.threshold)) {  // is_better, mode min, threshold_mode rel
    best_ = metric;
    bad_ = 0;
  } else {
    ++bad_;
  }
  if (cooldown_left_ > 0) {  // in cooldown: bad evaluations are ignored
    --cooldown_left_;
    bad_ = 0;
  }
  if (bad_ > o_.patience) {
    const double next = std::max(scale_ * o_.factor, o_.min_scale);
    if (scale_ - next > 1e-8 * scale_) scale_ = next;  // PyTorch's eps: no change below it
    cooldown_left_ = o_.cooldown;
    bad_ = 0;
  }
  return scale_;
}

void ReduceLROnPlateau::save(std::map<std::string, int64_t>& c, const std::string& prefix) const {
  c[prefix + "best"] = std::bit_cast<int64_t>(best_);
  c[prefix + "scale"] = std::bit_cast<int64_t>(scale_);
  c[prefix + "bad"] = bad_;
  c[prefix + "cooldown_left"] = cooldown_left_;
}

void ReduceLROnPlateau::load(const std::map<std::string, int64_t>& c, const std::string& prefix) {
  for (const char* k : {"best", "scale", "bad", "cooldown_left"})
    SKEIN_CHECK(c.count(prefix + k), "ReduceLROnPlateau: the checkpoint has no counter '", prefix, k,
                "' (it was written without optim.schedule=plateau)");
  best_ = std::bit_cast<double>(c.at(prefix + "best"));
  scale_ = std::bit_cast<double>(c.at(prefix + "scale"));
  bad_ = c.at(prefix + "bad");
  cooldown_left_ = c.at(prefix + "cooldown_left");
}

}  // namespace skein
