// runtime.h — skein's CUDA runtime: the device this process uses, its one compute stream, the
// cuBLAS handle, the caching device allocator, and the checks every CUDA call and launch goes
// through (an error names the op and the CUDA message). Compiled by nvcc; included only by
// core/cuda/*.cu.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>
#include "core/allocator.h"
#include "core/error.h"

namespace skein::cuda {

// Throws skein::Error "cuda: <op>: <CUDA message>" when e is not cudaSuccess.
void check(cudaError_t e, const char* op);
void check(cublasStatus_t s, const char* op);
// After a kernel launch: the launch's own error (bad configuration), named by op.
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

int device_count();          // 0 when no driver or no GPU
int current_device();        // the GPU this process computes on (default 0)
void select_device(int index);  // before any allocation; errors name the index and the count
cudaStream_t stream();       // the compute stream every kernel and copy of skein is queued on
cublasHandle_t cublas();     // bound to stream()
void set_tf32(bool on);      // cuBLAS f32 GEMMs through TF32 tensor cores (off by default)
bool tf32();

// Errors a kernel finds in its data (an id outside a table) cannot throw on the device: the
// kernel stores a code in this flag (device memory) and clamps the access. The host reads the
// flag whenever it synchronises (Backend::synchronize, a device-to-host copy) and throws.
enum DeviceError : int { kNoError = 0, kTargetOutOfRange = 1, kIdOutOfRange = 2, kIndexOutOfRange = 3 };
int* error_flag();
void raise_device_errors();  // synchronises the stream, throws naming the first error seen

// The caching allocator: freed blocks go back to per-size-class free lists and are reused in
// stream order (one stream, so reuse after free is safe without events). On a failed cudaMalloc
// the cache is emptied and the allocation tried again; if it still fails the error names the
// requested and the free bytes.
void* allocate(size_t nbytes);
void deallocate(void* p, size_t nbytes);  // never throws
AllocatorStats allocator_stats();
void reset_peak();
void empty_cache();

// Host-to-device copy through pinned staging buffers (a small ring, each reused after the event of
// its last copy): the host copies into pinned memory and returns, the DMA runs on the compute
// stream in order with the kernels. The source may be reused as soon as this returns.
void copy_to_device(void* dst, const void* src, size_t nbytes);

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace skein::cuda
