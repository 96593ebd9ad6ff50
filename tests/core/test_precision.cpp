// test_precision.cpp — the precision policy (core/precision.h): under bf16-mixed, matmul (every
// operand layout: plain, transposed views, batched with a shared or a batched B, a column
// slice) equals an f64 product of the bf16-rounded operands to f32-accumulation accuracy, and
// the f32 product within bf16 tolerance; its gradients likewise; the per-step weight cache
// rounds each weight once, shares it between W and Wᵀ, is dropped at end_step (no stale
// weights); f32 mode and f64 operands are untouched. bf16 GEMMs run emulated (bf16 -> f32 +
// sgemm) where the CPU has no bf16 units, so the checks hold on every machine.
#include <gtest/gtest.h>
#include <cmath>
#include <vector>
#include "core/ops.h"
#include "core/precision.h"
#include "core/rng.h"

namespace skein {
namespace {

Tensor round_bf16(const Tensor& x) { return x.detach().to(DType::bf16).to(DType::f64); }

// max_ij |got - want| / (|a| |b|)_ij: the error relative to the product's magnitude.
double rel_err(const Tensor& got, const Tensor& want, const Tensor& a, const Tensor& b) {
  auto abs_of = [](const Tensor& x) { const Tensor d = x.detach().to(DType::f64); return sqrt(mul(d, d)); };
  const Tensor scale = matmul(abs_of(a), abs_of(b));
  const std::vector<double> g = got.to_vector(), w = want.to_vector(), s = scale.to_vector();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(g[i] - w[i]) / std::max(s[i], 1e-30));
  return worst;
}

double rel_norm_diff(const Tensor& x, const Tensor& y) {
  const std::vector<double> a = x.to_vector(), b = y.to_vector();
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]), n += b[i] * b[i];
  return std::sqrt(d / n);
}

struct Case {
  const char* name;
  Tensor a, b;
};

std::vector<Case> cases() {
  return {
      {"2-D", randn({33, 70}, 1), randn({70, 21}, 2)},
      {"a transposed", randn({70, 33}, 3).transpose(0, 1), randn({70, 21}, 4)},
      {"b transposed (Linear)", randn({33, 70}, 5), randn({21, 70}, 6).transpose(0, 1)},
      {"both transposed", randn({70, 33}, 7).transpose(0, 1), randn({21, 70}, 8).transpose(0, 1)},
      {"batched, shared 2-D b", randn({3, 11, 40}, 9), randn({40, 17}, 10)},
      {"batched b", randn({2, 3, 11, 40}, 11), randn({2, 3, 40, 17}, 12)},
      {"column slice of a", randn({33, 90}, 13).narrow(1, 10, 70), randn({70, 21}, 14)},
  };
}

TEST(Precision, MatmulMatchesAnF64OracleOnRoundedOperands) {
  PrecisionScope mixed(Precision::bf16_mixed, Device::cpu, /*allow_emulation=*/true);
  ASSERT_EQ(PrecisionPolicy::current().active(), Precision::bf16_mixed);
  for (const Case& c : cases()) {
    const Tensor got = matmul(c.a, c.b);
    EXPECT_EQ(got.dtype(), DType::f32) << c.name;
    const Tensor oracle = matmul(round_bf16(c.a), round_bf16(c.b));  // f64: untouched by the policy
    // f32 accumulation over K <= 90 terms: far below bf16's 2^-8.
    EXPECT_LT(rel_err(got, oracle, c.a, c.b), 2e-6) << c.name;
    // The f32 product: bf16 operands move it by up to ~2 x 2^-8 of |a||b|.
    Tensor f32;
    {
      PrecisionScope plain(Precision::f32);
      f32 = matmul(c.a, c.b);
    }
    const double e = rel_err(got, f32, c.a, c.b);
    EXPECT_LT(e, 2e-2) << c.name;
    EXPECT_GT(e, 1e-6) << c.name << ": bf16 changed nothing (the policy did not run)";
    EXPECT_LT(rel_norm_diff(got, f32), 2e-2) << c.name;
  }
}

