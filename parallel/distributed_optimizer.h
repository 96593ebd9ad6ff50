// distributed_optimizer.h — DistributedOptimizer: what the trainer steps on a process grid.
// It hides the two ways gradients become updates:
//   plain   GradReducer (average over the dp × sp group) + the optimizer on every replica;
//   ZeRO-1  Zero1AdamW (reduce-scatter, AdamW on this rank's shard, all-gather parameters);
// and clips with the norm of the WHOLE model: under tensor parallelism a sharded gradient
// counts on its tp rank and a replicated one once (parallel/tensor_parallel.h).
// The step on every rank: zero_grad, [arm,] backward, reduce, clip, step.
#pragma once
#include <map>
#include <memory>
#include <string>
#include "layers/module.h"
#include "optim/optimizer.h"
#include "parallel/data_parallel.h"
#include "parallel/grid.h"
#include "parallel/zero.h"

namespace skein {

class DistributedOptimizer {
 public:
  // `local`: the optimizer over this rank's parameters (the plain path) or null with
  // zero1 = true (then AdamW with `adamw` options runs sharded). `splits`: the model's
  // Module::tp_splits(). The grid and the parameters must outlive it.
  DistributedOptimizer(const ProcessGrid& grid, const NamedParams& params, std::map<std::string, TpSplit> splits,
                       std::unique_ptr<Optimizer> local, bool zero1, const AdamWOptions& adamw = {},
                       const DataParallelOptions& dp = {});

  void zero_grad();
  double lr() const;
  void set_lr(double lr);
  // Right before the backward of the step's last micro-batch: with dp.overlap the gradient
  // buckets are all-reduced during that backward (GradReducer::arm; ZeRO-1: no overlap yet).
  void arm();
  // Averages the gradients over the dp × sp group (ZeRO-1: into this rank's shard).
  void reduce();
  // Clips the whole model's gradient norm to max_norm (no clipping when max_norm <= 0);
  // returns the norm before clipping (NaN / Inf returned as is).
  double clip(double max_norm);
  void step();

  // The optimizer state in plain AdamW / SGD layout over this rank's parameters (ZeRO-1
  // gathers its shards: collective over the dp × sp group).
  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  const ProcessGrid& grid_;
  NamedParams params_;
  std::map<std::string, TpSplit> splits_;
  std::unique_ptr<Optimizer> local_;
  std::unique_ptr<GradReducer> reducer_;
  std::unique_ptr<Zero1AdamW> zero_;
};

}  // namespace skein
