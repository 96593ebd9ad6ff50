// test_clip.cpp — global gradient-norm clipping: the norm value, scaling only above
// max_norm, NaN/Inf passed through unscaled, shared gradients counted once, and a sum of
// squares that is accurate and the same for any thread count.
#include <gtest/gtest.h>
#include <cmath>
#include <limits>
#include "core/ops.h"
#include "core/threadpool.h"
#include "optim/clip.h"

namespace skein {
namespace {

void set_grad(const Tensor& p, const std::vector<double>& g) {
  p.impl()->grad = from_vector(g, p.shape(), p.dtype()).impl_ptr();
}

// a: [2, 2] with grad [1, 2, 2, 0] (Σ g² = 9), b: [1] with grad [4] (16): norm 5.
struct Fixture {
  Tensor a = zeros({2, 2}), b = zeros({1}), c = zeros({3});  // c has no grad
  Fixture() {
    set_grad(a, {1, 2, 2, 0});
    set_grad(b, {4});
  }
  std::vector<Tensor> params() const { return {a, b, c}; }
};

TEST(Clip, NormAndNoScalingAtOrBelowMax) {
  Fixture f;
  EXPECT_EQ(grad_squared_norm(f.params()), 25.0);
  EXPECT_EQ(clip_grad_norm(f.params(), 10.0), 5.0);
  EXPECT_EQ(f.a.grad().to_vector(), (std::vector<double>{1, 2, 2, 0}));
  EXPECT_EQ(clip_grad_norm(f.params(), 5.0), 5.0);  // norm == max_norm: untouched
  EXPECT_EQ(f.a.grad().to_vector(), (std::vector<double>{1, 2, 2, 0}));
  EXPECT_EQ(f.b.grad().to_vector(), (std::vector<double>{4}));
  EXPECT_FALSE(f.c.grad().defined());
}

TEST(Clip, ScalesAboveMax) {
  Fixture f;
  EXPECT_EQ(clip_grad_norm(f.params(), 1.0), 5.0);  // returns the pre-clip norm
  const double s = 1.0 / (5.0 + 1e-6);
  auto a = f.a.grad().to_vector();
  EXPECT_NEAR(a[1], 2 * s, 1e-7);
  EXPECT_NEAR(f.b.grad().item(), 4 * s, 1e-7);
  const double after = std::sqrt(grad_squared_norm(f.params()));
  EXPECT_LT(after, 1.0);
  EXPECT_NEAR(after, 1.0, 1e-6);
}

TEST(Clip, NamedParamsOverload) {
  Fixture f;
  NamedParams named{{"a", f.a}, {"b", f.b}, {"c", f.c}};
  EXPECT_EQ(clip_grad_norm(named, 2.5), 5.0);
  EXPECT_NEAR(f.b.grad().item(), 4 * 2.5 / (5.0 + 1e-6), 1e-6);
}

TEST(Clip, NanOrInfNormIsReturnedWithoutScaling) {
  Fixture f;
  set_grad(f.c, {0, std::numeric_limits<double>::quiet_NaN(), 0});
  EXPECT_TRUE(std::isnan(clip_grad_norm(f.params(), 1.0)));
  EXPECT_EQ(f.a.grad().to_vector(), (std::vector<double>{1, 2, 2, 0}));
  set_grad(f.c, {0, std::numeric_limits<double>::infinity(), 0});
  EXPECT_EQ(clip_grad_norm(f.params(), 1.0), std::numeric_limits<double>::infinity());
  EXPECT_EQ(f.b.grad().to_vector(), (std::vector<double>{4}));
  EXPECT_FALSE(clip_grads_to_norm(f.params(), std::nan(""), 1.0));
  EXPECT_THROW(clip_grad_norm(f.params(), 0.0), Error);
}

TEST(Clip, SharedTensorCountedAndScaledOnce) {
  Fixture f;
  std::vector<Tensor> twice{f.a, f.b, f.a};  // e.g. tied weights listed twice
  EXPECT_EQ(grad_squared_norm(twice), 25.0);
  clip_grad_norm(twice, 1.0);
  EXPECT_NEAR(f.a.grad().at({0, 0}), 1.0 / (5.0 + 1e-6), 1e-7);
}

TEST(Clip, SquaredNormAccurateAndThreadIndependent) {
  Tensor big = randn({300001}, 5, DType::f32), small = randn({7, 3}, 6, DType::f64);
  big.impl()->grad = randn({300001}, 7, DType::f32).impl_ptr();
  small.impl()->grad = randn({7, 3}, 8, DType::f64).impl_ptr();
  double naive = 0;
  for (double x : big.grad().to_vector()) naive += x * x;
  for (double x : small.grad().to_vector()) naive += x * x;
  const int prev = num_threads();
  set_num_threads(1);
  const double one = grad_squared_norm({big, small});
  set_num_threads(4);
  const double four = grad_squared_norm({big, small});
  set_num_threads(prev);
  EXPECT_EQ(one, four);  // bit for bit
  EXPECT_NEAR(one, naive, 1e-10 * naive);
}

}  // namespace
}  // namespace skein
