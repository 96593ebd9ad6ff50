// cpu_backend.cpp — the CPU Backend (the caching allocator, memcpy), and the backend() lookup
// that finds the CUDA backend when it was compiled in and a GPU is visible.
#include <cstring>
#include "core/allocator.h"
#include "core/backend.h"
#include "core/cpu/gemm.h"
#include "core/error.h"

namespace skein {

#ifdef SKEIN_HAVE_CUDA
Backend* cuda_backend();  // core/cuda/cuda_backend.cu; null when no GPU is visible
void cuda_select(int index, bool tf32);
double cuda_sgemm_gflops(int64_t M, int64_t N, int64_t K, int runs);
int cuda_count();
#endif

namespace {
class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }
  void* allocate(size_t n) override { return cpu_allocator::allocate(n); }
  void deallocate(void* p, size_t n) override { cpu_allocator::deallocate(p, n); }
  void copy(void* dst, const void* src, size_t n, CopyKind) override {
    if (n) std::memcpy(dst, src, n);
  }
  void synchronize() override {}
  AllocatorStats stats() const override { return cpu_allocator::stats(); }
  void reset_peak() override { cpu_allocator::reset_peak(); }
  void empty_cache() override { cpu_allocator::empty_cache(); }
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
  throw Error("device cuda: skein was built with CUDA but no GPU is visible (check nvidia-smi and "
              "CUDA_VISIBLE_DEVICES)");
#else
  throw Error("device cuda: this skein build has no CUDA backend (CUDA was not found at build time)");
#endif
}

int cuda_device_count() {
#ifdef SKEIN_HAVE_CUDA
  return cuda_count();
#else
  return 0;
#endif
}

Device select_device(const std::string& name, int local_rank, bool tf32) {
  if (name == "cpu") return Device::cpu;
  SKEIN_CHECK(name == "cuda" || name.rfind("cuda:", 0) == 0, "train.device: '", name,
              "' is not a device (cpu, cuda or cuda:N)");
#ifdef SKEIN_HAVE_CUDA
  const int count = cuda_count();
  if (count == 0)
    throw DeviceUnavailable(detail::concat("train.device: '", name, "' asks for a GPU but none is visible "
                                           "(nvidia-smi, CUDA_VISIBLE_DEVICES)"));
  int index = local_rank % count;
  if (name != "cuda") {
    try {
      index = std::stoi(name.substr(5));
    } catch (const std::exception&) {
      throw Error(detail::concat("train.device: '", name, "' is not cuda:N"));
    }
  }
  if (index < 0 || index >= count)
    throw DeviceUnavailable(detail::concat("train.device: '", name, "' but only ", count, " GPU(s) are visible"));
  cuda_select(index, tf32);
  return Device::cuda;
#else
  (void)local_rank;
  (void)tf32;
  throw DeviceUnavailable(detail::concat("train.device: '", name, "' asks for a GPU but this skein build has "
                                         "no CUDA backend (CUDA was not found at build time)"));
#endif
}

double gemm_peak_gflops(Device device, int64_t M, int64_t N, int64_t K, int runs) {
  if (device == Device::cpu) return cpu::sgemm_gflops(M, N, K, runs);
#ifdef SKEIN_HAVE_CUDA
  return cuda_sgemm_gflops(M, N, K, runs);
#else
  throw Error("gemm_peak_gflops: no CUDA backend in this build");
#endif
}

}  // namespace skein
