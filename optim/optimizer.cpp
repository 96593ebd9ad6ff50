// optimizer.cpp — the Optimizer base: parameter checks, the step loop, and the state dict.
#include "optim/optimizer.h"
#include <cmath>
#include <set>
#include "core/autograd.h"
#include "core/ops.h"

namespace skein {

bool decay_by_dim(const std::string&, const Tensor& param) { return param.dim() >= 2; }

Optimizer::Optimizer(NamedParams params, double lr, const char* name)
    : name_(name), params_(std::move(params)), lr_(0.0) {
  set_lr(lr);
  std::set<std::string> names;
  std::set<const TensorImpl*> impls;
  for (const auto& [pname, p] : params_) {
    SKEIN_CHECK(p.defined(), name_, ": parameter '", pname, "' is an undefined tensor");
    SKEIN_CHECK(names.insert(pname).second, name_, ": parameter name '", pname, "' appears twice");
    SKEIN_CHECK(impls.insert(p.impl()).second, name_, ": parameter '", pname,
                "' is the same tensor as an earlier one (list shared parameters once)");
    SKEIN_CHECK(is_floating(p.dtype()), name_, ": parameter '", pname, "' has dtype ",
                dtype_name(p.dtype()), " (need f32 or f64)");
    SKEIN_CHECK(p.device() == params_.front().second.device(), name_, ": parameter '", pname, "' is on ",
                device_name(p.device()), " but '", params_.front().first, "' is on ",
                device_name(params_.front().second.device()), " (move the model with to(device) first)");
    SKEIN_CHECK(p.is_contiguous(), name_, ": parameter '", pname, "' ", shape_str(p.shape()),
                " is not contiguous");
  }
}

void Optimizer::set_lr(double lr) {
  SKEIN_CHECK(std::isfinite(lr) && lr >= 0.0, name_, ": learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

int Optimizer::add_buffer(const std::string& slot) {
  std::vector<Tensor> bufs;
  bufs.reserve(params_.size());
  for (const auto& [pname, p] : params_) bufs.push_back(zeros(p.shape(), p.dtype(), p.device()));  // state lives with its parameter
  buffers_.emplace_back(slot, std::move(bufs));
  return static_cast<int>(buffers_.size()) - 1;
}

int Optimizer::add_counter(const std::string& slot) {
  counters_.emplace_back(slot, std::vector<int64_t>(params_.size(), 0));
  return static_cast<int>(counters_.size()) - 1;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [pname, p] = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    SKEIN_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(), name_, ".step: gradient of '",
                pname, "' is ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " but the parameter is ",
                shape_str(p.shape()), " ", dtype_name(p.dtype()));
    SKEIN_CHECK(g.device() == p.device(), name_, ".step: gradient of '", pname, "' is on ",
                device_name(g.device()), " but the parameter is on ", device_name(p.device()));
    update(i, p, g.contiguous());
  }
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (auto& [pname, p] : params_) p.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  out["step"] = scalar(static_cast<double>(step_count_), DType::i64);
  for (const auto& [slot, bufs] : buffers_)
    for (size_t i = 0; i < params_.size(); ++i) out[slot + "." + params_[i].first] = bufs[i];
  for (const auto& [slot, counts] : counters_)
    for (size_t i = 0; i < params_.size(); ++i)
      out[slot + "." + params_[i].first] = scalar(static_cast<double>(counts[i]), DType::i64);
  return out;
}

namespace {

// The value of a 0-d counter tensor, checked to be a non-negative integer.
int64_t read_counter(const char* opt, const std::string& key, const Tensor& t) {
  double v = t.item();
  SKEIN_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v) && v < 9.0e15, opt,
              ".load_state_dict: key '", key, "' holds ", v, ", not a step count");
  return static_cast<int64_t>(v);
}

}  // namespace

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  // Expected keys and shapes, in the order they are checked.
  std::vector<std::pair<std::string, Shape>> expected{{"step", Shape{}}};
  for (const auto& [slot, bufs] : buffers_)
    for (size_t i = 0; i < params_.size(); ++i)
      expected.emplace_back(slot + "." + params_[i].first, params_[i].second.shape());
  for (const auto& [slot, counts] : counters_)
    for (size_t i = 0; i < params_.size(); ++i) expected.emplace_back(slot + "." + params_[i].first, Shape{});

  std::set<std::string> known;
  for (const auto& [key, shape] : expected) {
    known.insert(key);
    auto it = state.find(key);
    SKEIN_CHECK(it != state.end(), name_, ".load_state_dict: key '", key,
                "' is missing from the state dict (expected shape ", shape_str(shape), ")");
    const Tensor& t = it->second;
    SKEIN_CHECK(t.defined(), name_, ".load_state_dict: key '", key, "' is an undefined tensor");
    SKEIN_CHECK(t.shape() == shape, name_, ".load_state_dict: key '", key, "' has shape ",
                shape_str(t.shape()), " in the state dict but ", shape_str(shape), " in the optimizer");
  }
  for (const auto& [key, t] : state)
    SKEIN_CHECK(known.count(key), name_, ".load_state_dict: unexpected key '", key, "' with shape ",
                t.defined() ? shape_str(t.shape()) : std::string("(undefined)"),
                " (this optimizer has no such state)");
  // Validate every counter and dtype before writing anything.
  int64_t step = read_counter(name_, "step", state.at("step"));
  std::vector<std::vector<int64_t>> counts;
  for (const auto& [slot, cs] : counters_) {
    counts.emplace_back();
    for (size_t i = 0; i < params_.size(); ++i) {
      std::string key = slot + "." + params_[i].first;
      counts.back().push_back(read_counter(name_, key, state.at(key)));
    }
  }
  for (const auto& [slot, bufs] : buffers_)
    for (size_t i = 0; i < params_.size(); ++i) {
      std::string key = slot + "." + params_[i].first;
      SKEIN_CHECK(is_floating(state.at(key).dtype()), name_, ".load_state_dict: key '", key,
                  "' has dtype ", dtype_name(state.at(key).dtype()), " (need f32 or f64)");
    }

  step_count_ = step;
  for (size_t s = 0; s < counters_.size(); ++s) counters_[s].second = counts[s];
  for (auto& [slot, bufs] : buffers_)
    for (size_t i = 0; i < params_.size(); ++i) copy_(bufs[i], state.at(slot + "." + params_[i].first));
}

}  // namespace skein