TEST(Precision, F32ModeAndF64OperandsAreUntouched) {
  const Tensor a = randn({9, 20}, 21), b = randn({20, 7}, 22);
  const Tensor plain = matmul(a, b);
  {
    PrecisionScope mixed(Precision::bf16_mixed, Device::cpu, true);
    const Tensor a64 = a.to(DType::f64), b64 = b.to(DType::f64);
    EXPECT_EQ(matmul(a64, b64).to_vector(), matmul(a64, b64).to_vector());
    EXPECT_LT(rel_err(matmul(a64, b64), matmul(round_bf16(a), round_bf16(b)), a, b), 1e-2);
    EXPECT_GT(rel_err(matmul(a64, b64), matmul(round_bf16(a), round_bf16(b)), a, b), 1e-6);  // not rounded
  }
  EXPECT_EQ(matmul(a, b).to_vector(), plain.to_vector());  // the scope restored f32
  EXPECT_EQ(PrecisionPolicy::current().gemm_dtype(DType::f32, Device::cpu), DType::f32);
  EXPECT_EQ(parse_precision("bf16-mixed"), Precision::bf16_mixed);
  EXPECT_THROW(parse_precision("fp16"), Error);
}

TEST(Precision, GradientsMatchF32WithinBf16Tolerance) {
  // A two-layer MLP with a loss: every gradient GEMM (dX = dY Wᵀ, dW = Xᵀ dY) runs in bf16.
  auto grads = [](Precision p) {
    PrecisionScope scope(p, Device::cpu, true);
    Tensor x = randn({16, 24}, 31);
    Tensor w1 = randn({32, 24}, 32).requires_grad_(), w2 = randn({8, 32}, 33).requires_grad_();
    Tensor h = tanh(matmul(x, w1.transpose(0, 1)));
    Tensor y = matmul(h, w2.transpose(0, 1));
    sum(mul(y, y)).backward();
    return std::vector<Tensor>{w1.grad(), w2.grad()};
  };
  const auto f32 = grads(Precision::f32), bf = grads(Precision::bf16_mixed);
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(bf[i].dtype(), DType::f32);
    const double d = rel_norm_diff(bf[i], f32[i]);
    EXPECT_LT(d, 2e-2) << "grad " << i;
    EXPECT_GT(d, 1e-7) << "grad " << i << ": identical to f32";
  }
}

TEST(Precision, WeightCacheRoundsEachWeightOncePerStep) {
  PrecisionScope mixed(Precision::bf16_mixed, Device::cpu, true);
  PrecisionPolicy& policy = PrecisionPolicy::current();
  Tensor w = randn({12, 10}, 41).requires_grad_();
  const Tensor x = randn({5, 10}, 42);
  const int64_t before = policy.cache_conversions();
  policy.begin_step({w});
  const Tensor y1 = matmul(x, w.transpose(0, 1));     // Wᵀ: rounds W once
  const Tensor y2 = matmul(x, w.detach().transpose(0, 1));  // a detached view of the same storage: cached
  const Tensor z = matmul(y1, w);                    // W itself: the same cached matrix
  EXPECT_EQ(policy.cache_conversions() - before, 1);
  EXPECT_EQ(y1.to_vector(), y2.to_vector());
  sum(z).backward();  // backward GEMMs read the cache too
  EXPECT_EQ(policy.cache_conversions() - before, 1);
  policy.end_step();
  // The optimizer changes W: the next step sees the new values, never the stale copy.
  {
    NoGradGuard ng;
    Tensor wd = w.detach();
    mul_(wd, 2.0);
  }
  policy.begin_step({w});
  const Tensor y3 = matmul(x, w.transpose(0, 1));
  policy.end_step();
  EXPECT_EQ(policy.cache_conversions() - before, 2);
  EXPECT_EQ(mul(y1, 2.0).to_vector(), y3.to_vector());  // x 2 is exact in bf16 and f32
  // Outside a step nothing is cached: a changed weight is read as it is.
  {
    NoGradGuard ng;
    Tensor wd = w.detach();
    mul_(wd, 0.5);
  }
  EXPECT_EQ(matmul(x, w.transpose(0, 1)).to_vector(), y1.to_vector());
  EXPECT_EQ(policy.cache_conversions() - before, 2);
}

}  // namespace
}  // namespace skein
