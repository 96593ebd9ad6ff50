// zero.cpp — Zero1AdamW: flat layout and shard pieces, reduce-scatter of gradients, the
// shard update, the parameter all-gather, and the state dict in AdamW's layout.
#include "parallel/zero.h"
#include <algorithm>
#include <cstring>
#include <set>
#include "core/autograd.h"
#include "core/ops.h"
#include "optim/clip.h"
#include "parallel/data_parallel.h"
#include "parallel/flat.h"

namespace skein {

namespace {
const char* const kSlots[] = {"exp_avg", "exp_avg_sq"};
}

Zero1AdamW::Zero1AdamW(Communicator& comm, NamedParams params, AdamWOptions options, const DataParallelOptions& dp)
    : comm_(comm), params_(std::move(params)), skip_comm_(dp.skip_comm) {
  SKEIN_CHECK(comm_.device() == Device::cpu, "Zero1AdamW: the ", comm_.backend_name(), " communicator works on ",
              device_name(comm_.device()), "; Zero1AdamW shards cpu parameters");
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    SKEIN_CHECK(p.defined() && is_floating(p.dtype()) && p.device() == Device::cpu && p.is_contiguous(),
                "Zero1AdamW: parameter '", name, "' must be a contiguous f32/f64 cpu tensor");
    if (i == 0) dtype_ = p.dtype();
    SKEIN_CHECK(p.dtype() == dtype_, "Zero1AdamW: parameter '", name, "' is ", dtype_name(p.dtype()),
                " but '", params_[0].first, "' is ", dtype_name(dtype_), " (one flat buffer needs one dtype)");
    offsets_.push_back(numel_);
    numel_ += p.numel();
  }
  check_same_layout(comm_, params_, "Zero1AdamW");
  check_reduce_dtype(dp.reduce_dtype, params_, "Zero1AdamW");
  const int64_t world = comm_.size(), r = comm_.rank();
  shard_numel_ = (numel_ + world - 1) / world;
  flat_grad_ = zeros({shard_numel_ * world}, dtype_);  // the padding stays zero
  flat_param_ = Tensor::empty({shard_numel_ * world}, dtype_);
  shard_grad_ = Tensor::empty({shard_numel_}, dtype_);
  shard_param_ = zeros({shard_numel_}, dtype_);
  if (dp.reduce_dtype == DType::bf16 && world > 1) {  // a group of one sends nothing: nothing to round
    flat_wire_ = Tensor::empty({shard_numel_ * world}, DType::bf16);
    shard_wire_ = Tensor::empty({shard_numel_}, DType::bf16);
  }

  // Pieces: each parameter's overlap with [r S, (r + 1) S).
  const int64_t lo = r * shard_numel_, hi = lo + shard_numel_;
  NamedParams named_pieces;
  std::map<std::string, bool> decays;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t a = std::max(lo, offsets_[i]), b = std::min(hi, offsets_[i] + params_[i].second.numel());
    if (a >= b) continue;
    pieces_.push_back({i, a - offsets_[i], b - a, a - lo});
    piece_tensors_.push_back(shard_param_.narrow(0, a - lo, b - a));
    named_pieces.emplace_back(params_[i].first, piece_tensors_.back());
    decays[params_[i].first] = options.decay(params_[i].first, params_[i].second);
  }
  AdamWOptions shard_options = options;
  shard_options.decay = [decays](const std::string& name, const Tensor&) { return decays.at(name); };
  shard_opt_ = std::make_unique<AdamW>(std::move(named_pieces), shard_options);

  // Overlap: which parameters overlap each rank's shard.
  reported_.assign(params_.size(), 0);
  shard_params_.resize(static_cast<size_t>(world));
  shard_ready_.assign(static_cast<size_t>(world), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    index_[params_[i].second.impl()] = i;
    const int64_t n = params_[i].second.numel();
    if (n == 0) continue;
    for (int64_t j = offsets_[i] / shard_numel_; j <= (offsets_[i] + n - 1) / shard_numel_; ++j)
      shard_params_[static_cast<size_t>(j)].push_back(i);
  }
  if (dp.overlap && world > 1) own_ = comm_.split(0, comm_.rank());
}

Zero1AdamW::~Zero1AdamW() = default;

