// test_activation_memory.cpp — the ops that trade memory for recomputation: checkpoint (a
// re-run in backward gives the plain gradients, RNG replayed), lm_head_cross_entropy (equal
// to matmul + cross_entropy in value and gradient, chunked or not, ignored rows, scaled
// incoming gradient) and swiglu_down; f64 finite-difference gradchecks for each.
#include <gtest/gtest.h>
#include <cmath>
#include "core/allocator.h"
#include "core/ops.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

using testing::expect_gradcheck;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

Tensor leaf(const Shape& s, uint64_t seed, DType dt = DType::f64, double scale = 1.0) {
  Tensor t = mul(randn(s, seed, dt), scale).detach();
  t.requires_grad_();
  return t;
}

// A small two-layer function with a captured parameter: tanh(x W1) W2 (+ dropout when gen).
Tensor two_layer(const Tensor& x, const Tensor& w1, const Tensor& w2, Generator* gen) {
  Tensor h = tanh(matmul(x, w1));
  if (gen) h = dropout(h, 0.3, *gen);
  return matmul(h, w2);
}

TEST(Checkpoint, GradcheckF64) {
  Tensor w2 = leaf({5, 3}, 3);
  expect_gradcheck(
      [&](const std::vector<Tensor>& in) {
        return checkpoint([&](const std::vector<Tensor>& a) { return two_layer(a[0], a[1], w2, nullptr); },
                          {in[0], in[1]});
      },
      {randn({4, 6}, 1, DType::f64), randn({6, 5}, 2, DType::f64)});
}

TEST(Checkpoint, CapturedParametersGetThePlainGradients) {
  for (bool with_dropout : {false, true}) {
    Tensor x = leaf({7, 6}, 10), w1 = leaf({6, 5}, 11), w2 = leaf({5, 3}, 12), g = randn({7, 3}, 13, DType::f64);
    Generator plain_gen(99), ck_gen(99);
    Generator* pg = with_dropout ? &plain_gen : nullptr;
    Generator* cg = with_dropout ? &ck_gen : nullptr;
    // the input through an op first, so the checkpoint node has an upstream node too
    Tensor y0 = two_layer(mul(x, 2.0), w1, w2, pg);
    sum(mul(y0, g)).backward();
    const Tensor gx = x.grad().clone(), gw1 = w1.grad().clone(), gw2 = w2.grad().clone();
    x.zero_grad(), w1.zero_grad(), w2.zero_grad();
    std::vector<Generator*> rngs;
    if (cg) rngs.push_back(cg);
    Tensor y1 = checkpoint([&](const std::vector<Tensor>& a) { return two_layer(a[0], w1, w2, cg); },
                           {mul(x, 2.0)}, rngs);
    EXPECT_EQ(max_abs_diff(y0, y1), 0.0);
    EXPECT_EQ(ck_gen.offset(), plain_gen.offset()) << "forward leaves the generator where the plain run does";
    sum(mul(y1, g)).backward();
    EXPECT_EQ(ck_gen.offset(), plain_gen.offset()) << "the re-run's draws are replayed, not new";
    EXPECT_LE(max_abs_diff(x.grad(), gx), 1e-14);
    EXPECT_LE(max_abs_diff(w1.grad(), gw1), 1e-14);
    EXPECT_LE(max_abs_diff(w2.grad(), gw2), 1e-14);
    EXPECT_GT(max_abs(gw1), 0.0);
  }
}

TEST(Checkpoint, WithoutTheGeneratorTheReRunDrawsNewMasks) {
  // The replay is what makes dropout exact: without it the gradient differs (the test can fail).
  Tensor x = leaf({7, 6}, 10), w1 = leaf({6, 5}, 11), w2 = leaf({5, 3}, 12);
  Generator plain_gen(99), ck_gen(99);
  Tensor y0 = two_layer(x, w1, w2, &plain_gen);
  sum(y0).backward();
  const Tensor gw1 = w1.grad().clone();
  w1.zero_grad();
  Tensor y1 = checkpoint([&](const std::vector<Tensor>& a) { return two_layer(a[0], w1, w2, &ck_gen); }, {x});
  sum(y1).backward();
  EXPECT_GT(max_abs_diff(w1.grad(), gw1), 1e-6);
}

