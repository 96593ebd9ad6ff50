// clip.cpp — global gradient L2 norm (in double, deterministic) and in-place scaling.
#include "optim/clip.h"
#include <cmath>
#include <set>
#include "core/autograd.h"
#include "core/ops.h"
#include "core/kernels/kernels.h"

namespace skein {

namespace {

// The defined gradients of `params`, each once.
std::vector<Tensor> unique_grads(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  std::set<const TensorImpl*> seen;
  for (const Tensor& p : params) {
    SKEIN_CHECK(p.defined(), "clip_grad_norm: a parameter is an undefined tensor");
    Tensor g = p.grad();
    if (!g.defined() || !seen.insert(g.impl()).second) continue;
    grads.push_back(g);
  }
  return grads;
}

}  // namespace

// Σ over the gradients of Σ g² in double (fixed order): one partial per gradient, written on the
// gradients' device by its kernel, read back once (the host needs the norm to clip).
double grad_squared_norm(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = unique_grads(params);
  if (grads.empty()) return 0.0;
  const Device dev = grads.front().device();
  Tensor parts = Tensor::empty({static_cast<int64_t>(grads.size())}, DType::f64, dev);
  const auto& k = kern::kernels(dev);
  for (size_t i = 0; i < grads.size(); ++i) {
    SKEIN_CHECK(grads[i].device() == dev, "clip_grad_norm: gradients on ", device_name(dev), " and ",
                device_name(grads[i].device()));
    Tensor g = grads[i].contiguous();
    k.sum_squares(g.dtype(), g.raw_data(), parts.data_ptr<double>() + i, g.numel());
  }
  double total = 0.0;
  for (double v : parts.to_vector()) total += v;
  return total;
}

bool clip_grads_to_norm(const std::vector<Tensor>& params, double norm, double max_norm) {
  SKEIN_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  if (!std::isfinite(norm) || norm <= max_norm) return false;
  const double scale = max_norm / (norm + 1e-6);
  for (const Tensor& g : unique_grads(params)) mul_(g, scale);
  return true;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  const double norm = std::sqrt(grad_squared_norm(params));
  clip_grads_to_norm(params, norm, max_norm);
  return norm;
}

double clip_grad_norm(const NamedParams& params, double max_norm) {
  std::vector<Tensor> ps;
  ps.reserve(params.size());
  for (const auto& [name, p] : params) ps.push_back(p);
  return clip_grad_norm(ps, max_norm);
}

}  // namespace skein