void Zero1AdamW::arm() {
  if (!own_) return;
  SKEIN_CHECK(launched_ == 0, "Zero1AdamW.arm: the previous step's gradients were never reduced");
  hook_.reset();
  std::fill(reported_.begin(), reported_.end(), 0);
  std::fill(shard_ready_.begin(), shard_ready_.end(), 0);
  hook_ = std::make_unique<GradReadyHookGuard>([this](TensorImpl* leaf) { on_ready(leaf); });
}

void Zero1AdamW::on_ready(TensorImpl* leaf) {
  auto it = index_.find(leaf);
  if (it == index_.end()) return;
  const size_t i = it->second;
  SKEIN_CHECK(!reported_[i], "Zero1AdamW: the gradient of '", params_[i].first, "' was finished twice after arm() "
              "(arm() belongs right before the LAST backward of the step)");
  reported_[i] = 1;
  pack_grad(params_[i].second, flat_grad_, offsets_[i]);
  const int64_t n = params_[i].second.numel();
  if (n > 0)
    for (int64_t j = offsets_[i] / shard_numel_; j <= (offsets_[i] + n - 1) / shard_numel_; ++j)
      ++shard_ready_[static_cast<size_t>(j)];
  const int W = comm_.size();
  while (launched_ < W) {
    const size_t j = static_cast<size_t>(W - 1 - launched_);
    if (shard_ready_[j] < shard_params_[j].size()) break;
    launch_next();
  }
  for (Request& r : pending_) r.test();  // MPI progress
}

void Zero1AdamW::launch_next() {
  const int j = comm_.size() - 1 - launched_;
  const Tensor grads = flat_grad_.narrow(0, j * shard_numel_, shard_numel_);
  if (flat_wire_.defined()) {  // bf16: this shard's slice rounded as it launches
    Tensor wire = flat_wire_.narrow(0, j * shard_numel_, shard_numel_);
    copy_(wire, grads);
    pending_.push_back(own_->ireduce_into(wire, shard_wire_, j));
  } else {
    pending_.push_back(own_->ireduce_into(grads, shard_grad_, j));
  }
  ++launched_;
}

void Zero1AdamW::reduce_grads() {
  const bool armed = hook_ != nullptr;
  hook_.reset();  // backward is over
  launched_in_backward_ = launched_;
  NoGradGuard no_grad;
  Tensor present = grad_presence(params_);
  Request presence_req = skip_comm_ ? Request() : comm_.iall_reduce(present);
  for (size_t i = 0; i < params_.size(); ++i)
    if (!armed || !reported_[i]) pack_grad(params_[i].second, flat_grad_, offsets_[i]);
  const bool wire = flat_wire_.defined();  // bf16 on the wire
  if (skip_comm_) {  // benchmark only: this rank's own gradients, unreduced (rounded as they would travel)
    const Tensor own = flat_grad_.narrow(0, comm_.rank() * shard_numel_, shard_numel_);
    if (wire) copy_(shard_wire_, own);
    else copy_bytes(shard_grad_, own);
  } else if (own_ && armed) {  // every rank armed (or none): the shard reduces
    while (launched_ < comm_.size()) launch_next();
    wait_all(pending_);
    pending_.clear();
  } else if (wire) {
    copy_(flat_wire_, flat_grad_);
    comm_.reduce_scatter_into(flat_wire_, shard_wire_);
  } else {
    comm_.reduce_scatter_into(flat_grad_, shard_grad_);
  }
  if (wire) copy_(shard_grad_, shard_wire_);  // bf16 -> f32: exact
  launched_ = 0;
  presence_req.wait();
  // The same arithmetic as GradReducer's unpack: sum * (1 / p) in the parameter dtype.
  SKEIN_DISPATCH_FLOAT(dtype_, "Zero1AdamW", [&] {
    scalar_t* g = shard_grad_.data<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(1.0 / static_cast<double>(comm_.size()));
    for (int64_t k = 0; k < shard_numel_; ++k) g[k] = g[k] * s;
  });
  const int64_t* seen = present.data<int64_t>();
  for (size_t j = 0; j < pieces_.size(); ++j) {
    const Piece& pc = pieces_[j];
    if (seen[pc.param] > 0) piece_tensors_[j].impl()->grad = shard_grad_.narrow(0, pc.shard_at, pc.length).impl_ptr();
    else piece_tensors_[j].zero_grad();
  }
  reduced_ = true;
}

double Zero1AdamW::clip_grad_norm(double max_norm) {
  if (!reduced_) reduce_grads();
  return clip_grad_norm_global(comm_, piece_tensors_, piece_tensors_, max_norm);
}

