// zero.h — Zero1AdamW: ZeRO stage 1 (optimizer state sharded over the data-parallel group)
// around AdamW. All parameters are laid out end to end in registration order in one flat
// vector, padded with zeros to a multiple of p (the group size); rank r owns elements
// [r S, (r + 1) S), S = padded / p. One step:
//   reduce_grads(): flat gradient -> reduce_scatter (sum) -> this rank's shard, times 1/p
//                   (the same average GradReducer computes)
//   step():         AdamW on the shard only (its m and v exist only for the shard: memory
//                   2·numel/p instead of 2·numel) -> all_gather of the updated shards into
//                   every parameter.
// The parameters then equal those of GradReducer + AdamW on every rank (up to the order MPI
// sums in: bit-equal with 2 ranks).
// Overlap (DataParallelOptions::overlap, arm() before the last backward): the reduce-scatter
// is cut at the shard boundaries into one reduce per rank's shard (rank j is the root of
// elements [j S, (j + 1) S)), launched on a private communicator from the autograd
// gradient-ready hook as soon as every parameter overlapping that shard is final, last shard
// first (backward finishes the last-registered parameters first), the same order on every
// rank. The same sums (bit-equal with 2 ranks); the bytes are a reduce-scatter's plus the
// small gather step of each reduce. A step that was not armed uses the one blocking
// reduce-scatter. Clipping uses the global norm, an all-reduce of the
// shards' squared norms (each element owned by one rank).
// bf16 reduce (DataParallelOptions::reduce_dtype, parallel.grad_reduce_dtype=bf16): the flat
// gradient (overlap: each shard's slice, as it launches) is rounded to bf16, reduce-scattered
// (or reduced per shard) with the f32-accumulating bf16 sum, and the shard widened back to
// f32 before the 1/p: the same numbers as GradReducer's bf16 buckets (bit-equal with 2 ranks).
// reference: ../shared/research/parallel_distill.md §3.2 (Megatron distributed optimizer,
// nanotron ZeroDistributedOptimizer); Rajbhandari et al., "ZeRO", SC 2020.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <unordered_map>
#include "core/autograd.h"
#include "optim/adamw.h"
#include "parallel/communicator.h"
#include "parallel/data_parallel.h"

namespace skein {

class Zero1AdamW {
 public:
  // params: this rank's replica (the same list, same dtype, on every rank of comm, which
  // must outlive the optimizer). Decay is decided per whole parameter by options.decay,
  // as plain AdamW does.
  // dp: overlap, skip_comm and reduce_dtype as for GradReducer (bucket_bytes unused: the
  // shards are the buckets). Collective over comm.
  Zero1AdamW(Communicator& comm, NamedParams params, AdamWOptions options = {}, const DataParallelOptions& dp = {});
  ~Zero1AdamW();

  // Overlap only (a no-op otherwise): right before the backward of the step's last
  // micro-batch; shard reduces start from the gradient-ready hook until reduce_grads().
  void arm();
  // Shard reduces the last reduce_grads() found already started from backward (overlap).
  int launched_in_backward() const { return launched_in_backward_; }

  // Reduce-scatters the parameters' gradients into this rank's averaged shard. step() and
  // clip_grad_norm() call it when it has not run since the last step. The parameters' own
  // .grad keep this rank's unreduced gradients (zero_grad() clears them).
  void reduce_grads();
  // The global L2 norm of the averaged gradient; scales the shard to max_norm when above it
  // (as clip_grads_to_norm does). Returns the norm before clipping.
  double clip_grad_norm(double max_norm);
  // AdamW on this rank's shard, then all-gathers the parameters. Parameters with no
  // gradient on any rank are skipped, as AdamW skips them.
  void step();
  void zero_grad();

  double lr() const { return shard_opt_->lr(); }
  void set_lr(double lr) { shard_opt_->set_lr(lr); }
  int64_t step_count() const { return shard_opt_->step_count(); }
  const NamedParams& params() const { return params_; }
  int64_t numel() const { return numel_; }            // total parameter elements
  int64_t shard_numel() const { return shard_numel_; } // S: elements per rank (padded)
  // The AdamW over this rank's pieces: one 1-D piece per parameter that overlaps the shard,
  // named like the parameter (its state_dict is this rank's shard of the state).
  const AdamW& shard_optimizer() const { return *shard_opt_; }

  // The whole state in plain AdamW's layout and keys (collective; every rank gets it all):
  // checkpoints are interchangeable between Zero1AdamW and AdamW, and between group sizes.
  // Under tensor parallelism (comm = ProcessGrid::dp_sp_comm()) it is the state of this tp
  // rank's parameter shards, what save_parallel_checkpoint (launch/checkpoint.h) takes and
  // load_parallel_checkpoint gives back re-sharded for load_state_dict.
  std::map<std::string, Tensor> state_dict() const;
  // Loads a dict in AdamW's layout (e.g. from state_dict() or AdamW::state_dict()), keeping
  // this rank's shard. Every rank passes the same dict.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  struct Piece {
    size_t param;      // index into params_
    int64_t begin;     // offset of the piece in the parameter (elements)
    int64_t length;
    int64_t shard_at;  // offset of the piece in the shard
  };
  Communicator& comm_;
  NamedParams params_;
  std::vector<int64_t> offsets_;  // flat offset of each parameter
  int64_t numel_ = 0, shard_numel_ = 0;
  DType dtype_ = DType::f32;
  std::vector<Piece> pieces_;
  Tensor flat_grad_;    // [p S] this rank's packed gradients
  Tensor flat_param_;   // [p S] the all-gather target
  Tensor shard_grad_;   // [S]
  Tensor flat_wire_;    // [p S] bf16: flat_grad_ rounded (reduce_dtype bf16; else undefined)
  Tensor shard_wire_;   // [S] bf16: the reduced shard, before widening
  Tensor shard_param_;  // [S] master values of the shard; pieces are views into it
  std::vector<Tensor> piece_tensors_;
  std::unique_ptr<AdamW> shard_opt_;
  bool reduced_ = false;
  // overlap
  void on_ready(TensorImpl* leaf);
  void launch_next();  // the reduce of shard size - 1 - launched_
  std::unique_ptr<Communicator> own_;               // private duplicate of comm_
  bool skip_comm_ = false;
  std::vector<std::vector<size_t>> shard_params_;   // per shard: the parameters overlapping it
  std::vector<size_t> shard_ready_;                 // per shard: of those, reported since arm()
  std::vector<char> reported_;                      // per parameter
  std::unordered_map<TensorImpl*, size_t> index_;
  std::vector<Request> pending_;
  int launched_ = 0, launched_in_backward_ = 0;
  std::unique_ptr<GradReadyHookGuard> hook_;
};

}  // namespace skein
