// nn_fused.cpp — rms_norm and rope: one pass forward, one pass backward each.
#include <cmath>
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {

// reference: Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019.
// y = x * r * g with r = rsqrt(mean(x^2) + eps). Backward, with xh = x * r:
//   dg = Σ_rows dy * xh;   dx = r * (dy*g - xh * mean(dy*g*xh))
Tensor rms_norm(const Tensor& x_in, const Tensor& gain_in, double eps) {
  SKEIN_CHECK(x_in.dim() >= 1 && gain_in.dim() == 1 && gain_in.shape()[0] == x_in.shape().back(),
              "rms_norm: gain ", shape_str(gain_in.shape()), " does not match the last dim of x ",
              shape_str(x_in.shape()));
  SKEIN_CHECK(x_in.dtype() == gain_in.dtype(), "rms_norm: dtypes differ: x ", dtype_name(x_in.dtype()),
              ", gain ", dtype_name(gain_in.dtype()));
  const int64_t D = x_in.shape().back(), rows = D ? x_in.numel() / D : 0;
  Tensor x = x_in.detach().contiguous(), gain = gain_in.detach().contiguous();
  Tensor y = Tensor::empty(x_in.shape(), x_in.dtype());
  Tensor rstd = Tensor::empty({rows}, x_in.dtype());
  SKEIN_DISPATCH_FLOAT(x.dtype(), "rms_norm", [&] {
    const scalar_t *px = x.data<scalar_t>(), *pg = gain.data<scalar_t>();
    scalar_t *py = y.data<scalar_t>(), *pr = rstd.data<scalar_t>();
    parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = px + r * D;
        const double ss = cpu::sum_lanes<double>(D, [&](int64_t i) { return static_cast<double>(xr[i]) * xr[i]; });
        const scalar_t rs = static_cast<scalar_t>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
        pr[r] = rs;
        scalar_t* yr = py + r * D;
        for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rs * pg[i];
      }
    });
  });
  if (!any_requires_grad({x_in, gain_in})) return y;
  bool need_x = x_in.requires_grad(), need_g = gain_in.requires_grad();
  return record("rms_norm", y, {x_in, gain_in}, [x, gain, rstd, D, rows, need_x, need_g](const Tensor& g_in) {
    Tensor dy = g_in.contiguous();
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
    Tensor dg;
    SKEIN_DISPATCH_FLOAT(x.dtype(), "rms_norm backward", [&] {
      const scalar_t *px = x.data<scalar_t>(), *pg = gain.data<scalar_t>(), *pr = rstd.data<scalar_t>();
      const scalar_t* pdy = dy.data<scalar_t>();
      // dg partials over fixed blocks of rows (fixed, so the sum does not depend on threads)
      constexpr int64_t kBlock = 64;
      const int64_t nblocks = (rows + kBlock - 1) / kBlock;
      Tensor partial = need_g ? zeros({std::max<int64_t>(1, nblocks), D}, x.dtype()) : Tensor();
      scalar_t* pp = need_g ? partial.data<scalar_t>() : nullptr;
      scalar_t* pdx = need_x ? dx.data<scalar_t>() : nullptr;
      parallel_for(0, nblocks, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t b = lo; b < hi; ++b) {
          for (int64_t r = b * kBlock; r < std::min(rows, (b + 1) * kBlock); ++r) {
            const scalar_t *xr = px + r * D, *dyr = pdy + r * D;
            const scalar_t rs = pr[r];
            if (need_g) {
              scalar_t* acc = pp + b * D;
              for (int64_t i = 0; i < D; ++i) acc[i] += dyr[i] * xr[i] * rs;
            }
            if (need_x) {
              const double dot = cpu::sum_lanes<double>(  // Σ dy*g*xh
                  D, [&](int64_t i) { return static_cast<double>(dyr[i] * pg[i]) * xr[i]; });
              const scalar_t c = static_cast<scalar_t>(dot * rs / static_cast<double>(D));
              scalar_t* dxr = pdx + r * D;
              for (int64_t i = 0; i < D; ++i) dxr[i] = rs * (dyr[i] * pg[i] - xr[i] * rs * c);
            }
          }
        }
      });
      if (need_g) dg = sum(partial, {0});
    });
    return std::vector<Tensor>{dx, dg};
  });
}

namespace {
// cos / sin of angle(t, i) for t in [0, T), i in [0, D/2): the last table is cached per
// thread, since every layer of a step (and its backward) asks for the same one.
struct RopeTable {
  int64_t T = -1, D = -1, pos_offset = 0;
  double theta = 0;
  std::vector<double> cos, sin;
};

const RopeTable& rope_table(int64_t T, int64_t D, double theta, int64_t pos_offset) {
  thread_local RopeTable t;
  if (t.T == T && t.D == D && t.theta == theta && t.pos_offset == pos_offset) return t;
  const int64_t half = D / 2;
  t.T = T; t.D = D; t.theta = theta; t.pos_offset = pos_offset;
  t.cos.resize(T * half);
  t.sin.resize(T * half);
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double ang = static_cast<double>(pos_offset + p) * inv_freq[i];
      t.cos[p * half + i] = std::cos(ang);
      t.sin[p * half + i] = std::sin(ang);
    }
  return t;
}

// Rotates x: [rows = outer*T, D] by angle(t, i) = (pos_offset + t) * theta^(-2i/D); sign = -1
// rotates backwards (the backward pass of a rotation is its inverse).
Tensor rope_apply(const Tensor& x_in, double theta, int64_t pos_offset, double sign) {
  const int64_t D = x_in.shape().back(), T = x_in.shape()[x_in.dim() - 2], half = D / 2;
  const int64_t rows = x_in.numel() / D;
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  const RopeTable& table = rope_table(T, D, theta, pos_offset);
  const std::vector<double>& cosv = table.cos;
  const std::vector<double>& sinv = table.sin;
  SKEIN_DISPATCH_FLOAT(x.dtype(), "rope", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / D), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t t = r % T;
        const scalar_t* xr = px + r * D;
        scalar_t* yr = py + r * D;
        for (int64_t i = 0; i < half; ++i) {
          const scalar_t c = static_cast<scalar_t>(cosv[t * half + i]);
          const scalar_t s = static_cast<scalar_t>(sign * sinv[t * half + i]);
          const scalar_t x1 = xr[i], x2 = xr[i + half];
          yr[i] = x1 * c - x2 * s;
          yr[i + half] = x2 * c + x1 * s;
        }
      }
    });
  });
  return y;
}
}  // namespace

// reference: Su et al., "RoFormer", 2021; half-split pairing as in GPT-NeoX / HF Llama.
Tensor rope(const Tensor& x, double theta, int64_t pos_offset) {
  SKEIN_CHECK(x.dim() >= 2 && x.shape().back() % 2 == 0, "rope: x must be [..., T, D] with even D, got ",
              shape_str(x.shape()));
  SKEIN_CHECK(is_floating(x.dtype()), "rope: x must be floating, got ", dtype_name(x.dtype()));
  Tensor y = rope_apply(x.detach(), theta, pos_offset, 1.0);
  return record("rope", y, {x}, [theta, pos_offset](const Tensor& g) {
    return std::vector<Tensor>{rope_apply(g, theta, pos_offset, -1.0)};
  });
}

}  // namespace skein
