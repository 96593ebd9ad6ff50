// gemm.cu — the CUDA GEMM: one cublasGemmStridedBatchedEx per call. skein is row-major, cuBLAS
// column-major: C = op(A)·op(B) row-major is C^T = op(B)^T·op(A)^T column-major, so the operands
// swap places and the transpose flags stay flags (never a copy). f32 computes in f32 unless
// train.tf32 allows TF32 tensor cores; f64 in f64 (gradient checks); bf16 (train.precision
// bf16-mixed): bf16 A and B on the tensor cores, f32 accumulation and f32 C (CUBLAS_COMPUTE_32F).
// The bf16 path is UNVERIFIED: it compiles, no GPU has run it yet.
#include <limits>
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::cuda {

void gemm_batched(const GemmArgs& a) {
  if (a.M == 0 || a.N == 0 || a.batch == 0) return;
  constexpr int64_t lim = std::numeric_limits<int>::max();
  SKEIN_CHECK(a.M <= lim && a.N <= lim && a.K <= lim && a.lda <= lim && a.ldb <= lim && a.ldc <= lim &&
              a.batch <= lim, "gemm (cuda): dims M=", a.M, " N=", a.N, " K=", a.K, " batch=", a.batch,
              " exceed cuBLAS's int range");
  SKEIN_CHECK(a.dtype == DType::f32 || a.dtype == DType::f64 || a.dtype == DType::bf16, "gemm (cuda): dtype ",
              dtype_name(a.dtype), " is not supported (need f32, f64 or bf16)");
  const bool bf16 = a.dtype == DType::bf16;
  const bool f32 = a.dtype == DType::f32 || bf16;  // bf16: f32 scalars, accumulation and C
  const float alpha32 = static_cast<float>(a.alpha), beta32 = static_cast<float>(a.beta);
  const double alpha64 = a.alpha, beta64 = a.beta;
  const void* alpha = f32 ? static_cast<const void*>(&alpha32) : static_cast<const void*>(&alpha64);
  const void* beta = f32 ? static_cast<const void*>(&beta32) : static_cast<const void*>(&beta64);
  const cudaDataType_t type = f32 ? CUDA_R_32F : CUDA_R_64F;
  const cudaDataType_t ab_type = bf16 ? CUDA_R_16BF : type;
  const cublasComputeType_t compute =
      bf16 ? CUBLAS_COMPUTE_32F
      : f32 ? (tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC) : CUBLAS_COMPUTE_64F_PEDANTIC;
  check(cublasGemmStridedBatchedEx(
            cublas(), a.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, a.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
            static_cast<int>(a.N), static_cast<int>(a.M), static_cast<int>(a.K), alpha,
            a.B, ab_type, static_cast<int>(a.ldb), a.stride_b,
            a.A, ab_type, static_cast<int>(a.lda), a.stride_a, beta,
            a.C, type, static_cast<int>(a.ldc), a.stride_c, static_cast<int>(a.batch), compute,
            CUBLAS_GEMM_DEFAULT),
        "gemm (cublasGemmStridedBatchedEx)");
}

}  // namespace skein::cuda
