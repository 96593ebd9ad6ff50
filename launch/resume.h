// resume.h — continuing a run from a checkpoint: `--resume auto` takes the newest checkpoint
// of the run that verifies (checksums, finite values; see launch/checkpoint.h), saying which it
// skipped and why; `--resume <folder>` takes that one or fails. The checkpoint's stored config
// must compute the same function as the resuming run's (launch/checkpoint_verify.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "configs/config.h"
#include "data/loader.h"
#include "layers/model.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/grid.h"

namespace skein {

struct Resumed {
  int64_t step = 0;                 // 0: a fresh start
  std::string dir;                  // the checkpoint loaded ("" none)
  std::vector<std::string> notes;   // one line per checkpoint skipped
};

// Collective over grid.world(): every rank loads its part of the same checkpoint (a checkpoint
// is skipped when it fails to verify on ANY rank). resume: "" (fresh), "auto" (the newest of
// `root` that verifies; none: a fresh start; all damaged: an error listing each) or a
// checkpoint folder. Loads model, optimizer and data cursor.
Resumed resume_run(const std::string& resume, const std::string& root, const Config& cfg, const ProcessGrid& grid,
                   HybridLM& model, DistributedOptimizer& opt, BatchSource& data);

}  // namespace skein
