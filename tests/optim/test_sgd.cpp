// test_sgd.cpp — SGD with momentum, Nesterov and weight decay against hand arithmetic.
#include <gtest/gtest.h>
#include "core/ops.h"
#include "optim/sgd.h"

namespace skein {
namespace {

Tensor v64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::f64); }
void set_grad(const Tensor& p, const std::vector<double>& g) {
  p.impl()->grad = from_vector(g, p.shape(), p.dtype()).impl_ptr();
}

SGDOptions opts(double mu, bool nesterov, double wd) {
  SGDOptions o;
  o.lr = 0.1;
  o.momentum = mu;
  o.nesterov = nesterov;
  o.weight_decay = wd;
  return o;
}

void expect_values(const Tensor& t, std::vector<double> want) {
  auto got = t.to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-15) << "element " << i;
}

// p0 = [1, -2], g1 = [0.5, -1], g2 = [0.1, 0.3], lr 0.1, mu 0.9.
TEST(SGD, MomentumTwoStepsByHand) {
  Tensor p = v64({1.0, -2.0}, {2});
  SGD opt({{"p", p}}, opts(0.9, false, 0.0));
  set_grad(p, {0.5, -1.0});
  opt.step();
  // buf = g1 = [0.5, -1];  p = p0 - 0.1 buf = [0.95, -1.9]
  expect_values(p, {1.0 - 0.1 * 0.5, -2.0 + 0.1 * 1.0});
  expect_values(opt.state_dict().at("momentum.p"), {0.5, -1.0});
  set_grad(p, {0.1, 0.3});
  opt.step();
  // buf = 0.9 [0.5, -1] + [0.1, 0.3] = [0.55, -0.6];  p = [0.95 - 0.055, -1.9 + 0.06]
  const double b0 = 0.9 * 0.5 + 0.1, b1 = 0.9 * -1.0 + 0.3;
  expect_values(opt.state_dict().at("momentum.p"), {b0, b1});
  expect_values(p, {(1.0 - 0.1 * 0.5) - 0.1 * b0, (-2.0 + 0.1 * 1.0) - 0.1 * b1});
  EXPECT_NEAR(p.at({0}), 0.895, 1e-15);
  EXPECT_NEAR(p.at({1}), -1.84, 1e-15);
}

TEST(SGD, NesterovTwoStepsByHand) {
  Tensor p = v64({1.0, -2.0}, {2});
  SGD opt({{"p", p}}, opts(0.9, true, 0.0));
  set_grad(p, {0.5, -1.0});
  opt.step();
  // buf = g1;  d = g1 + 0.9 buf = 1.9 g1 = [0.95, -1.9];  p = [0.905, -1.81]
  expect_values(p, {1.0 - 0.1 * 0.95, -2.0 + 0.1 * 1.9});
  set_grad(p, {0.1, 0.3});
  opt.step();
  // buf = [0.55, -0.6];  d = g2 + 0.9 buf = [0.595, -0.24];  p = [0.8455, -1.786]
  expect_values(p, {(1.0 - 0.1 * 0.95) - 0.1 * (0.1 + 0.9 * 0.55), (-2.0 + 0.1 * 1.9) - 0.1 * (0.3 + 0.9 * -0.6)});
  EXPECT_NEAR(p.at({0}), 0.8455, 1e-15);
}

TEST(SGD, WeightDecayAddedToGradientOnlyForMatrices) {
  Tensor w = v64({1.0, -2.0}, {1, 2}), b = v64({1.0, -2.0}, {2});
  SGD opt({{"w", w}, {"b", b}}, opts(0.9, false, 0.01));
  EXPECT_TRUE(opt.decays(0));
  EXPECT_FALSE(opt.decays(1));
  set_grad(w, {0.5, -1.0});
  set_grad(b, {0.5, -1.0});
  opt.step();
  // w: d = g + 0.01 p = [0.51, -1.02];  b: d = g
  const double d0 = 0.5 + 0.01 * 1.0, d1 = -1.0 + 0.01 * -2.0;
  expect_values(w, {1.0 - 0.1 * d0, -2.0 - 0.1 * d1});
  expect_values(b, {1.0 - 0.1 * 0.5, -2.0 + 0.1 * 1.0});
  set_grad(w, {0.1, 0.3});
  opt.step();
  const double w0 = 1.0 - 0.1 * d0, w1 = -2.0 - 0.1 * d1;
  const double e0 = 0.9 * d0 + (0.1 + 0.01 * w0), e1 = 0.9 * d1 + (0.3 + 0.01 * w1);
  expect_values(w, {w0 - 0.1 * e0, w1 - 0.1 * e1});
}

TEST(SGD, PlainSgdHasNoStateAndRejectsNesterovWithoutMomentum) {
  Tensor p = v64({1.0, -2.0}, {2});
  SGD opt({{"p", p}}, opts(0.0, false, 0.0));
  EXPECT_EQ(opt.state_dict().size(), 1u);  // just "step"
  set_grad(p, {0.5, -1.0});
  opt.step();
  expect_values(p, {0.95, -1.9});
  EXPECT_THROW(SGD({{"q", v64({1.0}, {1})}}, opts(0.0, true, 0.0)), Error);
}

}  // namespace
}  // namespace skein
