// test_gemm_bf16.cpp — bf16 conversion (round-to-nearest-even against an independent
// reference written in double arithmetic: ties, NaN, ±inf, overflow, subnormals, ±0, and a
// sweep of random bit patterns) and the bf16 GEMM of every kernel available here against an
// f64 product of the same bf16 operands (transposes, alpha, beta, padded leading dims).
#include <gtest/gtest.h>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>
#include "core/cpu/gemm_bf16.h"

namespace skein::cpu {
namespace {

uint32_t bits(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }
float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// The nearest bf16 by distance in double, ties to the even mantissa; past the largest finite
// bf16 the upper neighbour is 2^128, which becomes inf (IEEE: round as if unbounded, then
// overflow).
bf16 reference_bf16(float x) {
  if (std::isnan(x)) return 0;  // not used for NaN (checked separately)
  const uint32_t u = bits(x);
  const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  if (lo == u) return static_cast<bf16>(lo >> 16);
  const double vx = x, vlo = from_bits(lo);
  const bool hi_overflows = ((hi >> 23) & 0xff) == 0xff;
  const double vhi = hi_overflows ? std::copysign(std::ldexp(1.0, 128), vx) : static_cast<double>(from_bits(hi));
  const double dlo = std::fabs(vx - vlo), dhi = std::fabs(vhi - vx);
  if (dlo < dhi) return static_cast<bf16>(lo >> 16);
  if (dhi < dlo) return static_cast<bf16>(hi >> 16);
  return static_cast<bf16>(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

TEST(Bf16, RoundsToNearestEvenOnChosenValues) {
  const float ties[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 256.0f + 1.0f, 0x1p-130f * 3};
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);   // halfway, rounds down to the even 1.0
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // halfway, rounds up to the even neighbour
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);  // just past halfway: up
  for (float t : ties) EXPECT_EQ(f32_to_bf16(t), reference_bf16(t)) << t;
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);   // past the largest bf16: inf
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f7fffu)), 0x7f7f);  // just below the overflow boundary
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7f8000u)), 0x7f80);  // the boundary tie goes to even = inf
  EXPECT_EQ(f32_to_bf16(from_bits(0x00000001u)), 0x0000);  // the smallest subnormal rounds to 0
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);  // subnormal tie to even
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff80ffffu, 0x7fffffffu}) {
    const bf16 b = f32_to_bf16(from_bits(nan));
    EXPECT_TRUE(std::isnan(bf16_to_f32(b))) << std::hex << nan;  // never collapses to inf
    EXPECT_EQ(b & 0x8000, (nan >> 16) & 0x8000) << "sign kept";
  }
}

TEST(Bf16, MatchesTheReferenceOnRandomBitPatternsAndRoundTrips) {
  std::mt19937 rng(5);
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float x = from_bits(rng());
    if (std::isnan(x)) continue;
    ASSERT_EQ(f32_to_bf16(x), reference_bf16(x)) << std::hexfloat << x;
    ++checked;
  }
  EXPECT_GT(checked, 1900000);
  for (uint32_t b = 0; b < 0x10000; ++b) {  // every bf16 survives bf16 -> f32 -> bf16
    const float f = bf16_to_f32(static_cast<bf16>(b));
    if (!std::isnan(f)) { EXPECT_EQ(f32_to_bf16(f), b); }
  }
  std::vector<float> in = {1.5f, -2.25f, 3.0e38f, 1.0f + 0x1p-8f}, back(4);
  std::vector<bf16> mid(4);
  f32_to_bf16(in.data(), mid.data(), 4);
  bf16_to_f32(mid.data(), back.data(), 4);
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -2.25f);
  EXPECT_EQ(back[3], 1.0f);
}

TEST(Bf16Gemm, EveryAvailableKernelMatchesAnF64Product) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  int kernels = 0;
  for (Bf16Kernel k : {Bf16Kernel::onednn, Bf16Kernel::openblas_sbgemm, Bf16Kernel::sgemm_fallback}) {
    if (!bf16_kernel_available(k)) continue;
    ++kernels;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t M = 37, N = 29, K = 70;
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        std::vector<bf16> A((ta ? K : M) * lda), B((tb ? N : K) * ldb);
        for (auto& a : A) a = f32_to_bf16(nd(rng));
        for (auto& b : B) b = f32_to_bf16(nd(rng));
        std::vector<float> C(M * ldc);
        for (auto& c : C) c = nd(rng);
        const std::vector<float> C0 = C;
        const float alpha = 0.75f, beta = 0.5f;
        gemm_bf16_with(k, ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t p = 0; p < K; ++p)
              s += static_cast<double>(bf16_to_f32(ta ? A[p * lda + i] : A[i * lda + p])) *
                   bf16_to_f32(tb ? B[j * ldb + p] : B[p * ldb + j]);
            const double want = alpha * s + beta * C0[i * ldc + j];
            ASSERT_NEAR(C[i * ldc + j], want, 1e-4 * (1 + std::fabs(want)))
                << "kernel " << static_cast<int>(k) << " ta " << ta << " tb " << tb << " at " << i << "," << j;
          }
        for (int64_t i = 0; i < M; ++i)  // the padding columns of C are untouched
          for (int64_t j = N; j < ldc; ++j) EXPECT_EQ(C[i * ldc + j], C0[i * ldc + j]);
      }
  }
  EXPECT_GE(kernels, 1);
  EXPECT_TRUE(bf16_kernel_available(Bf16Kernel::sgemm_fallback));
  const Bf16Features f = bf16_features();
  const std::string name = bf16_gemm_kernel_name();
  if (!f.amx_bf16 && !f.avx512_bf16) { EXPECT_EQ(name.rfind("sgemm", 0), 0u) << name; }
  std::printf("bf16 GEMM kernel here: %s (amx_bf16 %d, avx512_bf16 %d)\n", name.c_str(), f.amx_bf16, f.avx512_bf16);
}

}  // namespace
}  // namespace skein::cpu
