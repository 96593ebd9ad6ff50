// cpu_backend.cpp — the CPU Backend (caching allocator, memcpy, fill/add), and the
// backend() lookup that finds the CUDA backend when it was compiled in.
#include <cstring>
#include "core/allocator.h"
#include "core/backend.h"
#include "core/error.h"

namespace skein {

#ifdef SKEIN_HAVE_CUDA
Backend* cuda_backend();  // core/cuda/cuda_backend.cu; null when no GPU is visible
#endif

namespace {
class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }
  void* allocate(size_t n) override { return cpu_allocator::allocate(n); }
  void deallocate(void* p, size_t n) override { cpu_allocator::deallocate(p, n); }
  void copy(void* dst, const void* src, size_t n, bool) override { std::memcpy(dst, src, n); }
  void fill_f32(float* dst, float v, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] = v;
  }
  void add_f32(float* out, const float* a, const float* b, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }
};
}  // namespace

bool cuda_available() {
#ifdef SKEIN_HAVE_CUDA
  return cuda_backend() != nullptr;
#else
  return false;
#endif
}

Backend& backend(Device d) {
  static CpuBackend cpu;
  if (d == Device::cpu) return cpu;
#ifdef SKEIN_HAVE_CUDA
  if (Backend* b = cuda_backend()) return *b;
  throw Error("device cuda: skein was built with CUDA but no GPU is visible");
#else
  throw Error("device cuda: this skein build has no CUDA backend (CUDA was not found at build time)");
#endif
}

}  // namespace skein
