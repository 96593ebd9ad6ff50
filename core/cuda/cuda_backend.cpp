// cuda_backend.cpp — the CUDA Backend: device memory and the first kernels (fill, add),
// wrapped with skein's error checks. Built only when CMake finds CUDA (SKEIN_HAVE_CUDA).
#include "core/backend.h"
#include "core/cuda/kernels.h"
#include "core/error.h"

namespace skein {
namespace {

void check(const char* err, const char* what) {
  SKEIN_CHECK(err == nullptr, "cuda: ", what, " failed: ", err);
}

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda; }
  void* allocate(size_t n) override {
    void* p = nullptr;
    if (n) check(cuda::malloc_bytes(&p, n), "cudaMalloc");
    return p;
  }
  void deallocate(void* p, size_t) override {
    if (p) cuda::free_bytes(p);  // never throws from a destructor path
  }
  void copy(void* dst, const void* src, size_t n, bool h2d) override {
    check(cuda::copy_bytes(dst, src, n, h2d), "cudaMemcpy");
  }
  void fill_f32(float* dst, float v, int64_t n) override { check(cuda::fill_f32(dst, v, n), "fill_f32"); }
  void add_f32(float* out, const float* a, const float* b, int64_t n) override {
    check(cuda::add_f32(out, a, b, n), "add_f32");
  }
};

}  // namespace

Backend* cuda_backend() {
  static Backend* b = cuda::device_count() > 0 ? new CudaBackend() : nullptr;
  return b;
}

}  // namespace skein
