// test_ops.cpp — forward values of the ops against hand-computed or naive results,
// and thread-count independence of the parallel kernels.
#include <gtest/gtest.h>
#include <cmath>
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

Tensor v64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::f64); }

TEST(Ops, UnaryValues) {
  Tensor x = v64({-1.0, 0.0, 2.0}, {3});
  auto g = gelu(x).to_vector();
  EXPECT_NEAR(g[0], -0.15865525393145707, 1e-12);
  EXPECT_EQ(g[1], 0.0);
  EXPECT_NEAR(g[2], 1.9544997361036416, 1e-12);
  auto s = silu(x).to_vector();
  EXPECT_NEAR(s[2], 2.0 / (1.0 + std::exp(-2.0)), 1e-12);
  EXPECT_NEAR(rsqrt(v64({4.0}, {1})).item(), 0.5, 1e-15);
  EXPECT_NEAR(pow(v64({3.0}, {1}), 2.5).item(), std::pow(3.0, 2.5), 1e-12);
  EXPECT_EQ(relu(x).to_vector(), (std::vector<double>{0, 0, 2}));
}

TEST(Ops, Reductions) {
  Tensor x = v64({1, 5, 3, 4, 2, 6}, {2, 3});
  EXPECT_EQ(sum(x, {1}).to_vector(), (std::vector<double>{9, 12}));
  EXPECT_EQ(sum(x, {0}, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(sum(x, {0}).to_vector(), (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(mean(x).item(), 3.5);
  EXPECT_EQ(max(x, 1).to_vector(), (std::vector<double>{5, 6}));
  EXPECT_EQ(max(x, 0).to_vector(), (std::vector<double>{4, 5, 6}));
  EXPECT_NEAR(logsumexp(x, 1).at({0}), std::log(std::exp(1) + std::exp(5) + std::exp(3)), 1e-12);
  // large values stay finite
  EXPECT_NEAR(logsumexp(v64({1000, 1000}, {2}), 0).item(), 1000 + std::log(2.0), 1e-9);
  Tensor y = randn({3, 4, 5}, 1, DType::f64);
  EXPECT_NEAR(sum(y, {0, 2}).at({1}), sum(sum(y, {2}), {0}).at({1}), 1e-12);
}

TEST(Ops, SoftmaxAndCrossEntropy) {
  Tensor x = randn({4, 7}, 2, DType::f64);
  Tensor p = softmax(x, -1);
  for (double s : sum(p, {1}).to_vector()) EXPECT_NEAR(s, 1.0, 1e-14);
  auto lp = log_softmax(x, -1).to_vector(), pv = p.to_vector();
  for (size_t i = 0; i < lp.size(); ++i) EXPECT_NEAR(std::exp(lp[i]), pv[i], 1e-14);
  Tensor t = from_vector({3, -100, 0, 6}, {4}, DType::i64);
  double want = 0;
  for (int64_t r : {0, 2, 3}) want -= lp[r * 7 + static_cast<int64_t>(t.at({r}))];
  EXPECT_NEAR(cross_entropy(x, t).item(), want / 3, 1e-14);
  Tensor all_ignored = from_vector({-100, -100, -100, -100}, {4}, DType::i64);
  EXPECT_EQ(cross_entropy(x, all_ignored).item(), 0.0);
}

TEST(Ops, RmsNormAndRope) {
  Tensor x = v64({3, 4}, {1, 2}), g = v64({1, 2}, {2});
  double r = 1.0 / std::sqrt((9 + 16) / 2.0 + 1e-6);
  auto y = rms_norm(x, g, 1e-6).to_vector();
  EXPECT_NEAR(y[0], 3 * r, 1e-12);
  EXPECT_NEAR(y[1], 8 * r, 1e-12);
  // rope: dims i and i + D/2 rotate together by pos * theta^(-2i/D)
  Tensor q = randn({1, 3, 4}, 3, DType::f64);
  Tensor o = rope(q, 100.0, 5);
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t i = 0; i < 2; ++i) {
      double ang = (5 + t) * std::pow(100.0, -2.0 * i / 4), c = std::cos(ang), s = std::sin(ang);
      double x1 = q.at({0, t, i}), x2 = q.at({0, t, i + 2});
      EXPECT_NEAR(o.at({0, t, i}), x1 * c - x2 * s, 1e-12);
      EXPECT_NEAR(o.at({0, t, i + 2}), x2 * c + x1 * s, 1e-12);
    }
}

TEST(Ops, EmbeddingWhereMaskedFill) {
  Tensor w = v64({0, 1, 10, 11, 20, 21}, {3, 2});
  EXPECT_EQ(embedding(w, from_vector({2, 0}, {2}, DType::i32)).to_vector(), (std::vector<double>{20, 21, 0, 1}));
  Tensor m = from_vector({1, 0, 1}, {3}, DType::i64);
  EXPECT_EQ(where(m, v64({1, 2, 3}, {3}), v64({9}, {1})).to_vector(), (std::vector<double>{1, 9, 3}));
  EXPECT_EQ(masked_fill(v64({1, 2, 3}, {3}), m, -5).to_vector(), (std::vector<double>{-5, 2, -5}));
}

TEST(Ops, ParallelKernelsIndependentOfThreads) {
  Tensor a = randn({64, 3000}, 4), b = randn({3000}, 5), g = ones({3000});
  auto run = [&] {
    std::vector<std::vector<double>> r;
    r.push_back(silu(add(a, b)).to_vector());
    r.push_back(sum(a, {0}).to_vector());
    r.push_back(softmax(a, -1).to_vector());
    r.push_back(rms_norm(a, g).to_vector());
    return r;
  };
  set_num_threads(1);
  auto one = run();
  set_num_threads(2);
  auto two = run();
  set_num_threads(1);
  EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace skein
