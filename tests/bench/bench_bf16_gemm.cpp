// bench_bf16_gemm.cpp — bf16 GEMM (f32 accumulate) GFLOP/s on the benchmark model's shapes
// (../shared/BENCHMARK.md, run A: 4096 tokens) for every kernel core/cpu/gemm_bf16.h can run
// here — oneDNN matmul (AMX / AVX512-BF16), OpenBLAS cblas_sbgemm, the bf16 -> f32 + sgemm
// fallback — against OpenBLAS sgemm on f32 operands, interleaved shape by shape. The peer,
// PyTorch's bf16 matmul on the same shapes: tests/bench/torch_bf16_matmul.py (both in one run:
// tests/bench/bf16_gemm.sh). Best of --reps timed calls after one warm-up call.
// Usage: bench_bf16_gemm [--threads 2] [--reps 5]
#include <cblas.h>
#include <dlfcn.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>
#include "core/cpu/gemm_bf16.h"
#include "core/threadpool.h"

using namespace skein;
using namespace skein::cpu;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape3 {
  const char* what;
  int64_t M, N, K;
  bool ta, tb;
};

template <typename F>
double best_seconds(int reps, F f) {
  f();  // warm-up (oneDNN compiles its kernel here)
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_thread_timeout(argv);
  int threads = 2, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else { std::fprintf(stderr, "bench_bf16_gemm: unknown option %s\n", k.c_str()); return 2; }
  }
  set_num_threads(threads);
  // oneDNN (Debian's build) threads with OpenMP: give it the same count.
  if (auto omp = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) omp(threads);
  const Bf16Features f = bf16_features();
  std::printf("# threads %d, amx_bf16 %d, avx512_bf16 %d, routed kernel: %s\n", threads, f.amx_bf16, f.avx512_bf16,
              bf16_gemm_kernel_name());
  const std::vector<Shape3> shapes = {
      {"q/k/v/o proj fwd", 4096, 512, 512, false, true},
      {"mlp up fwd (w1, w3)", 4096, 1408, 512, false, true},
      {"mlp down fwd (w2)", 4096, 512, 1408, false, true},
      {"lm head fwd", 4096, 8192, 512, false, true},
      {"mlp up dW (x^T dy)", 1408, 512, 4096, true, false},
      {"lm head dX (dy W)", 4096, 512, 8192, false, false},
      {"sgemm peak shape", 4096, 1536, 512, false, false},
  };
  const Bf16Kernel kernels[] = {Bf16Kernel::onednn, Bf16Kernel::openblas_sbgemm, Bf16Kernel::sgemm_fallback};
  const char* names[] = {"onednn", "sbgemm", "bf16->sgemm"};
  std::printf("%-22s %6s %6s %6s %12s", "shape", "M", "N", "K", "f32 sgemm");
  for (int i = 0; i < 3; ++i) std::printf(" %12s", names[i]);
  std::printf("   (GFLOP/s)\n");
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (const Shape3& s : shapes) {
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
    for (auto& a : A) a = nd(rng);
    for (auto& b : B) b = nd(rng);
    std::vector<bf16> Ab(A.size()), Bb(B.size());
    f32_to_bf16(A.data(), Ab.data(), static_cast<int64_t>(A.size()));
    f32_to_bf16(B.data(), Bb.data(), static_cast<int64_t>(B.size()));
    const double flop = 2.0 * s.M * s.N * s.K;
    const double t32 = best_seconds(reps, [&] {
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, (int)s.M, (int)s.N,
                  (int)s.K, 1.0f, A.data(), (int)lda, B.data(), (int)ldb, 0.0f, C.data(), (int)s.N);
    });
    std::printf("%-22s %6lld %6lld %6lld %12.1f", s.what, (long long)s.M, (long long)s.N, (long long)s.K,
                flop / t32 / 1e9);
    for (Bf16Kernel k : kernels) {
      if (!bf16_kernel_available(k)) { std::printf(" %12s", "n/a"); continue; }
      const double t = best_seconds(reps, [&] {
        gemm_bf16_with(k, s.ta, s.tb, s.M, s.N, s.K, 1.0f, Ab.data(), lda, Bb.data(), ldb, 0.0f, C.data(), s.N);
      });
      std::printf(" %12.1f", flop / t / 1e9);
    }
    std::printf("\n");
  }
  return 0;
}
