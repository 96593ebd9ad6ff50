// checkpoint.h — one folder per checkpoint (`<root>/ckpt-000200/state.h5`): parameters by
// dotted name, optimizer state, step, counters (RNG, data cursor), and the resolved config.
// Written under a temporary name and renamed into place, so a crash or a full disk never
// damages the previous checkpoint; the newest K are kept; `latest_checkpoint` finds the
// newest complete one (what `--resume auto` loads).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include "core/tensor.h"

namespace skein {

struct CheckpointState {
  int64_t step = 0;
  std::map<std::string, Tensor> model;      // Module::state_dict()
  std::map<std::string, Tensor> optimizer;  // Optimizer::state_dict()
  std::map<std::string, int64_t> counters;  // e.g. "rng.seed", "data.epoch", "data.position"
  std::string config_yaml;                  // the resolved config of the run
};

std::string checkpoint_name(int64_t step);  // "ckpt-000200"
// Writes <root>/<checkpoint_name(step)>/ atomically. `before_commit` (tests only) runs
// after everything is written and synced, just before the rename that publishes it.
std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const std::function<void()>& before_commit = nullptr);
// Reads a checkpoint folder (or its state.h5); errors name the file and the dataset.
CheckpointState load_checkpoint(const std::string& dir);
// The newest complete checkpoint folder under root, or "" when there is none.
std::string latest_checkpoint(const std::string& root);
// Deletes all but the newest `keep` checkpoints (and stale temporary folders).
void prune_checkpoints(const std::string& root, int64_t keep);

}  // namespace skein
