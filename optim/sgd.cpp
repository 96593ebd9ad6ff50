// sgd.cpp — SGD's fused update: one pass over p, g and the momentum buffer.
// reference: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
#include "optim/sgd.h"
#include <cmath>
#include "core/cpu/loops.h"
#include "core/threadpool.h"

namespace skein {

SGD::SGD(NamedParams params, SGDOptions options)
    : Optimizer(std::move(params), options.lr, "SGD"), opt_(std::move(options)) {
  SKEIN_CHECK(opt_.momentum >= 0 && std::isfinite(opt_.momentum), "SGD: momentum must be finite and >= 0, got ",
              opt_.momentum);
  SKEIN_CHECK(opt_.weight_decay >= 0 && std::isfinite(opt_.weight_decay),
              "SGD: weight_decay must be finite and >= 0, got ", opt_.weight_decay);
  SKEIN_CHECK(!opt_.nesterov || opt_.momentum > 0, "SGD: nesterov needs momentum > 0");
  SKEIN_CHECK(opt_.decay != nullptr, "SGD: the decay filter is empty");
  for (const auto& [name, p] : this->params()) decay_.push_back(opt_.weight_decay > 0 && opt_.decay(name, p));
  if (opt_.momentum > 0) momentum_ = add_buffer("momentum");
}

namespace {

// One thread's slice: p, g, buf: [n] contiguous, distinct buffers (buf unused without momentum).
// The options are template arguments so that each variant is a branch-free, vectorisable loop.
template <typename T, bool kDecay, bool kMomentum, bool kNesterov>
void sgd_range(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, T lr, T wd, T mu) {
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if constexpr (kDecay) d += wd * p[i];
    if constexpr (kMomentum) {
      const T b = mu * buf[i] + d;
      buf[i] = b;
      d = kNesterov ? d + mu * b : b;
    }
    p[i] -= lr * d;
  }
}

template <typename T, bool kDecay, bool kMomentum, bool kNesterov>
void sgd_kernel(T* p, const T* g, T* buf, int64_t n, double lr, double wd, double mu) {
  parallel_for(0, n, cpu::kGrain, [=](int64_t lo, int64_t hi) {
    sgd_range<T, kDecay, kMomentum, kNesterov>(p + lo, g + lo, kMomentum ? buf + lo : nullptr, hi - lo,
                                               T(lr), T(wd), T(mu));
  });
}

}  // namespace

void SGD::update(size_t i, const Tensor& param, const Tensor& grad) {
  const double wd = decay_[i] ? opt_.weight_decay : 0.0;
  const bool mom = momentum_ >= 0, nest = opt_.nesterov;
  SKEIN_DISPATCH_FLOAT(param.dtype(), "SGD.step", [&] {
    scalar_t* p = param.data<scalar_t>();
    const scalar_t* g = grad.data<scalar_t>();
    scalar_t* buf = mom ? buffer(momentum_, i).data<scalar_t>() : nullptr;
    const int64_t n = param.numel();
    const double lr = this->lr(), mu = opt_.momentum;
    if (wd != 0 && mom && nest) sgd_kernel<scalar_t, true, true, true>(p, g, buf, n, lr, wd, mu);
    else if (wd != 0 && mom) sgd_kernel<scalar_t, true, true, false>(p, g, buf, n, lr, wd, mu);
    else if (wd != 0) sgd_kernel<scalar_t, true, false, false>(p, g, buf, n, lr, wd, mu);
    else if (mom && nest) sgd_kernel<scalar_t, false, true, true>(p, g, buf, n, lr, wd, mu);
    else if (mom) sgd_kernel<scalar_t, false, true, false>(p, g, buf, n, lr, wd, mu);
    else sgd_kernel<scalar_t, false, false, false>(p, g, buf, n, lr, wd, mu);
  });
}

}  // namespace skein
