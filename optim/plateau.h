// plateau.h — ReduceLROnPlateau: multiplies the learning rate by `factor` once a monitored
// metric (the validation loss) has not improved for more than `patience` evaluations, as
// PyTorch's torch.optim.lr_scheduler.ReduceLROnPlateau does in mode "min", threshold_mode
// "rel" (what LoLCATs' distillation configs use: factor 0.1, patience 10). It keeps a scale in
// (0, 1] that the caller multiplies into its schedule's rate (optim.schedule = plateau: constant
// after warm-up, times this scale).
// reference: pytorch/pytorch torch/optim/lr_scheduler.py (ReduceLROnPlateau.step, _reduce_lr,
// is_better); HazyResearch/lolcats configs/experiment/*.yaml (reduce_lr_on_plateau).
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>

namespace skein {

struct PlateauOptions {
  double factor = 0.1;       // the scale is multiplied by it on a plateau (0 < factor < 1)
  int64_t patience = 10;     // evaluations without improvement tolerated
  double threshold = 1e-4;   // an improvement: metric < best * (1 - threshold)
  int64_t cooldown = 0;      // evaluations after a cut during which bad ones are not counted
  double min_scale = 0.0;    // the scale never goes below it
};

class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(PlateauOptions o = {});  // throws naming a bad option
  // Records one evaluation of the metric; returns the scale for the steps that follow.
  double step(double metric);
  double scale() const { return scale_; }
  int64_t bad_evaluations() const { return bad_; }
  // The state as checkpoint counters (int64; doubles bit-cast) under `prefix`, and back.
  void save(std::map<std::string, int64_t>& counters, const std::string& prefix) const;
  void load(const std::map<std::string, int64_t>& counters, const std::string& prefix);

 private:
  PlateauOptions o_;
  double best_ = std::numeric_limits<double>::infinity();
  int64_t bad_ = 0, cooldown_left_ = 0;
  double scale_ = 1.0;
};

}  // namespace skein