TEST(Checkpoint, RunsPlainWhenNothingNeedsGrad) {
  Tensor x = randn({3, 4}, 1, DType::f64), w = leaf({4, 2}, 2);
  int calls = 0;
  Tensor y = checkpoint([&](const std::vector<Tensor>& a) { ++calls; return matmul(a[0], w); }, {x});
  sum(y).backward();  // the closure recorded normally: w still gets its gradient
  EXPECT_EQ(calls, 1);
  EXPECT_LE(max_abs_diff(w.grad(), matmul(x.transpose(0, 1), ones({3, 2}, DType::f64))), 1e-14);
}

TEST(Checkpoint, KeepsNoIntermediates) {
  // 32 tanh layers of [256, 256] f32: the plain graph keeps every layer's output.
  const int64_t n = 256;
  Tensor x = leaf({n, n}, 1, DType::f32);
  auto f = [](const std::vector<Tensor>& a) {
    Tensor h = a[0];
    for (int i = 0; i < 32; ++i) h = tanh(add(h, 0.01));
    return h;
  };
  auto peak_of = [&](bool ck) {
    cpu_allocator::reset_peak();
    const int64_t base = cpu_allocator::stats().bytes_live;
    Tensor y = ck ? checkpoint(f, {x}) : f({x});
    return cpu_allocator::stats().bytes_peak - base;
  };
  const int64_t plain = peak_of(false), ck = peak_of(true);
  EXPECT_GT(plain, 30 * n * n * 4);
  EXPECT_LT(ck, 4 * n * n * 4);
}

// The plain head: logits = h Wᵀ, mean cross-entropy.
Tensor plain_head(const Tensor& h, const Tensor& w, const Tensor& t, int64_t ignore) {
  return cross_entropy(matmul(h, w.transpose(0, 1)), t, ignore);
}

Tensor targets_with_ignored(int64_t N, int64_t V) {
  std::vector<double> v;
  for (int64_t i = 0; i < N; ++i) v.push_back(i % 4 == 3 ? -100.0 : static_cast<double>((i * 7 + 2) % V));
  return from_vector(v, {N}, DType::i64);
}

TEST(LmHeadCrossEntropy, GradcheckF64ChunkedWithIgnoredRows) {
  const Tensor t = targets_with_ignored(9, 11);
  expect_gradcheck([&](const std::vector<Tensor>& in) { return lm_head_cross_entropy(in[0], in[1], t, -100, 4); },
                   {randn({9, 5}, 1, DType::f64), randn({11, 5}, 2, DType::f64)});
}

TEST(LmHeadCrossEntropy, EqualsThePlainHeadInValueAndGradient) {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-6;
    const int64_t N = 37, D = 16, V = 29;
    const Tensor t = targets_with_ignored(N, V);
    for (int64_t rows : {0, 1, 5, 37, 100}) {
      for (double scale : {1.0, 2.5}) {
        Tensor h = leaf({N, D}, 3, dt), w = leaf({V, D}, 4, dt, 0.5);
        Tensor l0 = mul(plain_head(h, w, t, -100), scale);
        l0.backward();
        const Tensor gh = h.grad().clone(), gw = w.grad().clone();
        h.zero_grad(), w.zero_grad();
        Tensor l1 = mul(lm_head_cross_entropy(h, w, t, -100, rows), scale);
        l1.backward();
        EXPECT_LE(std::fabs(l0.item() - l1.item()), tol * std::fabs(l0.item())) << "rows " << rows;
        EXPECT_LE(max_abs_diff(h.grad(), gh), tol * max_abs(gh)) << "rows " << rows;
        EXPECT_LE(max_abs_diff(w.grad(), gw), tol * max_abs(gw)) << "rows " << rows;
      }
    }
  }
}

