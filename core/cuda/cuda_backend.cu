// cuda_backend.cu — the CUDA Backend: device memory from the caching allocator, copies queued
// on the compute stream (a copy to the host waits for it and reports kernel-side errors).
#include "core/backend.h"
#include <algorithm>
#include <vector>
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein {
namespace {

class CudaBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda; }
  void* allocate(size_t n) override { return cuda::allocate(n); }
  void deallocate(void* p, size_t n) override { cuda::deallocate(p, n); }
  void copy(void* dst, const void* src, size_t n, CopyKind kind) override {
    if (!n) return;
    cudaStream_t s = cuda::stream();
    switch (kind) {
      case CopyKind::host_to_device:  // through pinned staging: the host does not wait for the DMA
        cuda::copy_to_device(dst, src, n);
        break;
      case CopyKind::device_to_host:
        cuda::check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s), "copy cuda -> host");
        cuda::raise_device_errors();  // waits for the copy; reports what kernels found
        break;
      case CopyKind::device_to_device:
        cuda::check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s), "copy cuda -> cuda");
        break;
    }
  }
  void synchronize() override { cuda::raise_device_errors(); }
  AllocatorStats stats() const override { return cuda::allocator_stats(); }
  void reset_peak() override { cuda::reset_peak(); }
  void empty_cache() override { cuda::empty_cache(); }
};

}  // namespace

void cuda_select(int index, bool tf32) {
  cuda::select_device(index);
  cuda::set_tf32(tf32);
}

int cuda_count() { return cuda::device_count(); }

// f32 GEMM rate through the same cuBLAS call skein's matmul makes, timed with events.
double cuda_sgemm_gflops(int64_t M, int64_t N, int64_t K, int runs) {
  SKEIN_CHECK(runs >= 1, "gemm_peak_gflops: need runs >= 1, got ", runs);
  const size_t bytes = static_cast<size_t>(M * K + K * N + M * N) * sizeof(float);
  float* buf = static_cast<float*>(cuda::allocate(bytes));
  cudaStream_t s = cuda::stream();
  // Not zeros: fill with a pattern (data-dependent power matters on GPUs).
  kern::MapArgs fill;
  fill.op = kern::MapOp::fill;
  fill.ndim = 1;
  fill.shape[0] = M * K + K * N + M * N;
  fill.out.data = buf;
  fill.out.strides[0] = 1;
  fill.s0 = 0.37;
  cuda::map(fill);
  kern::GemmArgs g;
  g.M = M; g.N = N; g.K = K;
  g.A = buf; g.lda = K;
  g.B = buf + M * K; g.ldb = N;
  g.C = buf + M * K + K * N; g.ldc = N;
  cudaEvent_t e0, e1;
  cuda::check(cudaEventCreate(&e0), "cudaEventCreate");
  cuda::check(cudaEventCreate(&e1), "cudaEventCreate");
  std::vector<double> ms;
  for (int i = 0; i <= runs; ++i) {  // call 0 is the warm-up
    cuda::check(cudaEventRecord(e0, s), "cudaEventRecord");
    cuda::gemm_batched(g);
    cuda::check(cudaEventRecord(e1, s), "cudaEventRecord");
    cuda::check(cudaEventSynchronize(e1), "cudaEventSynchronize");
    float t = 0;
    cuda::check(cudaEventElapsedTime(&t, e0, e1), "cudaEventElapsedTime");
    if (i) ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cuda::deallocate(buf, bytes);
  std::sort(ms.begin(), ms.end());
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

Backend* cuda_backend() {
  static Backend* b = cuda::device_count() > 0 ? new CudaBackend() : nullptr;
  return b;
}

}  // namespace skein
