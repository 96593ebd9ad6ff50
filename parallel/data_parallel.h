// data_parallel.h — data parallelism: GradReducer (bucketed gradient all-reduce, averaged
// over the data-parallel group, optionally overlapped with backward), the loss normalisation that makes dp ranks match one
// process, global gradient-norm clipping over a group, and parameter broadcast.
// reference: ../shared/research/parallel_distill.md §3.1 (PyTorch DDP reducer: 25 MiB buckets,
// reverse registration order, launched in bucket order) and §3.4 (loss normalisation).
//
// Loss normalisation. HybridLM::loss is the mean over this rank's non-ignored tokens,
// loss_r = S_r / n_r. One process on the whole global batch computes S / N with
// S = Σ_r S_r, N = Σ_r n_r, whose gradient is Σ_r ∇S_r / N. GradReducer AVERAGES gradients
// over the group (p ranks): (1/p) Σ_r ∇(c_r loss_r) = Σ_r c_r ∇S_r / (p n_r), which equals
// Σ_r ∇S_r / N exactly when every rank backpropagates
//     c_r · loss_r   with   c_r = p · n_r / N        (global_token_scale: one all-reduce of n_r).
// Plain averaging (c_r = 1) is right only when every rank has the same n_r; with ignored
// targets (-100) spread unevenly it weights each rank's tokens by 1 / n_r instead (the
// Megatron / SkyRL bug class of §3.4). With gradient accumulation over M micro-batches the
// same holds with n_{r,m} and N = Σ_{r,m} n_{r,m}: backprop c_{r,m} loss_{r,m},
// c_{r,m} = p · n_{r,m} / N. The global mean loss for logging is global_mean_loss().
//
// Clipping. After GradReducer::reduce every rank holds the full averaged gradient, so the
// local clip_grad_norm (optim/clip.h) already sees the global norm. When ranks hold disjoint
// pieces (ZeRO-1 shards, parallel/zero.h; tensor-parallel weights) use global_grad_norm /
// clip_grad_norm_global with the pieces each rank owns.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>
#include "core/autograd.h"
#include "optim/optimizer.h"
#include "parallel/communicator.h"

namespace skein {

struct DataParallelOptions {
  // Bytes per bucket (PyTorch DDP's default, 25 MiB). A parameter larger than the cap gets
  // a bucket of its own; a dtype change starts a new bucket.
  int64_t bucket_bytes = 25 << 20;
  // true: one iall_reduce per bucket on a private duplicate of the communicator (so its
  // order never interleaves with the model's own sp / tp collectives), launched as early as
  // possible: during backward when the reducer was arm()ed (a bucket starts once the
  // autograd gradient-ready hook reported all its parameters final, and every earlier
  // bucket started). A step that was not armed reduces with blocking all-reduces (nothing
  // would run beside non-blocking ones, and Open MPI's are ~2x slower). Open MPI progresses a
  // non-blocking collective only inside MPI calls on these 1-thread ranks, so every hook call
  // also tests the pending buckets. false: a blocking all_reduce per bucket in reduce().
  // Both give the same averages (up to MPI's summation order: bit-equal with 2 ranks).
  bool overlap = false;
  // Benchmark only (parallel.bench_skip_comm): every MPI call of the reduce is skipped (the
  // packing and the 1/p scaling still run), so the ranks' gradients are NOT averaged. The
  // step time with it, beside the same step with communication, measures what the
  // communication costs and how much of it overlap hides.
  bool skip_comm = false;
  // The dtype gradients travel in (parallel.grad_reduce_dtype): f32, or bf16, which halves
  // the bytes on the wire. bf16: each packed f32 bucket (ZeRO-1: its flat gradient) is
  // rounded to bf16 (core/bf16.h, nearest-even), summed over the group with f32 accumulation
  // of each pair (communicator.h: the bf16 sum) and widened back to f32 before the 1/p
  // average, so each element of the average carries 2p - 1 roundings of relative size
  // <= 2^-8 (bf16's unit roundoff: one per rank's operand, p - 1 in the sum). f32 parameters
  // only. A group of one sends nothing and rounds nothing.
  DType reduce_dtype = DType::f32;
};

class GradReducer {
 public:
  // params: this rank's replica of the model (Module::named_parameters()), the same list on
  // every rank of comm, which must outlive the reducer. Buckets are laid out once, here:
  // parameters in REVERSE registration order (the order backward finishes them).
  // Collective over comm (layout check; with overlap, the split of the private communicator).
  GradReducer(Communicator& comm, NamedParams params, DataParallelOptions options = {});
  ~GradReducer();

