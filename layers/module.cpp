// module.cpp — Module bookkeeping (see module.h).
#include "layers/module.h"
#include <algorithm>

namespace skein {

void Module::register_buffer(const std::string& name, const Tensor& t) {
  SKEIN_CHECK(t.defined(), "register_buffer: '", name, "' is undefined");
  buffers_.emplace_back(name, t);
}

namespace {
// Points t's own TensorImpl at a copy of its values on `device` (so every handle follows).
void move_in_place(const Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.detach().to(device);
  TensorImpl* impl = t.impl();
  impl->storage = moved.impl()->storage;
  impl->offset = moved.offset();
  impl->strides = moved.strides();
  if (impl->grad) move_in_place(Tensor(impl->grad), device);
}
}  // namespace

void Module::to(Device device) {
  for (const auto& [n, p] : params_) move_in_place(p, device);
  for (const auto& [n, b] : buffers_) move_in_place(b, device);
  for (const auto& [n, c] : children_) c->to(device);
}

Device Module::device() const {
  NamedTensors ps = named_parameters();
  return ps.empty() ? Device::cpu : ps.front().second.device();
}

Tensor Module::replace_parameter(const std::string& name, const Tensor& t, bool requires_grad) {
  for (auto& [n, p] : params_) {
    if (n != name) continue;
    SKEIN_CHECK(t.shape() == p.shape(), "replace_parameter: '", name, "' ", shape_str(p.shape()), " cannot become ",
                shape_str(t.shape()));
    p = t.detach();
    p.requires_grad_(requires_grad);
    return p;
  }
  throw Error(detail::concat("replace_parameter: no parameter '", name, "'"));
}

Tensor Module::register_parameter(const std::string& name, Tensor t, TpSplit split) {
  SKEIN_CHECK(name.find('.') == std::string::npos, "register_parameter: name '", name,
              "' must not contain '.'");
  for (const auto& [n, p] : params_) SKEIN_CHECK(n != name, "register_parameter: '", name, "' registered twice");
  Tensor leaf = t.detach();
  leaf.requires_grad_(true);
  SKEIN_CHECK(split.dim < static_cast<int>(leaf.dim()), "register_parameter: '", name, "' ",
              shape_str(leaf.shape()), " cannot be split along dim ", split.dim);
  params_.emplace_back(name, leaf);
  splits_.push_back(split);
  return leaf;
}

void Module::replace_module(const std::string& name, std::shared_ptr<Module> m) {
  for (auto& [n, child] : children_)
    if (n == name) {
      child = std::move(m);
      return;
    }
  SKEIN_CHECK(false, "replace_module: no child module named '", name, "'");
}

void Module::collect_splits(const std::string& prefix, std::map<std::string, TpSplit>& out) const {
  for (size_t i = 0; i < params_.size(); ++i) out.emplace(prefix + params_[i].first, splits_[i]);
  for (const auto& [n, m] : children_) m->collect_splits(prefix + n + ".", out);
}

std::map<std::string, TpSplit> Module::tp_splits() const {
  std::map<std::string, TpSplit> out;
  collect_splits("", out);
  return out;
}

void Module::collect(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [n, p] : params_) out.emplace_back(prefix + n, p);
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

void Module::zero_grad() {
  for (auto& [n, p] : named_parameters()) p.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, p] : named_parameters()) out.emplace(n, p);
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  auto params = named_parameters();
  for (auto& [name, p] : params) {
    auto it = state.find(name);
    if (it == state.end()) {
      SKEIN_CHECK(!strict, "load_state_dict: missing tensor '", name, "' ", shape_str(p.shape()));
      continue;
    }
    SKEIN_CHECK(it->second.shape() == p.shape(), "load_state_dict: tensor '", name, "' has shape ",
                shape_str(it->second.shape()), " in the state but ", shape_str(p.shape()), " in the model");
    NoGradGuard ng;
    Tensor dst = p;
    copy_(dst, it->second);
  }
  if (strict) {
    for (auto& [name, t] : state) {
      bool known = false;
      for (auto& [n, p] : params) known = known || n == name;
      SKEIN_CHECK(known, "load_state_dict: unexpected tensor '", name, "' ", shape_str(t.shape()),
                  " (the model has no parameter of that name)");
    }
  }
}

Tensor init_normal(const Shape& shape, double std, Generator& gen, DType dtype) {
  if (dtype != DType::bf16) {  // scaled in place: one buffer (an 8B model's embedding is 2 GB in f32)
    Tensor t = randn(shape, gen, dtype);
    mul_(t, std);
    return t;
  }
  // bf16 (frozen weights about to be loaded): drawn in f32 chunks of 1 M values written straight
  // into the bf16 tensor, so no f32 copy of the whole matrix ever exists
  Tensor out = Tensor::empty(shape, DType::bf16);
  Tensor flat = out.reshape({-1});
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t at = 0; at < flat.numel(); at += kChunk) {
    const int64_t n = std::min(kChunk, flat.numel() - at);
    Tensor dst = flat.narrow(0, at, n);
    copy_(dst, mul(randn({n}, gen, DType::f32), std));
  }
  return out;
}

}  // namespace skein
