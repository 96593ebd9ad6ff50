// reduce.cu — the CUDA reduce and scan kernels: sum / max / logsumexp over the middle axis of
// [outer, R, inner], max's backward, cumsum, Σx². Deterministic: a contiguous row is reduced by
// one block (per-thread double sums over a fixed stride, then a fixed shared-memory tree);
// strided columns and scans by one thread each, in order.
#include <cmath>
#include "core/cuda/block_reduce.cuh"
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::cuda {
namespace {

constexpr int kRowThreads = 256;

template <typename T>
__global__ void row_sum_kernel(const T* x, T* out, int64_t R) {
  __shared__ double sh[kRowThreads];
  const T* p = x + blockIdx.x * R;
  double acc = 0;
  for (int64_t i = threadIdx.x; i < R; i += blockDim.x) acc += static_cast<double>(p[i]);
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(acc);
}

template <typename T>
__global__ void row_logsumexp_kernel(const T* x, T* out, int64_t R) {
  __shared__ double sh[kRowThreads];
  double m, s;
  row_max_sum_exp(x + blockIdx.x * R, R, sh, m, s);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<T>(isinf(m) ? m : log(s) + m);
}

// One thread per (outer, inner) output, walking R in order.
template <typename T>
__global__ void column_kernel(kern::ReduceOp op, const T* x, T* out, int64_t* argmax, int64_t outer,
                              int64_t R, int64_t inner) {
  const int64_t oi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (oi >= outer * inner) return;
  const T* p = x + (oi / inner) * R * inner + oi % inner;
  if (op == kern::ReduceOp::sum) {
    T acc = 0;  // the CPU's column order and precision
    for (int64_t k = 0; k < R; ++k) acc += p[k * inner];
    out[oi] = acc;
  } else if (op == kern::ReduceOp::max) {
    int64_t best = 0;
    for (int64_t k = 1; k < R; ++k)
      if (p[k * inner] > p[best * inner] || isnan(p[k * inner])) best = k;
    out[oi] = p[best * inner];
    if (argmax) argmax[oi] = best;
  } else {
    T m = -INFINITY;
    for (int64_t k = 0; k < R; ++k) m = p[k * inner] > m ? p[k * inner] : m;
    if (isinf(m)) { out[oi] = m; return; }
    double s = 0;
    for (int64_t k = 0; k < R; ++k) s += exp(static_cast<double>(p[k * inner] - m));
    out[oi] = static_cast<T>(log(s)) + m;
  }
}

template <typename T>
__global__ void put_along_kernel(const T* g, const int64_t* idx, T* gin, int64_t outer, int64_t R, int64_t inner) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= outer * R * inner) return;
  const int64_t o = i / (R * inner), k = (i / inner) % R, c = i % inner;
  gin[i] = idx[o * inner + c] == k ? g[o * inner + c] : T(0);
}

template <typename T>
__global__ void cumsum_kernel(const T* x, T* out, int64_t outer, int64_t R, int64_t inner, bool reverse) {
  const int64_t oi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (oi >= outer * inner) return;
  const int64_t o = oi / inner, c = oi % inner;
  double acc = 0;
  for (int64_t i = 0; i < R; ++i) {
    const int64_t at = (o * R + (reverse ? R - 1 - i : i)) * inner + c;
    acc += static_cast<double>(x[at]);
    out[at] = static_cast<T>(acc);
  }
}

template <typename T>
__global__ void sum_squares_kernel(const T* x, double* out, int64_t n) {
  __shared__ double sh[1024];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace

void reduce(ReduceOp op, DType dt, const void* x, void* out, int64_t* argmax, int64_t outer,
            int64_t R, int64_t inner) {
  if (outer * inner == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "reduce", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* po = static_cast<scalar_t*>(out);
    if (inner == 1 && op == ReduceOp::sum) {
      row_sum_kernel<scalar_t><<<static_cast<unsigned>(outer), kRowThreads, 0, stream()>>>(px, po, R);
    } else if (inner == 1 && op == ReduceOp::logsumexp) {
      row_logsumexp_kernel<scalar_t><<<static_cast<unsigned>(outer), kRowThreads, 0, stream()>>>(px, po, R);
    } else {
      column_kernel<scalar_t><<<blocks_for(outer * inner), kThreads, 0, stream()>>>(op, px, po, argmax, outer, R, inner);
    }
  });
  check_launch("reduce");
}

void put_along(DType dt, const void* g, const int64_t* idx, void* gin, int64_t outer, int64_t R, int64_t inner) {
  const int64_t n = outer * R * inner;
  if (n == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "max backward", [&] {
    put_along_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream()>>>(
        static_cast<const scalar_t*>(g), idx, static_cast<scalar_t*>(gin), outer, R, inner);
  });
  check_launch("max backward");
}

void cumsum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, bool reverse) {
  if (outer * inner == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "cumsum", [&] {
    cumsum_kernel<scalar_t><<<blocks_for(outer * inner), kThreads, 0, stream()>>>(
        static_cast<const scalar_t*>(x), static_cast<scalar_t*>(out), outer, R, inner, reverse);
  });
  check_launch("cumsum");
}

void sum_squares(DType dt, const void* x, double* out, int64_t n) {
  SKEIN_DISPATCH_FLOAT(dt, "sum_squares", [&] {
    sum_squares_kernel<scalar_t><<<1, 1024, 0, stream()>>>(static_cast<const scalar_t*>(x), out, n);
  });
  check_launch("sum_squares");
}

}  // namespace skein::cuda
