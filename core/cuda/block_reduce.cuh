// block_reduce.cuh — the block-wide reductions every row kernel of core/cuda/ uses: a double
// sum or max over the threads of one block through a fixed shared-memory tree (so the result
// repeats bit for bit), and a row's max and Σ exp(x - max). `sh` holds blockDim.x doubles.
#pragma once
#include <cmath>
#include <cstdint>

namespace skein::cuda {

// Σ (max_) over the block of v, the same tree every time; the result in every thread.
__device__ inline double block_reduce(double v, double* sh, bool max_) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w)
      sh[threadIdx.x] = max_ ? fmax(sh[threadIdx.x], sh[threadIdx.x + w]) : sh[threadIdx.x] + sh[threadIdx.x + w];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}
__device__ inline double block_sum(double v, double* sh) { return block_reduce(v, sh, false); }
__device__ inline double block_max(double v, double* sh) { return block_reduce(v, sh, true); }

// The max m of row x[0, n) and s = Σ exp(x - m), in double, over one block (every thread gets
// both). s is not computed (left 0) when m is infinite.
template <typename T>
__device__ inline void row_max_sum_exp(const T* x, int64_t n, double* sh, double& m, double& s) {
  m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmax(m, static_cast<double>(x[i]));
  m = block_max(m, sh);
  s = 0;
  if (isinf(m)) return;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp(static_cast<double>(x[i]) - m);
  s = block_sum(s, sh);
}

}  // namespace skein::cuda
