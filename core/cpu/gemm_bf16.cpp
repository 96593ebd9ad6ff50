// gemm_bf16.cpp — bf16 array conversions (parallel), CPU feature detection and the bf16 GEMM routing
// (core/cpu/gemm_bf16.h).
#include "core/cpu/gemm_bf16.h"
#include <cblas.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "core/error.h"
#include "core/threadpool.h"
#ifdef SKEIN_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace skein {

void f32_to_bf16(const float* in, bf16* out, int64_t n) {
  parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = f32_to_bf16(in[i]);
  });
}

void bf16_to_f32(const bf16* in, float* out, int64_t n) {
  parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = bf16_to_f32(in[i]);
  });
}

}  // namespace skein

namespace skein::cpu {

namespace {

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

using SbgemmFn = void (*)(int, int, int, int, int, int, float, const bf16*, int, const bf16*, int, float, float*, int);

// OpenBLAS's cblas_sbgemm when the loaded library has it (built with BUILD_BFLOAT16).
SbgemmFn openblas_sbgemm() {
  static const SbgemmFn fn = reinterpret_cast<SbgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sbgemm"));
  return fn;
}

}  // namespace

Bf16Features bf16_features() {
  Bf16Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return f;  // no OSXSAVE: no AVX state
  const uint64_t xcr0 = xgetbv0();
  const bool zmm = (xcr0 & 0xe6) == 0xe6;                  // SSE, AVX, opmask, ZMM state enabled
  const bool tiles = (xcr0 & (3u << 17)) == (3u << 17);   // XTILECFG, XTILEDATA enabled
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24), avx512f = b & (1u << 16);
  f.amx_bf16 = amx_bf16 && amx_tile && tiles;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = avx512f && zmm && (a & (1u << 5));
  return f;
}

bool bf16_kernel_available(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::onednn:
#ifdef SKEIN_HAVE_DNNL
      return bf16_features().amx_bf16 || bf16_features().avx512_bf16;
#else
      return false;
#endif
    case Bf16Kernel::openblas_sbgemm: return openblas_sbgemm() != nullptr;
    case Bf16Kernel::sgemm_fallback: return true;
  }
  return false;
}

namespace {

Bf16Kernel pick_kernel() {
  if (const char* force = std::getenv("SKEIN_BF16_GEMM")) {
    const std::string s = force;
    const Bf16Kernel k = s == "onednn" ? Bf16Kernel::onednn : s == "sbgemm" ? Bf16Kernel::openblas_sbgemm
                         : s == "sgemm" ? Bf16Kernel::sgemm_fallback
                                        : throw Error("SKEIN_BF16_GEMM: unknown '" + s + "' (onednn, sbgemm, sgemm)");
    SKEIN_CHECK(bf16_kernel_available(k), "SKEIN_BF16_GEMM=", s, ": that kernel is not available on this machine");
    return k;
  }
  // Measured on an Intel Xeon with AMX (docs/PERF.md, "bf16 GEMM"): oneDNN is the faster
  // where both exist; OpenBLAS's sbgemm only where oneDNN is missing.
  const Bf16Features f = bf16_features();
  if (bf16_kernel_available(Bf16Kernel::onednn)) return Bf16Kernel::onednn;
  if ((f.amx_bf16 || f.avx512_bf16) && bf16_kernel_available(Bf16Kernel::openblas_sbgemm))
    return Bf16Kernel::openblas_sbgemm;
  return Bf16Kernel::sgemm_fallback;
}

void gemm_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t a_rows = ta ? K : M, b_rows = tb ? N : K;
  std::vector<float> a(static_cast<size_t>(a_rows * lda)), b(static_cast<size_t>(b_rows * ldb));
  bf16_to_f32(A, a.data(), a_rows * lda);
  bf16_to_f32(B, b.data(), b_rows * ldb);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), alpha, a.data(), static_cast<int>(lda), b.data(),
              static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

#ifdef SKEIN_HAVE_DNNL
void gemm_onednn(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                 const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  using namespace dnnl;
  static engine eng(engine::kind::cpu, 0);
  static stream strm(eng);
  const memory::desc a_md({M, K}, memory::data_type::bf16, ta ? memory::dims{1, lda} : memory::dims{lda, 1});
  const memory::desc b_md({K, N}, memory::data_type::bf16, tb ? memory::dims{1, ldb} : memory::dims{ldb, 1});
  const memory::desc c_md({M, N}, memory::data_type::f32, memory::dims{ldc, 1});
  primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  // oneDNN keeps its own cache of primitives (DNNL_PRIMITIVE_CACHE_CAPACITY), so a shape
  // seen before is not compiled again.
  const matmul::primitive_desc pd(matmul::desc(a_md, b_md, c_md), attr, eng);
  memory a_mem(a_md, eng, const_cast<bf16*>(A)), b_mem(b_md, eng, const_cast<bf16*>(B)), c_mem(c_md, eng, C);
  matmul(pd).execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
  strm.wait();
}
#endif

}  // namespace

Bf16Kernel bf16_gemm_kernel() {
  static const Bf16Kernel k = pick_kernel();
  return k;
}

const char* bf16_gemm_kernel_name() {
  static const std::string name = [] {
    const Bf16Features f = bf16_features();
    const std::string units = f.amx_bf16 ? "amx_bf16" : f.avx512_bf16 ? "avx512_bf16" : "no bf16 units";
    switch (bf16_gemm_kernel()) {
      case Bf16Kernel::onednn: return "onednn (" + units + ")";
      case Bf16Kernel::openblas_sbgemm: return "openblas_sbgemm (" + units + ")";
      case Bf16Kernel::sgemm_fallback: break;
    }
    return "sgemm (" + units + ")";
  }();
  return name.c_str();
}

void gemm_bf16_with(Bf16Kernel kernel, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                    int64_t lda, const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  SKEIN_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm_bf16: negative size M ", M, " N ", N, " K ", K);
  SKEIN_CHECK(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, "gemm_bf16: leading dimensions lda ", lda,
              " ldb ", ldb, " ldc ", ldc, " too small for M ", M, " N ", N, " K ", K);
  SKEIN_CHECK(bf16_kernel_available(kernel), "gemm_bf16: kernel ", static_cast<int>(kernel),
              " is not available on this machine");
  if (M == 0 || N == 0) return;
  switch (kernel) {
#ifdef SKEIN_HAVE_DNNL
    case Bf16Kernel::onednn: return gemm_onednn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    case Bf16Kernel::onednn: break;
#endif
    case Bf16Kernel::openblas_sbgemm:
      return openblas_sbgemm()(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                               static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
                               static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
    case Bf16Kernel::sgemm_fallback: return gemm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_bf16_with(bf16_gemm_kernel(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace skein::cpu
