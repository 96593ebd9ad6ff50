// gemm_bf16.h — bf16 storage conversions and a bf16 GEMM with f32 accumulation, routed at
// run time to the fastest kernel this CPU and build have: oneDNN's matmul (AMX tiles or
// AVX512-BF16 dot products; built in when Debian's libdnnl-dev is present), OpenBLAS's
// cblas_sbgemm (only when the loaded OpenBLAS was built with BUILD_BFLOAT16 — Debian's 0.3.21
// is not), else the operands widened to f32 and OpenBLAS sgemm. Standalone: no Tensor dtype.
// The bf16 type and its conversions are core/bf16.h's.
#pragma once
#include <cstdint>
#include "core/bf16.h"

namespace skein::cpu {

using skein::bf16;
using skein::bf16_to_f32;
using skein::f32_to_bf16;

struct Bf16Features {
  bool amx_bf16 = false;     // AMX tiles with bf16 (Sapphire Rapids and later), OS-enabled
  bool avx512_bf16 = false;  // VDPBF16PS (Cooper Lake, Sapphire Rapids, Zen 4/5)
};
Bf16Features bf16_features();  // from CPUID (and XCR0 / the kernel's AMX permission)

enum class Bf16Kernel { onednn, openblas_sbgemm, sgemm_fallback };
// The kernel gemm_bf16 uses on this machine (fixed at the first call; SKEIN_BF16_GEMM=onednn|
// sbgemm|sgemm forces one where it is available).
Bf16Kernel bf16_gemm_kernel();
// e.g. "onednn (amx_bf16)", "openblas_sbgemm (avx512_bf16)", "sgemm (no bf16 units)".
const char* bf16_gemm_kernel_name();
// Which kernels this build and machine could run (for benchmarks).
bool bf16_kernel_available(Bf16Kernel k);

// C = alpha · op(A) op(B) + beta · C, row-major. op(A): [M, K] (A is [K, M] when trans_a),
// op(B): [K, N] (B is [N, K] when trans_b); A, B bf16, C f32, f32 accumulation. `kernel`
// picks one explicitly (benchmarks); the default is bf16_gemm_kernel().
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
               int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm_bf16_with(Bf16Kernel kernel, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace skein::cpu
