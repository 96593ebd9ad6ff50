// activations.cpp — softplus, log_sigmoid and l2_normalize: the gate and key-norm
// functions of the linear-attention mixers, each numerically stable, with its backward.
#include <cmath>
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

// y = f(x) elementwise on a contiguous copy; backward g * df(x).
template <typename F, typename DF>
Tensor pointwise(const char* op, const Tensor& a, F f, DF df) {
  SKEIN_CHECK(is_floating(a.dtype()), op, ": needs f32 or f64, got ", dtype_name(a.dtype()));
  Tensor x = a.detach().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), op, [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(0, x.numel(), 16384, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) py[i] = f(px[i]);
    });
  });
  return record(op, y, {a}, [x, df, op](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    SKEIN_DISPATCH_FLOAT(x.dtype(), op, [&] {
      const scalar_t *px = x.data<scalar_t>(), *pg = g.data<scalar_t>();
      scalar_t* pd = dx.data<scalar_t>();
      parallel_for(0, x.numel(), 16384, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) pd[i] = pg[i] * df(px[i]);
      });
    });
    return std::vector<Tensor>{dx};
  });
}

template <typename T> T sigmoid_of(T x) { return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x)); }
// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
template <typename T> T softplus_of(T x) { return std::max(x, T(0)) + std::log1p(std::exp(-std::fabs(x))); }

}  // namespace

Tensor softplus(const Tensor& a) {
  return pointwise("softplus", a, [](auto x) { return softplus_of(x); }, [](auto x) { return sigmoid_of(x); });
}

Tensor log_sigmoid(const Tensor& a) {
  // log σ(x) = -softplus(-x); d/dx = σ(-x)
  return pointwise("log_sigmoid", a, [](auto x) { return -softplus_of(-x); }, [](auto x) { return sigmoid_of(-x); });
}

// y = x / sqrt(Σ x² + eps) over the last dim. Backward: dx = (g - y (g·y)) / n.
Tensor l2_normalize(const Tensor& a, double eps) {
  SKEIN_CHECK(a.dim() >= 1 && is_floating(a.dtype()), "l2_normalize: need a floating tensor with a "
              "last dim, got ", shape_str(a.shape()), " ", dtype_name(a.dtype()));
  const int64_t D = a.shape().back(), rows = D ? a.numel() / D : 0;
  Tensor x = a.detach().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  Tensor norm = Tensor::empty({rows}, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "l2_normalize", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t *py = y.data<scalar_t>(), *pn = norm.data<scalar_t>();
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(px[r * D + i]) * px[r * D + i];
        const scalar_t n = static_cast<scalar_t>(std::sqrt(ss + eps));
        pn[r] = n;
        for (int64_t i = 0; i < D; ++i) py[r * D + i] = px[r * D + i] / n;
      }
    });
  });
  return record("l2_normalize", y, {a}, [y, norm, D, rows](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    SKEIN_DISPATCH_FLOAT(g.dtype(), "l2_normalize backward", [&] {
      const scalar_t *pg = g.data<scalar_t>(), *py = y.data<scalar_t>(), *pn = norm.data<scalar_t>();
      scalar_t* pd = dx.data<scalar_t>();
      parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          double dot = 0;
          for (int64_t i = 0; i < D; ++i) dot += static_cast<double>(pg[r * D + i]) * py[r * D + i];
          for (int64_t i = 0; i < D; ++i)
            pd[r * D + i] = (pg[r * D + i] - py[r * D + i] * static_cast<scalar_t>(dot)) / pn[r];
        }
      });
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace skein
