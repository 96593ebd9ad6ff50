// backend.h — the device seam. A Backend owns memory on its device and the few
// primitive kernels every device must have; ops dispatch on tensor.device().
// The CPU backend is always present; the CUDA backend exists when skein was built
// with CUDA (SKEIN_HAVE_CUDA) and a GPU is visible at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/dtype.h"

namespace skein {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  // Copies between host memory and this device (host_to_device true: src is host).
  virtual void copy(void* dst, const void* src, size_t nbytes, bool host_to_device) = 0;
  // dst[i] = value, for n f32 elements.
  virtual void fill_f32(float* dst, float value, int64_t n) = 0;
  // out[i] = a[i] + b[i], for n f32 elements.
  virtual void add_f32(float* out, const float* a, const float* b, int64_t n) = 0;
};

// The backend of a device; throws skein::Error naming the device when it is unavailable.
Backend& backend(Device d);
bool cuda_available();

}  // namespace skein
