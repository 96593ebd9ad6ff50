// data_parallel.cpp — GradReducer (bucketed, overlapped gradient all-reduce), the
// global-token loss scale, grid-aware norm clipping and parameter broadcast.
#include "parallel/data_parallel.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include "core/autograd.h"
#include "core/ops.h"
#include "optim/clip.h"
#include "parallel/flat.h"

namespace skein {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

GradReducer::GradReducer(Communicator& comm, NamedParams params, DataParallelOptions options)
    : comm_(comm), params_(std::move(params)), options_(options) {
  SKEIN_CHECK(comm_.device() == Device::cpu, "GradReducer: the ", comm_.backend_name(),
              " communicator works on ", device_name(comm_.device()), "; GradReducer packs cpu gradients");
  SKEIN_CHECK(options.bucket_bytes > 0, "GradReducer: bucket_bytes must be > 0, got ", options.bucket_bytes);
  check_reduce_dtype(options_.reduce_dtype, params_, "GradReducer");
  check_same_layout(comm_, params_, "GradReducer");
  if (options_.overlap && comm_.size() > 1) own_ = comm_.split(0, comm_.rank());
  bucket_of_.resize(params_.size());
  reported_.assign(params_.size(), 0);
  Bucket cur;
  int64_t cur_elems = 0;
  DType cur_dtype = DType::f32;
  auto close = [&] {
    if (cur.params.empty()) return;
    cur.buffer = Tensor::empty({cur_elems}, cur_dtype, comm_.device());
    if (options_.reduce_dtype == DType::bf16) cur.wire = Tensor::empty({cur_elems}, DType::bf16, comm_.device());
    buckets_.push_back(std::move(cur));
    cur = Bucket();
    cur_elems = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& [name, p] = params_[k];
    SKEIN_CHECK(p.defined() && is_floating(p.dtype()) && p.device() == Device::cpu, "GradReducer: parameter '",
                name, "' must be a defined f32/f64 cpu tensor", p.defined() && p.device() != Device::cpu ?
                " (it is on " + std::string(device_name(p.device())) + ": gradients are reduced through host "
                "buffers only; data / sequence parallelism of a GPU model is not supported yet)" : "");
    const int64_t bytes = p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
    const int64_t held = cur_elems * static_cast<int64_t>(dtype_size(cur_dtype));
    const bool full = held > 0 && held + bytes > options.bucket_bytes;
    if (!cur.params.empty() && (full || p.dtype() != cur_dtype)) close();
    cur_dtype = p.dtype();
    cur.params.push_back(k);
    cur.offsets.push_back(cur_elems);
    cur_elems += p.numel();
    bucket_of_[k] = buckets_.size();
    index_[p.impl()] = k;
  }
  close();
}

GradReducer::~GradReducer() = default;

int64_t GradReducer::bucket_bytes(size_t b) const {
  return buckets_[b].buffer.numel() * static_cast<int64_t>(dtype_size(buckets_[b].buffer.dtype()));
}

void GradReducer::arm() {
  if (!own_) return;  // no overlap (or one rank)
  SKEIN_CHECK(launched_ == 0, "GradReducer.arm: the previous step's buckets were never reduced (call reduce())");
  hook_.reset();
  std::fill(reported_.begin(), reported_.end(), 0);
  for (Bucket& b : buckets_) b.ready = 0;
  last_ = {};
  armed_ = true;
  hook_ = std::make_unique<GradReadyHookGuard>([this](TensorImpl* leaf) { on_ready(leaf); });
}

void GradReducer::on_ready(TensorImpl* leaf) {
  auto it = index_.find(leaf);
  if (it == index_.end()) return;  // a leaf that is not one of our parameters
  const size_t k = it->second;
  SKEIN_CHECK(!reported_[k], "GradReducer: the gradient of '", params_[k].first, "' was finished twice after arm() "
              "(arm() belongs right before the LAST backward of the step; its bucket may already be reduced)");
  reported_[k] = 1;
  ++buckets_[bucket_of_[k]].ready;
  const double t0 = now_seconds();
  // In bucket order on every rank: bucket b starts once it and every earlier bucket are ready.
  while (launched_ < buckets_.size() && buckets_[launched_].ready == buckets_[launched_].params.size()) {
    launch(launched_);
    ++last_.launched_in_backward;
  }
  poll();
  last_.comm_seconds_in_backward += now_seconds() - t0;
}

void GradReducer::launch(size_t k) {
  SKEIN_ASSERT(k == launched_ && pending_.size() == k, "GradReducer: bucket ", k, " launched out of order");
  Bucket& b = buckets_[k];
  for (size_t j = 0; j < b.params.size(); ++j) pack_grad(params_[b.params[j]].second, b.buffer, b.offsets[j]);
  // What travels: the f32 bucket, or its bf16 rounding (copy_ rounds to nearest-even, core/bf16.h;
  // widened back in reduce()).
  const Tensor& wire = b.wire.defined() ? b.wire : b.buffer;
  if (b.wire.defined()) copy_(b.wire, b.buffer);
  // Non-blocking only in an armed step (every rank arms, or none: MPI never matches a blocking
  // collective with a non-blocking one); unarmed, nothing runs beside the reduce, and Open
  // MPI's blocking all-reduce is about twice as fast as libnbc's.
  if (options_.skip_comm) {
    pending_.emplace_back();
  } else if (own_ && armed_) {
    pending_.push_back(own_->iall_reduce(wire));
  } else {
    comm_.all_reduce(wire);
    pending_.emplace_back();
  }
  ++launched_;
}

void GradReducer::poll() {
  while (oldest_ < pending_.size() && pending_[oldest_].test()) ++oldest_;
}

void GradReducer::reduce() {
  hook_.reset();  // backward is over: nothing more is reported
  if (comm_.size() == 1) return;  // the average over one rank is the gradient itself
  NoGradGuard no_grad;
  const double t0 = now_seconds();
  while (launched_ < buckets_.size()) {
    launch(launched_);
    poll();  // progress in-flight buckets while the next one packs
  }
  Tensor present = grad_presence(params_);
  if (!options_.skip_comm) (own_ ? *own_ : comm_).all_reduce(present);
  const int64_t* seen = present.data<int64_t>();
  const double inv = 1.0 / static_cast<double>(comm_.size());
  for (size_t k = 0; k < buckets_.size(); ++k) {
    pending_[k].wait();
    const Bucket& b = buckets_[k];
    if (b.wire.defined()) {
      Tensor buf = b.buffer;
      copy_(buf, b.wire);  // bf16 -> f32: exact
    }
    for (size_t j = 0; j < b.params.size(); ++j)
      if (seen[b.params[j]] > 0)  // (skip_comm: this rank's own presence)
        unpack_grad(params_[b.params[j]].second, b.buffer, b.offsets[j], inv);
  }
  pending_.clear();
  launched_ = oldest_ = 0;
  armed_ = false;
  last_.comm_seconds_in_reduce = now_seconds() - t0;
}

int64_t count_targets(const Tensor& targets, int64_t ignore_index) {
  SKEIN_CHECK(targets.defined() && (targets.dtype() == DType::i64 || targets.dtype() == DType::i32),
              "count_targets: targets must be i32 or i64 ids");
  Tensor t = targets.contiguous();
  int64_t n = 0;
  if (t.dtype() == DType::i64) {
    const int64_t* p = t.data<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i) n += p[i] != ignore_index;
  } else {
    const int32_t* p = t.data<int32_t>();
    for (int64_t i = 0; i < t.numel(); ++i) n += p[i] != ignore_index;
  }
  return n;
}

