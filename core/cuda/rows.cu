// rows.cu — the CUDA row-fused kernels over contiguous [rows, n]: softmax / log_softmax,
// cross-entropy, rms_norm, l2_normalize (one block per row, double sums in a fixed tree) and
// rope (one thread per rotated pair). Column sums (rms_norm's dgain) run one thread per column
// over the rows in order, so every result repeats bit for bit.
#include <cmath>
#include "core/cuda/block_reduce.cuh"
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::cuda {
namespace {

constexpr int kRow = 256;

template <typename T>
__global__ void softmax_fwd_kernel(const T* x, T* y, int64_t n, bool log_) {
  __shared__ double sh[kRow];
  const T* xr = x + blockIdx.x * n;
  T* yr = y + blockIdx.x * n;
  double m, s;
  row_max_sum_exp(xr, n, sh, m, s);
  if (log_) {
    const double lse = log(s) + m;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = static_cast<T>(static_cast<double>(xr[i]) - lse);
  } else {
    const double inv = 1.0 / s;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = static_cast<T>(exp(static_cast<double>(xr[i]) - m) * inv);
  }
}

template <typename T>
__global__ void softmax_bwd_kernel(const T* g, const T* y, T* dx, int64_t n, bool log_) {
  __shared__ double sh[kRow];
  const T *gr = g + blockIdx.x * n, *yr = y + blockIdx.x * n;
  T* dr = dx + blockIdx.x * n;
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    s += log_ ? static_cast<double>(gr[i]) : static_cast<double>(gr[i]) * yr[i];
  s = block_sum(s, sh);
  const T st = static_cast<T>(s);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    dr[i] = log_ ? gr[i] - static_cast<T>(exp(static_cast<double>(yr[i]))) * st : yr[i] * (gr[i] - st);
}

// One block: loss = Σ (lse - x[t]) / count over rows whose target counts; bad targets raise the flag.
template <typename T>
__global__ void ce_loss_kernel(const T* x, const int64_t* t, const T* lse, T* loss, int64_t* count,
                               int64_t N, int64_t V, int64_t ignore, int* flag) {
  __shared__ double sh[kRow];
  double total = 0, cnt = 0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    const int64_t tr = t[r];
    if (tr == ignore) continue;
    if (tr < 0 || tr >= V) { atomicExch(flag, kTargetOutOfRange); continue; }
    total += static_cast<double>(lse[r]) - static_cast<double>(x[r * V + tr]);
    cnt += 1;
  }
  total = block_sum(total, sh);
  cnt = block_sum(cnt, sh);
  if (threadIdx.x == 0) {
    *count = static_cast<int64_t>(cnt);
    *loss = static_cast<T>(cnt > 0 ? total / cnt : 0.0);
  }
}

template <typename T>
__global__ void ce_bwd_kernel(const T* x, const int64_t* t, const T* lse, const T* g, const int64_t* count,
                              T* dx, int64_t V, int64_t ignore) {
  const int64_t r = blockIdx.x;
  T* dr = dx + r * V;
  const int64_t tr = t[r];
  const bool skip = tr == ignore || tr < 0 || tr >= V;
  const T scale = *count ? static_cast<T>(static_cast<double>(*g) / static_cast<double>(*count)) : T(0);
  const T l = lse[r];
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    T v = skip ? T(0) : static_cast<T>(exp(static_cast<double>(x[r * V + i] - l))) * scale;
    if (!skip && i == tr) v -= scale;
    dr[i] = v;
  }
}

template <typename T>
__global__ void rms_fwd_kernel(const T* x, const T* gain, T* y, T* rstd, int64_t D, double eps) {
  __shared__ double sh[kRow];
  const T* xr = x + blockIdx.x * D;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  ss = block_sum(ss, sh);
  const T rs = static_cast<T>(1.0 / sqrt(ss / static_cast<double>(D) + eps));
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
  T* yr = y + blockIdx.x * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) yr[i] = xr[i] * rs * gain[i];
}

template <typename T>
__global__ void rms_bwd_dx_kernel(const T* x, const T* gain, const T* rstd, const T* dy, T* dx, int64_t D) {
  __shared__ double sh[kRow];
  const T *xr = x + blockIdx.x * D, *dyr = dy + blockIdx.x * D;
  const T rs = rstd[blockIdx.x];
  double dot = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dot += static_cast<double>(dyr[i] * gain[i]) * xr[i];
  dot = block_sum(dot, sh);
  const T c = static_cast<T>(dot * rs / static_cast<double>(D));
  T* dxr = dx + blockIdx.x * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dxr[i] = rs * (dyr[i] * gain[i] - xr[i] * rs * c);
}

template <typename T>
__global__ void rms_bwd_dgain_kernel(const T* x, const T* rstd, const T* dy, T* dgain, int64_t rows, int64_t D) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= D) return;
  double acc = 0;
  for (int64_t r = 0; r < rows; ++r) acc += static_cast<double>(dy[r * D + i] * x[r * D + i] * rstd[r]);
  dgain[i] = static_cast<T>(acc);
}

template <typename T>
__global__ void rope_kernel(const T* x, T* y, int64_t rows, int64_t T_, int64_t D, const double* inv_freq,
                            double scale, int64_t pos_offset, double sign) {
  const int64_t half = D / 2;
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= rows * half) return;
  const int64_t r = j / half, i = j % half, t = r % T_;
  const double ang = static_cast<double>(pos_offset + t) * inv_freq[i];
  const T c = static_cast<T>(scale * cos(ang)), s = static_cast<T>(sign * scale * sin(ang));
  const T x1 = x[r * D + i], x2 = x[r * D + i + half];
  y[r * D + i] = x1 * c - x2 * s;
  y[r * D + i + half] = x2 * c + x1 * s;
}

