// gemm.cpp — the BLAS wrapper and its naive oracle (see gemm.h).
#include "core/cpu/gemm.h"
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/gemm_bf16.h"
#include <cblas.h>
#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>
#include "core/error.h"
#include "core/rng.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {
void check_dims(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  constexpr int64_t lim = std::numeric_limits<blasint>::max();
  SKEIN_CHECK(M <= lim && N <= lim && K <= lim && lda <= lim && ldb <= lim && ldc <= lim,
              "gemm: dims M=", M, " N=", N, " K=", K, " exceed the BLAS integer range");
}
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_dims(M, N, K, lda, ldb, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  check_dims(M, N, K, lda, ldb, ldc);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

double sgemm_gflops(int64_t M, int64_t N, int64_t K, int runs) {
  SKEIN_CHECK(runs >= 1, "sgemm_gflops: need runs >= 1, got ", runs);
  Tensor a = randn({M, K}, 1), b = randn({K, N}, 2), c = Tensor::empty({M, N});
  std::vector<double> t;
  for (int i = 0; i <= runs; ++i) {  // call 0 is the warm-up
    const auto t0 = std::chrono::steady_clock::now();
    gemm<float>(false, false, M, N, K, 1.f, a.data<float>(), K, b.data<float>(), N, 0.f, c.data<float>(), N);
    if (i) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) / t[t.size() / 2] / 1e9;
}

void gemm_batched(const GemmArgs& a) {
  if (a.dtype == DType::bf16) {  // bf16 operands, f32 C (core/cpu/gemm_bf16.h routes the kernel)
    const auto* A = static_cast<const bf16*>(a.A);
    const auto* B = static_cast<const bf16*>(a.B);
    auto* C = static_cast<float*>(a.C);
    for (int64_t i = 0; i < a.batch; ++i)
      gemm_bf16(a.trans_a, a.trans_b, a.M, a.N, a.K, static_cast<float>(a.alpha), A + i * a.stride_a, a.lda,
                B + i * a.stride_b, a.ldb, static_cast<float>(a.beta), C + i * a.stride_c, a.ldc);
    return;
  }
  SKEIN_DISPATCH_FLOAT(a.dtype, "gemm", [&] {
    const auto* A = static_cast<const scalar_t*>(a.A);
    const auto* B = static_cast<const scalar_t*>(a.B);
    auto* C = static_cast<scalar_t*>(a.C);
    for (int64_t i = 0; i < a.batch; ++i)
      gemm<scalar_t>(a.trans_a, a.trans_b, a.M, a.N, a.K, static_cast<scalar_t>(a.alpha),
                     A + i * a.stride_a, a.lda, B + i * a.stride_b, a.ldb,
                     static_cast<scalar_t>(a.beta), C + i * a.stride_c, a.ldc);
  });
}

SingleThreadedBlas::SingleThreadedBlas() { openblas_set_num_threads(1); }
SingleThreadedBlas::~SingleThreadedBlas() { openblas_set_num_threads(num_threads()); }

template <typename T>
void gemm_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = ta ? A[k * lda + i] : A[i * lda + k];
        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
      }
      T prev = beta == T(0) ? T(0) : beta * C[i * ldc + j];
      C[i * ldc + j] = static_cast<T>(alpha * acc) + prev;
    }
}

template void gemm_naive<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                const float*, int64_t, float, float*, int64_t);
template void gemm_naive<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                 const double*, int64_t, double, double*, int64_t);

}  // namespace skein::cpu
