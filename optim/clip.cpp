// clip.cpp — global gradient L2 norm (in double, deterministic) and in-place scaling.
#include "optim/clip.h"
#include <cmath>
#include <set>
#include "core/autograd.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {

namespace {

constexpr int64_t kBlock = 16384;  // elements per partial sum; fixed, so the sum order is too

// Σ x² of a contiguous tensor in double: partial sums over fixed blocks, added in order.
double sum_squares(const Tensor& t) {
  const int64_t n = t.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  SKEIN_DISPATCH_FLOAT(t.dtype(), "grad_squared_norm", [&] {
    const scalar_t* p = t.data<scalar_t>();
    parallel_for(0, blocks, 2, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        // 8 independent accumulators: a fixed order the compiler can vectorise.
        double acc[8] = {};
        const int64_t end = std::min(n, (b + 1) * kBlock);
        int64_t i = b * kBlock;
        for (; i + 8 <= end; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[i + k]) * static_cast<double>(p[i + k]);
        for (; i < end; ++i) acc[0] += static_cast<double>(p[i]) * static_cast<double>(p[i]);
        partial[static_cast<size_t>(b)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      }
    });
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

// The defined gradients of `params`, each once.
std::vector<Tensor> unique_grads(const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  std::set<const TensorImpl*> seen;
  for (const Tensor& p : params) {
    SKEIN_CHECK(p.defined(), "clip_grad_norm: a parameter is an undefined tensor");
    Tensor g = p.grad();
    if (!g.defined() || !seen.insert(g.impl()).second) continue;
    SKEIN_CHECK(g.device() == Device::cpu, "clip_grad_norm: gradient ", shape_str(g.shape()), " is not on cpu");
    grads.push_back(g);
  }
  return grads;
}

}  // namespace

double grad_squared_norm(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  double total = 0.0;
  for (const Tensor& g : unique_grads(params)) total += sum_squares(g.contiguous());
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
