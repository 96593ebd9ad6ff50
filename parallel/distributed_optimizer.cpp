// distributed_optimizer.cpp — DistributedOptimizer (see distributed_optimizer.h).
#include "parallel/distributed_optimizer.h"
#include "parallel/tensor_parallel.h"

namespace skein {

DistributedOptimizer::DistributedOptimizer(const ProcessGrid& grid, const NamedParams& params,
                                           std::map<std::string, TpSplit> splits, std::unique_ptr<Optimizer> local,
                                           bool zero1, const AdamWOptions& adamw, const DataParallelOptions& dp)
    : grid_(grid), params_(params), splits_(std::move(splits)), local_(std::move(local)) {
  SKEIN_CHECK(!zero1 || grid.tp() == 1, "parallel.zero1 with parallel.tp = ", grid.tp(),
              ": ZeRO-1 shards over dp x sp only; use it with tp = 1");
  if (zero1) {
    zero_ = std::make_unique<Zero1AdamW>(grid.dp_sp_comm(), params_, adamw);
  } else {
    SKEIN_ASSERT(local_ != nullptr, "DistributedOptimizer: no optimizer for the plain path");
    if (grid.dp() * grid.sp() > 1) reducer_ = std::make_unique<GradReducer>(grid.dp_sp_comm(), params_, dp);
  }
}

void DistributedOptimizer::zero_grad() {
  if (zero_) zero_->zero_grad();
  else local_->zero_grad();
}

double DistributedOptimizer::lr() const { return zero_ ? zero_->lr() : local_->lr(); }

void DistributedOptimizer::set_lr(double lr) {
  if (zero_) zero_->set_lr(lr);
  else local_->set_lr(lr);
}

void DistributedOptimizer::arm() {
  if (reducer_) reducer_->arm();
}

void DistributedOptimizer::reduce() {
  if (zero_) zero_->reduce_grads();
  else if (reducer_) reducer_->reduce();
}

double DistributedOptimizer::clip(double max_norm) {
  const double limit = max_norm > 0 ? max_norm : 1e300;  // <= 0: measure only
  if (zero_) return zero_->clip_grad_norm(limit);
  return clip_grad_norm_tp(params_, splits_, grid_.tp_comm(), limit);
}

void DistributedOptimizer::step() {
  if (zero_) zero_->step();
  else local_->step();
}

std::map<std::string, Tensor> DistributedOptimizer::state_dict() const {
  return zero_ ? zero_->state_dict() : local_->state_dict();
}

void DistributedOptimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  if (zero_) zero_->load_state_dict(state);
  else local_->load_state_dict(state);
}

}  // namespace skein
