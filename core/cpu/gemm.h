// gemm.h — THE matrix-multiply entry point of skein on CPU: one wrapper over
// cblas_sgemm / cblas_dgemm, row-major, transposes passed as flags (never materialised).
// gemm_naive is the triple loop kept as the test oracle.
#pragma once
#include <cstdint>

namespace skein::cpu {

// C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, all row-major.
// op(A) = A (A stored [M, lda]) or A^T (A stored [K, lda]); likewise B.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

template <typename T>
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Wall time spent in the kernel table's CPU gemm entry (the matmul op's GEMMs: projections,
// MLP, LM head; not the GEMMs inside the fused mixers), in ns since the process started
// (benchmarks read it before and after a step to split a step's time).
int64_t gemm_entry_ns();

// sgemm GFLOP/s through gemm() at [M, K]·[K, N] on this machine now: one warm-up call,
// then the median of `runs` timed calls (the "% of sgemm peak" that logs and benchmarks
// set their achieved GFLOP/s against, measured in the same process).
double sgemm_gflops(int64_t M, int64_t N, int64_t K, int runs = 5);

// Inside a parallel_for, many small GEMMs run at once, one per pool thread: hold this
// scope around the parallel_for so BLAS runs each of them single-threaded (busy threads
// never exceed the pool size). Restores the pool's thread count on exit.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

}  // namespace skein::cpu
