// kernels.h — the plain-C++ face of the CUDA kernels (compiled by nvcc in kernels.cu):
// each returns nullptr on success or the CUDA error string. CudaBackend
// (cuda_backend.cpp) wraps them into skein::Backend with skein's error checks.
#pragma once
#include <cstddef>
#include <cstdint>

namespace skein::cuda {
int device_count();
const char* malloc_bytes(void** p, size_t nbytes);
const char* free_bytes(void* p);
const char* copy_bytes(void* dst, const void* src, size_t nbytes, bool host_to_device);
const char* fill_f32(float* dst, float value, int64_t n);
const char* add_f32(float* out, const float* a, const float* b, int64_t n);
}  // namespace skein::cuda
