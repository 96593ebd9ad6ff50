// test_matmul.cpp — matmul through the gemm wrapper vs the naive oracle: plain,
// transposed, strided, batched and shared-weight cases, f32 and f64.
#include <gtest/gtest.h>
#include <cmath>
#include "core/cpu/gemm.h"
#include "core/ops.h"

namespace skein {
namespace {

// The oracle: out[b, i, j] = Σ_k a[b, i, k] b[b, k, j] by the naive loop on contiguous copies.
Tensor oracle(const Tensor& a, const Tensor& b) {
  Tensor ac = a.contiguous(), bc = b.contiguous();
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const int64_t batch = a.numel() / (M * K);
  Shape os(a.shape().begin(), a.shape().end() - 2);
  os.push_back(M);
  os.push_back(N);
  Tensor out = zeros(os, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "oracle", [&] {
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t boff = b.dim() == 2 ? 0 : i * K * N;
      cpu::gemm_naive<scalar_t>(false, false, M, N, K, 1, ac.data<scalar_t>() + i * M * K, K,
                                bc.data<scalar_t>() + boff, N, 0, out.data<scalar_t>() + i * M * N, N);
    }
  });
  return out;
}

void expect_close(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  auto g = got.to_vector(), w = want.to_vector();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], w[i], tol * (1 + std::fabs(w[i]))) << i;
}

TEST(Matmul, PlainAndTransposedMatchOracle) {
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = dt == DType::f32 ? 1e-5 : 1e-12;
    Tensor a = randn({37, 19}, 1, dt), b = randn({19, 23}, 2, dt);
    expect_close(matmul(a, b), oracle(a, b), tol);
    Tensor at = randn({19, 37}, 3, dt).transpose(0, 1), bt = randn({23, 19}, 4, dt).transpose(0, 1);
    expect_close(matmul(at, b), oracle(at, b), tol);
    expect_close(matmul(a, bt), oracle(a, bt), tol);
    expect_close(matmul(at, bt), oracle(at, bt), tol);
  }
}

TEST(Matmul, StridedOperands) {
  // Row stride larger than the row (a narrow slice) goes to BLAS via lda.
  Tensor wide = randn({16, 40}, 5, DType::f64);
  Tensor a = wide.narrow(1, 3, 12);
  Tensor b = randn({12, 9}, 6, DType::f64);
  expect_close(matmul(a, b), oracle(a, b), 1e-12);
  // Neither row- nor column-major (a step-2 slice via expand/permute): copied first.
  Tensor c = randn({2, 12, 7}, 7, DType::f64).permute({1, 0, 2}).reshape({12, 14}).narrow(1, 0, 9);
  Tensor d = randn({9, 4}, 8, DType::f64);
  expect_close(matmul(c, d), oracle(c, d), 1e-12);
  Tensor e = randn({5, 1}, 9, DType::f64).expand({5, 6});  // stride 0 columns
  Tensor f = randn({6, 3}, 10, DType::f64);
  expect_close(matmul(e, f), oracle(e, f), 1e-12);
}

TEST(Matmul, BatchedAndSharedWeight) {
  for (DType dt : {DType::f32, DType::f64}) {
    double tol = dt == DType::f32 ? 1e-5 : 1e-12;
    Tensor a = randn({3, 2, 5, 7}, 11, dt), b = randn({3, 2, 7, 4}, 12, dt);
    expect_close(matmul(a, b), oracle(a, b), tol);
    Tensor w = randn({7, 6}, 13, dt);
    expect_close(matmul(a, w), oracle(a, w), tol);          // folded into one GEMM
    Tensor bp = randn({3, 2, 4, 7}, 14, dt).transpose(-1, -2);  // batched transposed b
    expect_close(matmul(a, bp), oracle(a, bp), tol);
    Tensor ap = randn({2, 3, 5, 7}, 15, dt).permute({1, 0, 2, 3});  // permuted batch dims
    expect_close(matmul(ap, b), oracle(ap, b), tol);
  }
}

TEST(Matmul, GemmWrapperAlphaBetaMatchesNaive) {
  const int64_t M = 6, N = 5, K = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor A = randn({ta ? K : M, ta ? M : K}, 21, DType::f64);
      Tensor B = randn({tb ? N : K, tb ? K : N}, 22, DType::f64);
      Tensor C1 = randn({M, N}, 23, DType::f64), C2 = C1.clone();
      cpu::gemm<double>(ta, tb, M, N, K, 0.5, A.data<double>(), A.size(1), B.data<double>(), B.size(1),
                        2.0, C1.data<double>(), N);
      cpu::gemm_naive<double>(ta, tb, M, N, K, 0.5, A.data<double>(), A.size(1), B.data<double>(),
                              B.size(1), 2.0, C2.data<double>(), N);
      expect_close(C1, C2, 1e-12);
    }
}

TEST(Matmul, EmptyAndDegenerate) {
  EXPECT_EQ(matmul(zeros({0, 3}), zeros({3, 4})).shape(), (Shape{0, 4}));
  Tensor z = matmul(ones({2, 0}), ones({0, 3}));
  EXPECT_EQ(z.to_vector(), std::vector<double>(6, 0.0));
  EXPECT_THROW(matmul(zeros({2, 3, 4}), zeros({3, 4, 5})), Error);  // batch mismatch
  EXPECT_THROW(matmul(zeros({3}), zeros({3, 4})), Error);
}

}  // namespace
}  // namespace skein
