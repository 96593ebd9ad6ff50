// kernels.cu — the first CUDA kernels (fill, add) and the runtime calls the backend needs.
// Self-contained (no skein headers), so nvcc compiles it at its own C++ standard.
#include <cuda_runtime.h>
#include "core/cuda/kernels.h"

namespace skein::cuda {
namespace {

__global__ void fill_f32_kernel(float* dst, float v, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = v;
}

__global__ void add_f32_kernel(float* out, const float* a, const float* b, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

constexpr int kThreads = 256;
unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }
const char* status(cudaError_t e) { return e == cudaSuccess ? nullptr : cudaGetErrorString(e); }

}  // namespace

int device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}
const char* malloc_bytes(void** p, size_t n) { return status(cudaMalloc(p, n)); }
const char* free_bytes(void* p) { return status(cudaFree(p)); }
const char* copy_bytes(void* dst, const void* src, size_t n, bool h2d) {
  return status(cudaMemcpy(dst, src, n, h2d ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
}
const char* fill_f32(float* dst, float v, int64_t n) {
  if (n == 0) return nullptr;
  fill_f32_kernel<<<blocks_for(n), kThreads>>>(dst, v, n);
  return status(cudaGetLastError());
}
const char* add_f32(float* out, const float* a, const float* b, int64_t n) {
  if (n == 0) return nullptr;
  add_f32_kernel<<<blocks_for(n), kThreads>>>(out, a, b, n);
  return status(cudaGetLastError());
}

}  // namespace skein::cuda
