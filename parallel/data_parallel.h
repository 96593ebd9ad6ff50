// data_parallel.h — data parallelism: GradReducer (bucketed gradient all-reduce, averaged
// over the data-parallel group), the loss normalisation that makes dp ranks match one
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
#include <vector>
#include "optim/optimizer.h"
#include "parallel/communicator.h"

namespace skein {

struct DataParallelOptions {
  // Bytes per bucket (PyTorch DDP's default, 25 MiB). A parameter larger than the cap gets
  // a bucket of its own; a dtype change starts a new bucket.
  int64_t bucket_bytes = 25 << 20;
  // true: an iall_reduce per bucket, started as soon as the bucket is packed and progressed
  // (test()) while the next one packs: the structure that will overlap communication with
  // backward once autograd has gradient hooks. false (default): a blocking all_reduce per
  // bucket, as each fills. Today nothing else runs during the reduce, and Open MPI 4.1's
  // non-blocking collectives (libnbc) move data at about half the speed of its blocking
  // ones: 85 MB of gradients on 2 ranks take 72 ms overlapped vs 36 ms blocking
  // (tests/parallel/bench.cpp). Both give the same averages (up to MPI's summation order).
  bool overlap = false;
};

class GradReducer {
 public:
  // params: this rank's replica of the model (Module::named_parameters()), the same list on
  // every rank of comm, which must outlive the reducer. Buckets are laid out once, here:
  // parameters in REVERSE registration order (the order backward finishes them).
  GradReducer(Communicator& comm, NamedParams params, DataParallelOptions options = {});

  // Replaces every gradient by its average over comm. Call on every rank after backward
  // (after the last micro-batch when accumulating). Bucket by bucket: pack the gradients,
  // reduce the bucket as soon as it is full (overlap: start an iall_reduce and keep calling
  // test() on the oldest pending bucket while packing the next — Open MPI progresses only
  // inside MPI calls), then wait and unpack in order. A parameter with a gradient on some
  // ranks only counts as zero on the others (its averaged gradient appears everywhere); one
  // with no gradient on any rank keeps none (AdamW skips it, as it would on one process).
  void reduce();

  size_t num_buckets() const { return buckets_.size(); }
  // Indices into params() of bucket b, in packing order.
  const std::vector<size_t>& bucket(size_t b) const { return buckets_[b].params; }
  int64_t bucket_bytes(size_t b) const;
  const NamedParams& params() const { return params_; }

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;  // element offset of each parameter in buffer
    Tensor buffer;                 // [numel] flat, allocated once
  };
  Communicator& comm_;
  NamedParams params_;
  bool overlap_;
  std::vector<Bucket> buckets_;
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