TokenScale global_token_scale(Communicator& comm, int64_t local_count) {
  SKEIN_CHECK(local_count >= 0, "global_token_scale: negative token count ", local_count);
  Tensor n = from_vector({static_cast<double>(local_count)}, {1}, DType::i64);
  comm.all_reduce(n);
  TokenScale s;
  s.local = local_count;
  s.global = n.data<int64_t>()[0];
  s.scale = s.global > 0 ? static_cast<double>(comm.size()) * static_cast<double>(local_count) /
                               static_cast<double>(s.global)
                         : 0.0;
  return s;
}

double global_mean_loss(Communicator& comm, double local_mean, int64_t local_count) {
  Tensor v = from_vector({local_count > 0 ? local_mean * static_cast<double>(local_count) : 0.0,
                          static_cast<double>(local_count)},
                         {2}, DType::f64);
  comm.all_reduce(v);
  const double* p = v.data<double>();
  return p[1] > 0 ? p[0] / p[1] : 0.0;
}

double global_grad_norm(Communicator& comm, const std::vector<Tensor>& owned) {
  Tensor sq = from_vector({grad_squared_norm(owned)}, {1}, DType::f64);
  comm.all_reduce(sq);
  return std::sqrt(sq.data<double>()[0]);
}

double clip_grad_norm_global(Communicator& comm, const std::vector<Tensor>& params, const std::vector<Tensor>& owned,
                             double max_norm) {
  SKEIN_CHECK(max_norm > 0, "clip_grad_norm_global: max_norm must be > 0, got ", max_norm);
  const double norm = global_grad_norm(comm, owned);
  clip_grads_to_norm(params, norm, max_norm);
  return norm;
}

void broadcast_parameters(Communicator& comm, const NamedParams& params, int root) {
  for (const auto& [name, p] : params) {
    SKEIN_CHECK(p.is_contiguous(), "broadcast_parameters: '", name, "' ", shape_str(p.shape()), " is not contiguous");
    comm.broadcast(p, root);
  }
}

}  // namespace skein