  // Overlap only (a no-op otherwise): call right before the backward of the step's LAST
  // micro-batch. Installs the autograd gradient-ready hook until reduce(): buckets are packed
  // and their all-reduces launched, in bucket order, as their gradients become final. A
  // parameter finished twice while armed (a second backward) is an error: its bucket may
  // already be on the wire.
  void arm();
  // Replaces every gradient by its average over comm. Call on every rank after backward
  // (after the last micro-batch when accumulating): launches the buckets not launched yet
  // (all of them unless arm()ed; parameters the hook never reported: unused on this rank,
  // or inside activation recomputation), then waits and unpacks in bucket order. A
  // parameter with a gradient on some ranks only counts as zero on the others (its averaged
  // gradient appears everywhere); one with no gradient on any rank keeps none (AdamW skips
  // it, as it would on one process).
  void reduce();

  size_t num_buckets() const { return buckets_.size(); }
  // Indices into params() of bucket b, in packing order.
  const std::vector<size_t>& bucket(size_t b) const { return buckets_[b].params; }
  int64_t bucket_bytes(size_t b) const;
  const NamedParams& params() const { return params_; }
  // Of the last reduce: buckets launched during backward (by the hook), seconds the hook
  // spent (packing, launching, testing) inside backward, and seconds reduce() took (packing
  // the buckets still unlaunched, waiting, unpacking).
  struct Overlap {
    size_t launched_in_backward = 0;
    double comm_seconds_in_backward = 0, comm_seconds_in_reduce = 0;
  };
  const Overlap& last_overlap() const { return last_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;  // element offset of each parameter in buffer
    Tensor buffer;                 // [numel] flat, allocated once
    Tensor wire;                   // [numel] bf16: what travels with reduce_dtype bf16 (else undefined)
    size_t ready = 0;              // parameters reported final since arm()
  };
  void on_ready(TensorImpl* leaf);
  void launch(size_t b);           // packs bucket b, starts its reduce (or runs it, blocking)
  void poll();                     // tests the pending requests (MPI progress)
  Communicator& comm_;
  std::unique_ptr<Communicator> own_;  // overlap: private duplicate of comm_ for the buckets
  NamedParams params_;
  DataParallelOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;                  // per parameter
  std::unordered_map<TensorImpl*, size_t> index_;  // parameter impl -> index into params_
  std::vector<char> reported_;                     // per parameter, since arm()
  std::vector<Request> pending_;                   // per launched bucket
  size_t launched_ = 0, oldest_ = 0;               // buckets launched; first maybe in flight
  bool armed_ = false;                             // arm() was called this step
  std::unique_ptr<GradReadyHookGuard> hook_;
  Overlap last_;
};

// Number of targets != ignore_index.  targets: [...] integer ids
int64_t count_targets(const Tensor& targets, int64_t ignore_index = -100);

struct TokenScale {
  int64_t local = 0;    // n_r: this rank's non-ignored tokens
  int64_t global = 0;   // N: Σ over the group
  double scale = 0.0;   // c_r = size · n_r / N (0 when N == 0): multiply this rank's mean loss by it
};
// Collective over comm (the group GradReducer averages over): one all-reduce of n_r.
TokenScale global_token_scale(Communicator& comm, int64_t local_count);

// The global mean Σ_r local_mean_r · n_r / N over comm (for logging; 0 when N == 0).
double global_mean_loss(Communicator& comm, double local_mean, int64_t local_count);

// sqrt of the sum over comm of grad_squared_norm(owned): each rank lists the parameters
// (or pieces) whose gradients it owns, each gradient owned by exactly one rank of comm.
double global_grad_norm(Communicator& comm, const std::vector<Tensor>& owned);
// Clips `params` (this rank's gradients) with the norm global_grad_norm(comm, owned);
// returns the norm before clipping (NaN / Inf returned as is, nothing scaled).
double clip_grad_norm_global(Communicator& comm, const std::vector<Tensor>& params,
                             const std::vector<Tensor>& owned, double max_norm);

// Copies root's value of every parameter into every rank's (e.g. after a rank-0-only load).
void broadcast_parameters(Communicator& comm, const NamedParams& params, int root = 0);

}  // namespace skein