template <typename T>
__global__ void l2_fwd_kernel(const T* x, T* y, T* norm, int64_t D, double eps) {
  __shared__ double sh[kRow];
  const T* xr = x + blockIdx.x * D;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  ss = block_sum(ss, sh);
  const T n = static_cast<T>(sqrt(ss + eps));
  if (threadIdx.x == 0) norm[blockIdx.x] = n;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[blockIdx.x * D + i] = xr[i] / n;
}

template <typename T>
__global__ void l2_bwd_kernel(const T* g, const T* y, const T* norm, T* dx, int64_t D) {
  __shared__ double sh[kRow];
  const T *gr = g + blockIdx.x * D, *yr = y + blockIdx.x * D;
  double dot = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dot += static_cast<double>(gr[i]) * yr[i];
  dot = block_sum(dot, sh);
  const T n = norm[blockIdx.x];
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dx[blockIdx.x * D + i] = (gr[i] - yr[i] * static_cast<T>(dot)) / n;
}

unsigned grid(int64_t rows) { return static_cast<unsigned>(rows); }
template <typename T> const T* in(const void* p) { return static_cast<const T*>(p); }
template <typename T> T* out(void* p) { return static_cast<T*>(p); }

}  // namespace

void softmax_fwd(DType dt, const void* x, void* y, int64_t rows, int64_t n, bool log) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "softmax", [&] {
    softmax_fwd_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(x), out<scalar_t>(y), n, log);
  });
  check_launch(log ? "log_softmax" : "softmax");
}

void softmax_bwd(DType dt, const void* g, const void* y, void* dx, int64_t rows, int64_t n, bool log) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "softmax backward", [&] {
    softmax_bwd_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(g), in<scalar_t>(y),
                                                                    out<scalar_t>(dx), n, log);
  });
  check_launch("softmax backward");
}

void cross_entropy_fwd(DType dt, const void* x, const int64_t* t, void* lse, void* loss, int64_t* count,
                       int64_t N, int64_t V, int64_t ignore_index) {
  reduce(ReduceOp::logsumexp, dt, x, lse, nullptr, N, V, 1);  // each row's log-sum-exp
  SKEIN_DISPATCH_FLOAT(dt, "cross_entropy", [&] {
    ce_loss_kernel<scalar_t><<<1, kRow, 0, stream()>>>(in<scalar_t>(x), t, in<scalar_t>(lse), out<scalar_t>(loss),
                                                       count, N, V, ignore_index, error_flag());
  });
  check_launch("cross_entropy");
}

void cross_entropy_bwd(DType dt, const void* x, const int64_t* t, const void* lse, const void* g,
                       const int64_t* count, void* dx, int64_t N, int64_t V, int64_t ignore_index) {
  if (N == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "cross_entropy backward", [&] {
    ce_bwd_kernel<scalar_t><<<grid(N), kRow, 0, stream()>>>(in<scalar_t>(x), t, in<scalar_t>(lse), in<scalar_t>(g),
                                                            count, out<scalar_t>(dx), V, ignore_index);
  });
  check_launch("cross_entropy backward");
}

void rms_norm_fwd(DType dt, const void* x, const void* gain, void* y, void* rstd, int64_t rows, int64_t D, double eps) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "rms_norm", [&] {
    rms_fwd_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(x), in<scalar_t>(gain), out<scalar_t>(y),
                                                                out<scalar_t>(rstd), D, eps);
  });
  check_launch("rms_norm");
}

size_t rms_norm_bwd_workspace(DType, int64_t, int64_t) { return 0; }

void rms_norm_bwd(DType dt, const void* x, const void* gain, const void* rstd, const void* dy, void* dx,
                  void* dgain, void*, int64_t rows, int64_t D) {
  SKEIN_DISPATCH_FLOAT(dt, "rms_norm backward", [&] {
    if (dx && rows > 0)
      rms_bwd_dx_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(x), in<scalar_t>(gain),
                                                                     in<scalar_t>(rstd), in<scalar_t>(dy), out<scalar_t>(dx), D);
    if (dgain && D > 0)
      rms_bwd_dgain_kernel<scalar_t><<<blocks_for(D), kThreads, 0, stream()>>>(in<scalar_t>(x), in<scalar_t>(rstd),
                                                                              in<scalar_t>(dy), out<scalar_t>(dgain), rows, D);
  });
  check_launch("rms_norm backward");
}

void rope(DType dt, const void* x, void* y, int64_t rows, int64_t T, int64_t D, const double* inv_freq, double scale,
          int64_t pos_offset, double sign) {
  const int64_t n = rows * (D / 2);
  if (n == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "rope", [&] {
    rope_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream()>>>(in<scalar_t>(x), out<scalar_t>(y), rows, T, D,
                                                                    inv_freq, scale, pos_offset, sign);
  });
  check_launch("rope");
}

void l2_normalize_fwd(DType dt, const void* x, void* y, void* norm, int64_t rows, int64_t D, double eps) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "l2_normalize", [&] {
    l2_fwd_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(x), out<scalar_t>(y), out<scalar_t>(norm), D, eps);
  });
  check_launch("l2_normalize");
}

void l2_normalize_bwd(DType dt, const void* g, const void* y, const void* norm, void* dx, int64_t rows, int64_t D) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "l2_normalize backward", [&] {
    l2_bwd_kernel<scalar_t><<<grid(rows), kRow, 0, stream()>>>(in<scalar_t>(g), in<scalar_t>(y), in<scalar_t>(norm),
                                                               out<scalar_t>(dx), D);
  });
  check_launch("l2_normalize backward");
}

}  // namespace skein::cuda