void Zero1AdamW::step() {
  if (!reduced_) reduce_grads();
  NoGradGuard no_grad;
  const size_t esize = dtype_size(dtype_);
  char* shard = static_cast<char*>(shard_param_.raw_data());
  for (const Piece& pc : pieces_) {  // the live values (a load or a broadcast may have changed them)
    const char* src = static_cast<const char*>(params_[pc.param].second.raw_data()) + pc.begin * esize;
    std::memcpy(shard + pc.shard_at * esize, src, static_cast<size_t>(pc.length) * esize);
  }
  shard_opt_->step();
  comm_.all_gather_into(shard_param_, flat_param_);
  for (size_t i = 0; i < params_.size(); ++i) unpack_values(params_[i].second, flat_param_, offsets_[i]);
  for (Tensor& t : piece_tensors_) t.zero_grad();
  reduced_ = false;
}

void Zero1AdamW::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
  for (Tensor& t : piece_tensors_) t.zero_grad();
  reduced_ = false;
}

std::map<std::string, Tensor> Zero1AdamW::state_dict() const {
  const std::map<std::string, Tensor> local = shard_opt_->state_dict();
  std::map<std::string, Tensor> out;
  out["step"] = scalar(static_cast<double>(step_count()), DType::i64);
  Tensor shard = Tensor::empty({shard_numel_}, dtype_);
  Tensor full = Tensor::empty({shard_numel_ * comm_.size()}, dtype_);
  for (const char* slot : kSlots) {
    fill_(shard, 0.0);
    for (const Piece& pc : pieces_)
      pack_values(local.at(std::string(slot) + "." + params_[pc.param].first), shard, pc.shard_at);
    comm_.all_gather_into(shard, full);
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor& p = params_[i].second;
      out[std::string(slot) + "." + params_[i].first] = full.narrow(0, offsets_[i], p.numel()).clone().view(p.shape());
    }
  }
  // Per-parameter step counters: the max over ranks (ranks without a piece of a parameter say 0).
  Tensor steps = zeros({static_cast<int64_t>(params_.size())}, DType::i64);
  for (const Piece& pc : pieces_)
    steps.data<int64_t>()[pc.param] = static_cast<int64_t>(local.at("step." + params_[pc.param].first).item());
  comm_.all_reduce(steps, ReduceOp::max);
  for (size_t i = 0; i < params_.size(); ++i)
    out["step." + params_[i].first] = scalar(static_cast<double>(steps.data<int64_t>()[i]), DType::i64);
  return out;
}

void Zero1AdamW::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::set<std::string> expected = {"step"};
  for (const auto& [name, p] : params_) {
    for (const char* slot : kSlots) {
      const std::string key = std::string(slot) + "." + name;
      expected.insert(key);
      auto it = state.find(key);
      SKEIN_CHECK(it != state.end(), "Zero1AdamW.load_state_dict: key '", key,
                  "' is missing from the state dict (expected shape ", shape_str(p.shape()), ")");
      SKEIN_CHECK(it->second.defined() && it->second.shape() == p.shape(), "Zero1AdamW.load_state_dict: key '", key,
                  "' has shape ", it->second.defined() ? shape_str(it->second.shape()) : "(undefined)",
                  " in the state dict but ", shape_str(p.shape()), " in the optimizer");
    }
    expected.insert("step." + name);
  }
  for (const auto& [key, t] : state)
    SKEIN_CHECK(expected.count(key), "Zero1AdamW.load_state_dict: unexpected key '", key,
                "' (this optimizer has no such state)");
  SKEIN_CHECK(state.count("step"), "Zero1AdamW.load_state_dict: key 'step' is missing from the state dict");
  std::map<std::string, Tensor> local;
  local["step"] = state.at("step");
  for (const Piece& pc : pieces_) {
    const std::string& name = params_[pc.param].first;
    for (const char* slot : kSlots) {
      const std::string key = std::string(slot) + "." + name;
      local[key] = state.at(key).contiguous().reshape({-1}).narrow(0, pc.begin, pc.length);
    }
    SKEIN_CHECK(state.count("step." + name), "Zero1AdamW.load_state_dict: key 'step.", name, "' is missing");
    local["step." + name] = state.at("step." + name);
  }
  shard_opt_->load_state_dict(local);  // checks dtypes and counters before writing
}

}  // namespace skein
