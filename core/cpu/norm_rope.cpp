// norm_rope.cpp — the CPU kernels of rms_norm (forward, backward) and rope (one rotation, either
// direction). Derivations beside the op in core/ops/nn_fused.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/loops.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {

// dgain partials over fixed blocks of rows (fixed, so the sum does not depend on threads).
constexpr int64_t kNormBlock = 64;

// scale * cos / sin of angle(t, i) = (pos_offset + t) * inv_freq[i] for t in [0, T), i in
// [0, D/2): the last table is cached per thread, since every layer of a step (and its
// backward) asks for the same one.
struct RopeTable {
  int64_t T = -1, pos_offset = 0;
  double scale = 0;
  std::vector<double> inv_freq, cos, sin;
};

const RopeTable& rope_table(int64_t T, int64_t D, const double* inv_freq, double scale, int64_t pos_offset) {
  thread_local RopeTable t;
  const int64_t half = D / 2;
  if (t.T == T && t.scale == scale && t.pos_offset == pos_offset && static_cast<int64_t>(t.inv_freq.size()) == half &&
      std::equal(t.inv_freq.begin(), t.inv_freq.end(), inv_freq))
    return t;
  t.T = T; t.scale = scale; t.pos_offset = pos_offset;
  t.inv_freq.assign(inv_freq, inv_freq + half);
  t.cos.resize(T * half);
  t.sin.resize(T * half);
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double ang = static_cast<double>(pos_offset + p) * inv_freq[i];
      t.cos[p * half + i] = scale * std::cos(ang);
      t.sin[p * half + i] = scale * std::sin(ang);
    }
  return t;
}

}  // namespace

void rms_norm_fwd(DType dt, const void* x, const void* gain, void* y, void* rstd, int64_t rows,
                  int64_t D, double eps) {
  SKEIN_DISPATCH_FLOAT(dt, "rms_norm", [&] {
    const auto *px = static_cast<const scalar_t*>(x), *pg = static_cast<const scalar_t*>(gain);
    auto *py = static_cast<scalar_t*>(y), *pr = static_cast<scalar_t*>(rstd);
    parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = px + r * D;
        const double ss = sum_lanes<double>(D, [&](int64_t i) { return static_cast<double>(xr[i]) * xr[i]; });
        const scalar_t rs = static_cast<scalar_t>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
        pr[r] = rs;
        scalar_t* yr = py + r * D;
        for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rs * pg[i];
      }
    });
  });
}

size_t rms_norm_bwd_workspace(DType dt, int64_t rows, int64_t D) {
  const int64_t nblocks = std::max<int64_t>(1, (rows + kNormBlock - 1) / kNormBlock);
  return static_cast<size_t>(nblocks * D) * dtype_size(dt);
}

void rms_norm_bwd(DType dt, const void* x, const void* gain, const void* rstd, const void* dy,
                  void* dx, void* dgain, void* workspace, int64_t rows, int64_t D) {
  SKEIN_DISPATCH_FLOAT(dt, "rms_norm backward", [&] {
    const auto *px = static_cast<const scalar_t*>(x), *pg = static_cast<const scalar_t*>(gain);
    const auto *pr = static_cast<const scalar_t*>(rstd), *pdy = static_cast<const scalar_t*>(dy);
    const bool need_x = dx != nullptr, need_g = dgain != nullptr;
    const int64_t nblocks = (rows + kNormBlock - 1) / kNormBlock;
    auto* pp = static_cast<scalar_t*>(workspace);
    if (need_g) std::fill(pp, pp + std::max<int64_t>(1, nblocks) * D, scalar_t(0));
    auto* pdx = static_cast<scalar_t*>(dx);
    parallel_for(0, nblocks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        for (int64_t r = b * kNormBlock; r < std::min(rows, (b + 1) * kNormBlock); ++r) {
          const scalar_t *xr = px + r * D, *dyr = pdy + r * D;
          const scalar_t rs = pr[r];
          if (need_g) {
            scalar_t* acc = pp + b * D;
            for (int64_t i = 0; i < D; ++i) acc[i] += dyr[i] * xr[i] * rs;
          }
          if (need_x) {
            const double dot = sum_lanes<double>(  // Σ dy*g*xh
                D, [&](int64_t i) { return static_cast<double>(dyr[i] * pg[i]) * xr[i]; });
            const scalar_t c = static_cast<scalar_t>(dot * rs / static_cast<double>(D));
            scalar_t* dxr = pdx + r * D;
            for (int64_t i = 0; i < D; ++i) dxr[i] = rs * (dyr[i] * pg[i] - xr[i] * rs * c);
          }
        }
      }
    });
    if (need_g) {  // the partials summed down their column, block by block
      auto* dg = static_cast<scalar_t*>(dgain);
      std::fill(dg, dg + D, scalar_t(0));
      for (int64_t b = 0; b < std::max<int64_t>(1, nblocks); ++b)
        for (int64_t i = 0; i < D; ++i) dg[i] += pp[b * D + i];
    }
  });
}

void rope(DType dt, const void* x, void* y, int64_t rows, int64_t T, int64_t D, const double* inv_freq,
          double scale, int64_t pos_offset, double sign) {
  const int64_t half = D / 2;
  if (rows == 0 || T == 0) return;
  const RopeTable& table = rope_table(T, D, inv_freq, scale, pos_offset);
  const std::vector<double>& cosv = table.cos;
  const std::vector<double>& sinv = table.sin;
  SKEIN_DISPATCH_FLOAT(dt, "rope", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* py = static_cast<scalar_t*>(y);
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
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
}

}  // namespace skein::cpu
