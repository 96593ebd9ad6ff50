// backend.h — the device seam below the kernels: memory (a caching allocator per device with one
// stats API), copies between host and device, and synchronisation. The CPU backend is always
// present; the CUDA backend exists when skein was built with CUDA (SKEIN_HAVE_CUDA) and a GPU is
// visible at run time. The compute kernels are core/kernels/kernels.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"

namespace skein {

enum class CopyKind : uint8_t { host_to_device, device_to_host, device_to_device };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;  // never throws
  // Copies nbytes; on a GPU stream-ordered (a host destination waits for the copy).
  virtual void copy(void* dst, const void* src, size_t nbytes, CopyKind kind) = 0;
  // Waits for every queued kernel and copy of this device (the host needs a value).
  virtual void synchronize() = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;
};

// The device a run asked for does not exist here (no CUDA in the build, no GPU, no such index).
// The CLI exits 2 on it, as on a usage error.
struct DeviceUnavailable : Error {
  using Error::Error;
};

// The backend of a device; throws skein::Error naming the device when it is unavailable.
Backend& backend(Device d);
bool cuda_available();

// The GPU this process computes on: "cpu", "cuda" (GPU `local_rank % count`, so ranks of one node
// spread over its GPUs) or "cuda:N". Returns the device; an error names the setting and what is
// visible (no CUDA in this build, no GPU, no such index). tf32: cuBLAS f32 GEMMs on TF32 cores.
Device select_device(const std::string& name, int local_rank, bool tf32);
int cuda_device_count();
// f32 GEMM GFLOP/s at [M,K]·[K,N] on `device` now (median of `runs`, after a warm-up; CUDA times
// with events): the peak the step line's "% of peak" refers to.
double gemm_peak_gflops(Device device, int64_t M, int64_t N, int64_t K, int runs = 5);

}  // namespace skein
