// schedule.h — learning-rate schedules as pure functions of the step.
// `step` is the 0-based index of the update about to be applied, i.e. the optimizer's
// step_count() before step(): the trainer does opt.set_lr(lr_at(s, opt.step_count())); opt.step();
//
// Exact values (P = peak_lr, M = min_lr, W = warmup, N = total):
//   warm-up, 0 <= step < W:   P * (step + 1) / W     step 0 -> P/W, step W-1 -> P
//   cosine,  W <= step <= N:  M + (P - M) * (1 + cos(pi * (step - W) / (N - W))) / 2
//                             step W -> P, midpoint (W+N)/2 -> (P + M)/2 (to rounding), step N -> M
//   linear,  W <= step <= N:  P + (M - P) * (step - W) / (N - W)      (same boundary values)
//   past the end, step > N:   M (cosine and linear); when N == W the decay has no length
//                             and every step >= W gives M
//   constant: P for every step >= W (N and M are ignored)
//   plateau:  P for every step >= W, which the caller multiplies by a ReduceLROnPlateau's
//             scale (optim/plateau.h: cut on the validation loss)
// With W == 0 there is no warm-up: step 0 is already P (cosine/linear start at their peak).
#pragma once
#include <cstdint>
#include <string>

namespace skein {

enum class LrDecay { cosine, linear, constant, plateau };

struct LrSchedule {
  double peak_lr = 3e-4;
  double min_lr = 0.0;
  int64_t warmup = 0;   // steps of linear warm-up
  int64_t total = 0;    // the step at which decay reaches min_lr (>= warmup unless constant)
  LrDecay decay = LrDecay::cosine;
};

// The learning rate for update `step` (>= 0). Throws skein::Error on an invalid schedule.
double lr_at(const LrSchedule& schedule, int64_t step);

// "cosine" | "linear" | "constant" | "plateau" (for configs); throws skein::Error naming the choices.
LrDecay parse_lr_decay(const std::string& name);
const char* lr_decay_name(LrDecay decay);

}  // namespace skein