TEST(LmHeadCrossEntropy, AllIgnoredGivesZeroAndNoGradGivesTheValue) {
  Tensor h = leaf({4, 3}, 1), w = leaf({6, 3}, 2);
  Tensor l = lm_head_cross_entropy(h, w, full({4}, -100, DType::i64));
  EXPECT_EQ(l.item(), 0.0);
  l.backward();
  EXPECT_EQ(max_abs(h.grad()), 0.0);
  EXPECT_EQ(max_abs(w.grad()), 0.0);
  const Tensor t = targets_with_ignored(4, 6);
  NoGradGuard no_grad;
  EXPECT_NEAR(lm_head_cross_entropy(h, w, t).item(), plain_head(h, w, t, -100).item(), 1e-14);
}

TEST(LmHeadCrossEntropy, BadInputsNameTheOpAndShapes) {
  Tensor h = randn({4, 3}, 1), w = randn({6, 3}, 2);
  auto message = [](auto f) {
    try { f(); } catch (const Error& e) { return std::string(e.what()); }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { lm_head_cross_entropy(h, randn({6, 4}, 2), full({4}, 1, DType::i64)); })
                .find("lm_head_cross_entropy: weight [6,4]"), std::string::npos);
  EXPECT_NE(message([&] { lm_head_cross_entropy(h, w, full({4}, 6, DType::i64)); }).find("target 6 at row 0"),
            std::string::npos);
  EXPECT_NE(message([&] { lm_head_cross_entropy(h, w, full({3}, 1, DType::i64)); }).find("targets [3]"),
            std::string::npos);
}

Tensor plain_swiglu(const Tensor& a, const Tensor& b, const Tensor& w2) {
  return matmul(mul(silu(a), b), w2.transpose(0, 1));
}

TEST(SwigluDown, GradcheckF64) {
  expect_gradcheck([](const std::vector<Tensor>& in) { return swiglu_down(in[0], in[1], in[2]); },
                   {randn({2, 3, 6}, 1, DType::f64), randn({2, 3, 6}, 2, DType::f64), randn({4, 6}, 3, DType::f64)});
}

TEST(SwigluDown, EqualsThePlainFormAndKeepsOnlyItsInputs) {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-6;
    Tensor a = leaf({3, 5, 8}, 1, dt), b = leaf({3, 5, 8}, 2, dt), w = leaf({4, 8}, 3, dt);
    Tensor g = randn({3, 5, 4}, 4, dt);
    Tensor y0 = plain_swiglu(a, b, w);
    sum(mul(y0, g)).backward();
    const Tensor ga = a.grad().clone(), gb = b.grad().clone(), gw = w.grad().clone();
    a.zero_grad(), b.zero_grad(), w.zero_grad();
    Tensor y1 = swiglu_down(a, b, w);
    sum(mul(y1, g)).backward();
    EXPECT_LE(max_abs_diff(y0, y1), tol * max_abs(y0));
    EXPECT_LE(max_abs_diff(a.grad(), ga), tol * max_abs(ga));
    EXPECT_LE(max_abs_diff(b.grad(), gb), tol * max_abs(gb));
    EXPECT_LE(max_abs_diff(w.grad(), gw), tol * max_abs(gw));
  }
  // memory: the fused op's graph holds a and b (already alive) and nothing of size [M, H]
  Tensor a = leaf({512, 256}, 1, DType::f32), b = leaf({512, 256}, 2, DType::f32), w = leaf({8, 256}, 3, DType::f32);
  const int64_t base = cpu_allocator::stats().bytes_live;
  Tensor y = swiglu_down(a, b, w);
  EXPECT_LT(cpu_allocator::stats().bytes_live - base, 512 * 256 * 4 / 2);
  Tensor y0 = plain_swiglu(a, b, w);
  EXPECT_GT(cpu_allocator::stats().bytes_live - base, 2 * 512 * 256 * 4);
}

}  // namespace
}  // namespace skein
