// short_conv.cpp — short_conv (core/ops.h): the short causal depthwise convolution over time
// that fla's DeltaNet, gated DeltaNet and MoM layers put on q, k and v (ShortConvolution,
// kernel 4, SiLU), channels last:
//   z[b, t, c] = Σ_{j<K} w[c, j] · xx[b, t + j, c],   xx = [prefix; x] along time (K-1 + T rows)
//   y = silu(z) (with activation) or z
// i.e. PyTorch's Conv1d(groups = C, padding = K-1) cut to the first T outputs, where the K-1
// rows before x come from `prefix` (zeros when undefined): the carried inputs of generation,
// or the previous sequence-parallel rank's last inputs.
// Backward (hand-written): dz = dy · silu'(z);
//   dxx[b, s, c] = Σ_j w[c, j] · dz[b, s - j, c]  (0 <= s - j < T)  -> dx = dxx[K-1:], dprefix = dxx[:K-1]
//   dw[c, j]     = Σ_{b,t} dz[b, t, c] · xx[b, t + j, c]
// Threads split the channels, so every sum runs in one fixed order (thread-count independent).
// reference: fla-org/flash-linear-attention fla/modules/convolution.py (ShortConvolution);
// Arora et al., "Zoology", 2023 (short convolutions and associative recall).
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/ops/composed.h"
#include "core/ops/op_util.h"
#include "core/threadpool.h"

namespace skein {
namespace {

constexpr int64_t kChannelGrain = 32;

// Branch-free with the vectorisable exp (as skein::sigmoid): e^-x = inf gives 0.
template <typename T> T sigmoid_of(T x) { return T(1) / (T(1) + cpu::exp_of(-x)); }

// Where x's rows are: x's channels are contiguous, its batch and time strides are sb, st
// (a column slice of a wider projection is read in place).
struct RowStrides {
  int64_t sb, st;
};

// x's rows of a strided layout (a column slice of a wider projection) are too far apart for the
// hardware prefetcher: the loops ask for row t + kPrefetchRows's channels [lo, lo + n) ahead.
constexpr int64_t kPrefetchRows = 8;
template <typename T>
void prefetch_row(const T* x, RowStrides xst, int64_t b, int64_t t, int64_t T_, int64_t C, int64_t lo, int64_t n) {
  if (t >= T_ || xst.st == C) return;  // contiguous rows: the hardware prefetcher's case
  const char* row = reinterpret_cast<const char*>(x + b * xst.sb + t * xst.st + lo);
  for (int64_t off = 0; off < n * static_cast<int64_t>(sizeof(T)); off += 64) __builtin_prefetch(row + off);
}

// Row r of xx = [prefix; x] (r in [0, K-1+T)): prefix row r, or x row r - (K-1); a zero row
// (zeros: [C]) where there is no prefix.
template <typename T>
const T* xx_row(const T* x, RowStrides xst, const T* prefix, const T* zeros, int64_t b, int64_t r, int64_t K,
                int64_t C) {
  if (r >= K - 1) return x + b * xst.sb + (r - (K - 1)) * xst.st;
  return prefix ? prefix + (b * (K - 1) + r) * C : zeros;
}

}  // namespace

// The GPU path until a fused CUDA kernel lands (issue "fast fused CUDA mixers"): the same sum
// composed of device ops — K shifted views of xx times a column of w — so autograd gives the
// backward. x: [B, T, C], weight: [C, K], prefix: undefined | [B, K-1, C] -> [B, T, C].
Tensor short_conv_composed(const Tensor& x, const Tensor& weight, const Tensor& prefix, bool silu_activation) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), K = weight.size(1);
  Tensor xx = x;
  if (K > 1) xx = cat({prefix.defined() ? prefix : zeros({B, K - 1, C}, x.dtype(), x.device()), x}, 1);
  Tensor z;
  for (int64_t j = 0; j < K; ++j) {
    Tensor term = mul(xx.narrow(1, j, T), weight.narrow(1, j, 1).reshape({C}));
    z = j == 0 ? term : add(z, term);
  }
  return silu_activation ? silu(z) : z;
}

Tensor short_conv(const Tensor& x, const Tensor& weight, const Tensor& prefix, bool silu_activation) {
  SKEIN_CHECK(x.defined() && weight.defined(), "short_conv: undefined input");
  if (prefix.defined()) ops::common_device("short_conv", {x, weight, prefix});
  else ops::common_device("short_conv", {x, weight});
  SKEIN_CHECK(x.dim() == 3 && weight.dim() == 2 && weight.size(0) == x.size(2) && weight.size(1) >= 1,
              "short_conv: x ", shape_str(x.shape()), " and weight ", shape_str(weight.shape()),
              " do not match ([B, T, C] and [C, K])");
  SKEIN_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype(), "short_conv: x (", dtype_name(x.dtype()),
              ") and weight (", dtype_name(weight.dtype()), ") must be the same float dtype");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), K = weight.size(1);
  if (prefix.defined())
    SKEIN_CHECK(prefix.dim() == 3 && prefix.size(0) == B && prefix.size(1) == K - 1 && prefix.size(2) == C &&
                    prefix.dtype() == x.dtype(),
                "short_conv: prefix ", shape_str(prefix.shape()), " must be [B, K-1, C] = [", B, ", ", K - 1, ", ",
                C, "] of x's dtype");
  if (x.device() != Device::cpu) return short_conv_composed(x, weight, prefix, silu_activation);
  // x and prefix are read in place (no [prefix; x] copy; x may be a column slice of a wider
  // tensor) and kept for the backward.
  Tensor xs = x.strides()[2] == 1 || C == 1 ? x.detach() : x.detach().contiguous();
  const RowStrides xst{xs.strides()[0], xs.strides()[1]};
  Tensor pre = prefix.defined() ? prefix.detach().contiguous() : Tensor();
  Tensor w = weight.detach().contiguous();
  Tensor z = Tensor::empty({B, T, C}, x.dtype());
  Tensor y = silu_activation ? Tensor::empty({B, T, C}, x.dtype()) : z;
  SKEIN_DISPATCH_FLOAT(x.dtype(), "short_conv", [&] {
    const scalar_t *px = xs.data<scalar_t>(), *pw = w.data<scalar_t>();
    const scalar_t* pp = pre.defined() ? pre.data<scalar_t>() : nullptr;
    scalar_t *pz = z.data<scalar_t>(), *py = y.data<scalar_t>();
    std::vector<scalar_t> wt(static_cast<size_t>(K * C)), zero(static_cast<size_t>(C), scalar_t(0));
    for (int64_t c = 0; c < C; ++c)  // [K, C]: contiguous over channels
      for (int64_t j = 0; j < K; ++j) wt[static_cast<size_t>(j * C + c)] = pw[c * K + j];
    parallel_for(0, C, kChannelGrain, [&](int64_t lo, int64_t hi) {
      const int64_t n = hi - lo;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) {
          prefetch_row(px, xst, b, t + kPrefetchRows, T, C, lo, n);
          scalar_t* __restrict zr = pz + (b * T + t) * C + lo;
          for (int64_t c = 0; c < n; ++c) zr[c] = 0;
          for (int64_t j = 0; j < K; ++j) {
            const scalar_t* __restrict xr = xx_row(px, xst, pp, zero.data(), b, t + j, K, C) + lo;
            const scalar_t* __restrict wr = wt.data() + j * C + lo;
            for (int64_t c = 0; c < n; ++c) zr[c] += wr[c] * xr[c];
          }
          if (silu_activation) {
            scalar_t* __restrict yr = py + (b * T + t) * C + lo;
            for (int64_t c = 0; c < n; ++c) yr[c] = zr[c] * sigmoid_of(zr[c]);
          }
        }
    });
  });
  const bool has_prefix = prefix.defined();
  return record("short_conv", y, {x, weight, prefix}, [xs, xst, pre, w, z, silu_activation, has_prefix](const Tensor& g_in) {
    const int64_t B = z.size(0), T = z.size(1), C = z.size(2), K = w.size(1), S = K - 1 + T;
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty({B, T, C}, z.dtype());
    Tensor dprefix = has_prefix ? Tensor::empty({B, K - 1, C}, z.dtype()) : Tensor();
    Tensor dw = Tensor::empty({C, K}, z.dtype());
    SKEIN_DISPATCH_FLOAT(z.dtype(), "short_conv backward", [&] {
      const scalar_t *px = xs.data<scalar_t>(), *pw = w.data<scalar_t>(), *pz = z.data<scalar_t>(),
                     *pg = g.data<scalar_t>();
      const scalar_t* pp = pre.defined() ? pre.data<scalar_t>() : nullptr;
      scalar_t *pdx = dx.data<scalar_t>(), *pdw = dw.data<scalar_t>();
      scalar_t* pdp = has_prefix ? dprefix.data<scalar_t>() : nullptr;
      std::vector<scalar_t> wt(static_cast<size_t>(K * C)), zero(static_cast<size_t>(C), scalar_t(0));
      for (int64_t c = 0; c < C; ++c)  // [K, C]: contiguous over channels
        for (int64_t j = 0; j < K; ++j) wt[static_cast<size_t>(j * C + c)] = pw[c * K + j];
      parallel_for(0, C, kChannelGrain, [&](int64_t lo, int64_t hi) {
        const int64_t n = hi - lo;
        // dz of the last K rows of the current batch, a ring over time: row t at t % K.
        std::vector<scalar_t> dz(static_cast<size_t>(K * n));
        // dw[c, j] of this block, as [K, n]: partial sums in scalar_t over kRowBlock rows (f32
        // vectors), folded into double between blocks so long sums keep their accuracy.
        constexpr int64_t kRowBlock = 64;
        std::vector<scalar_t> part(static_cast<size_t>(n * K), scalar_t(0));
        std::vector<double> acc(static_cast<size_t>(n * K), 0.0);
        auto fold = [&] {
          for (size_t i = 0; i < part.size(); ++i) {
            acc[i] += static_cast<double>(part[i]);
            part[i] = 0;
          }
        };
        int64_t rows = 0;
        for (int64_t b = 0; b < B; ++b) {
          // s walks xx's rows; once dz[t] (t = s) exists, every tap reading xx row s - j... is
          // gathered: dxx[s] = Σ_j w[j] dz[s - j] over 0 <= s - j < T, written once.
          for (int64_t s = 0; s < S; ++s) {
            prefetch_row(px, xst, b, s + kPrefetchRows, T, C, lo, n);
            if (s < T) {  // dz row s, and its dw terms dz[s] · xx[s + j]
              const scalar_t* __restrict gr = pg + (b * T + s) * C + lo;
              const scalar_t* __restrict zr = pz + (b * T + s) * C + lo;
              scalar_t* __restrict dzr = dz.data() + (s % K) * n;
              if (silu_activation) {  // silu'(z) = σ(z) (1 + z (1 - σ(z)))
                for (int64_t c = 0; c < n; ++c) {
                  const scalar_t zc = zr[c], sg = sigmoid_of(zc);
                  dzr[c] = gr[c] * (sg * (scalar_t(1) + zc * (scalar_t(1) - sg)));
                }
              } else {
                for (int64_t c = 0; c < n; ++c) dzr[c] = gr[c];
              }
              for (int64_t j = 0; j < K; ++j) {
                const scalar_t* __restrict xr = xx_row(px, xst, pp, zero.data(), b, s + j, K, C) + lo;
                scalar_t* __restrict pr = part.data() + j * n;
                for (int64_t c = 0; c < n; ++c) pr[c] += dzr[c] * xr[c];
              }
              if (++rows == kRowBlock) {
                fold();
                rows = 0;
              }
            }
            scalar_t* __restrict out = s >= K - 1 ? pdx + (b * T + s - (K - 1)) * C + lo
                                       : (pdp ? pdp + (b * (K - 1) + s) * C + lo : nullptr);
            if (!out) continue;
            for (int64_t c = 0; c < n; ++c) out[c] = 0;
            for (int64_t j = 0; j < K; ++j) {
              const int64_t t = s - j;
              if (t < 0 || t >= T) continue;
              const scalar_t* __restrict dzr = dz.data() + (t % K) * n;
              const scalar_t* __restrict wr = wt.data() + j * C + lo;
              for (int64_t c = 0; c < n; ++c) out[c] += wr[c] * dzr[c];
            }
          }
        }
        fold();
        for (int64_t c = lo; c < hi; ++c)
          for (int64_t j = 0; j < K; ++j) pdw[c * K + j] = static_cast<scalar_t>(acc[j * n + (c - lo)]);
      });
    });
    return std::vector<Tensor>{dx, dw, dprefix};
  });
}

Tensor short_conv_tail(const Tensor& x, const Tensor& prefix, int64_t width) {
  SKEIN_CHECK(x.dim() == 3 && width >= 0, "short_conv_tail: x ", shape_str(x.shape()), " must be [B, T, C]");
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  if (T >= width) return x.narrow(1, T - width, width).contiguous();
  Tensor pre = prefix.defined() ? prefix : zeros({B, width, C}, x.dtype(), x.device());
  SKEIN_CHECK(pre.dim() == 3 && pre.size(1) == width, "short_conv_tail: prefix ", shape_str(pre.shape()),
              " must hold ", width, " rows");
  return cat({pre, x}, 1).narrow(1, T, width).contiguous();
}

}  // namespace skein
