// test_adamw.cpp — AdamW against hand arithmetic (one and two steps, with and without
// weight decay), the decay filter (1-D / 0-d never decay, name overrides), per-parameter
// step counts for skipped parameters, f32 against f64, and a small regression it solves.
#include <gtest/gtest.h>
#include <cmath>
#include "core/ops.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace skein {
namespace {

Tensor v64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::f64); }
void set_grad(const Tensor& p, const std::vector<double>& g) {
  p.impl()->grad = from_vector(g, p.shape(), p.dtype()).impl_ptr();
}

// The two-step hand computation shared by the tests below: p0 = [1, -2], g1 = [0.5, -1],
// g2 = [0.1, 0.3], lr 0.1, betas (0.9, 0.95), eps 1e-8; `decay` = the factor 1 - lr * wd.
struct Hand {
  double p[2], m[2] = {0, 0}, v[2] = {0, 0};
};
Hand hand_step(Hand h, const double g[2], int t, double decay) {
  const double lr = 0.1, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  for (int i = 0; i < 2; ++i) {
    h.p[i] *= decay;                                  // p -= lr * wd * p
    h.m[i] = b1 * h.m[i] + (1 - b1) * g[i];           // m = b1 m + (1 - b1) g
    h.v[i] = b2 * h.v[i] + (1 - b2) * g[i] * g[i];    // v = b2 v + (1 - b2) g²
    const double mhat = h.m[i] / (1 - std::pow(b1, t));
    const double vhat = h.v[i] / (1 - std::pow(b2, t));
    h.p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
  }
  return h;
}
const double kG1[2] = {0.5, -1.0}, kG2[2] = {0.1, 0.3};

AdamWOptions hand_options(double wd) {
  AdamWOptions o;
  o.lr = 0.1;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = wd;
  return o;
}

TEST(AdamW, Defaults) {
  AdamWOptions o;
  EXPECT_EQ(o.lr, 3e-4);
  EXPECT_EQ(o.beta1, 0.9);
  EXPECT_EQ(o.beta2, 0.95);
  EXPECT_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.weight_decay, 0.1);
}

TEST(AdamW, TwoStepsByHandWithDecay) {
  Tensor w = v64({1.0, -2.0}, {1, 2});  // 2-D: decays
  AdamW opt({{"w", w}}, hand_options(0.1));
  ASSERT_TRUE(opt.decays(0));
  const double decay = 1 - 0.1 * 0.1;

  set_grad(w, {kG1[0], kG1[1]});
  opt.step();
  Hand h1 = hand_step(Hand{{1.0, -2.0}}, kG1, 1, decay);
  // Step 1: m̂ = g and sqrt(v̂) = |g|, so p = 0.99 p0 - 0.1 sign(g) (up to eps).
  EXPECT_NEAR(h1.p[0], 0.89, 1e-8);
  EXPECT_NEAR(h1.p[1], -1.88, 1e-8);
  EXPECT_NEAR(w.at({0, 0}), h1.p[0], 1e-15);
  EXPECT_NEAR(w.at({0, 1}), h1.p[1], 1e-15);
  auto sd = opt.state_dict();
  EXPECT_NEAR(sd.at("exp_avg.w").at({0, 0}), 0.05, 1e-16);
  EXPECT_NEAR(sd.at("exp_avg_sq.w").at({0, 1}), 0.05, 1e-16);  // 0.05 * 1²
  EXPECT_EQ(sd.at("step.w").item(), 1.0);
  EXPECT_EQ(opt.step_count(), 1);

  set_grad(w, {kG2[0], kG2[1]});
  opt.step();
  Hand h2 = hand_step(h1, kG2, 2, decay);
  EXPECT_NEAR(h2.p[0], 0.7998471188087057, 1e-12);  // independent value (Python, same formula)
  EXPECT_NEAR(h2.p[1], -1.8179587470422238, 1e-12);
  EXPECT_NEAR(w.at({0, 0}), h2.p[0], 1e-15);
  EXPECT_NEAR(w.at({0, 1}), h2.p[1], 1e-15);
  EXPECT_NEAR(opt.state_dict().at("exp_avg.w").at({0, 1}), -0.06, 1e-16);  // 0.9(-0.1) + 0.1(0.3)
  EXPECT_NEAR(opt.state_dict().at("exp_avg_sq.w").at({0, 0}), 0.012375, 1e-16);
}

TEST(AdamW, TwoStepsByHandWithoutDecay) {
  Tensor w = v64({1.0, -2.0}, {2, 1});
  AdamW opt({{"w", w}}, hand_options(0.0));
  EXPECT_FALSE(opt.decays(0));  // wd 0 decays nothing
  set_grad(w, {kG1[0], kG1[1]});
  opt.step();
  set_grad(w, {kG2[0], kG2[1]});
  opt.step();
  Hand h = hand_step(hand_step(Hand{{1.0, -2.0}}, kG1, 1, 1.0), kG2, 2, 1.0);
  EXPECT_NEAR(w.at({0, 0}), h.p[0], 1e-15);
  EXPECT_NEAR(w.at({1, 0}), h.p[1], 1e-15);
  EXPECT_NEAR(w.at({0, 0}), 0.9 - 0.1 * (0.055 / 0.19) / std::sqrt(0.012375 / 0.0975), 1e-7);
}

TEST(AdamW, OneDimAndScalarParametersGetNoDecay) {
  Tensor w = v64({1.0, -2.0}, {1, 2}), b = v64({1.0, -2.0}, {2}), s = v64({1.0}, {});
  AdamW opt({{"w", w}, {"b", b}, {"s", s}}, hand_options(0.1));
  EXPECT_TRUE(opt.decays(0));
  EXPECT_FALSE(opt.decays(1));
  EXPECT_FALSE(opt.decays(2));
  set_grad(w, {kG1[0], kG1[1]});
  set_grad(b, {kG1[0], kG1[1]});
  set_grad(s, {kG1[0]});
  opt.step();
  Hand with = hand_step(Hand{{1.0, -2.0}}, kG1, 1, 0.99), without = hand_step(Hand{{1.0, -2.0}}, kG1, 1, 1.0);
  EXPECT_NEAR(w.at({0, 0}), with.p[0], 1e-15);
  EXPECT_NEAR(b.at({0}), without.p[0], 1e-15);
  EXPECT_NEAR(b.at({1}), without.p[1], 1e-15);
  EXPECT_NEAR(s.item(), without.p[0], 1e-15);
  EXPECT_GT(std::abs(with.p[0] - without.p[0]), 1e-3);  // the two really differ
}

TEST(AdamW, DecayFilterOverridesByName) {
  Tensor emb = v64({1.0, -2.0}, {1, 2}), gain = v64({1.0, -2.0}, {2});
  AdamWOptions o = hand_options(0.1);
  o.decay = [](const std::string& name, const Tensor& p) {
    if (name == "embed.weight") return false;
    if (name == "norm.gain") return true;
    return decay_by_dim(name, p);
  };
  AdamW opt({{"embed.weight", emb}, {"norm.gain", gain}}, o);
  EXPECT_FALSE(opt.decays(0));
  EXPECT_TRUE(opt.decays(1));
  set_grad(emb, {kG1[0], kG1[1]});
  set_grad(gain, {kG1[0], kG1[1]});
  opt.step();
  EXPECT_NEAR(emb.at({0, 0}), hand_step(Hand{{1.0, -2.0}}, kG1, 1, 1.0).p[0], 1e-15);
  EXPECT_NEAR(gain.at({0}), hand_step(Hand{{1.0, -2.0}}, kG1, 1, 0.99).p[0], 1e-15);
}

TEST(AdamW, ParameterWithoutGradIsSkippedAndKeepsItsOwnStepCount) {
  Tensor a = v64({1.0, -2.0}, {2}), b = v64({1.0, -2.0}, {2});
  AdamW opt({{"a", a}, {"b", b}}, hand_options(0.0));
  set_grad(a, {kG1[0], kG1[1]});  // b has no grad in step 1
  opt.step();
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1.0, -2.0}));
  auto sd = opt.state_dict();
  EXPECT_EQ(sd.at("step.a").item(), 1.0);
  EXPECT_EQ(sd.at("step.b").item(), 0.0);
  EXPECT_EQ(sd.at("exp_avg.b").to_vector(), (std::vector<double>{0.0, 0.0}));
  // b's first update uses t = 1 bias corrections even though the global step is 2.
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  set_grad(b, {kG1[0], kG1[1]});
  opt.step();
  EXPECT_EQ(opt.step_count(), 2);
  Hand h = hand_step(Hand{{1.0, -2.0}}, kG1, 1, 1.0);
  EXPECT_NEAR(b.at({0}), h.p[0], 1e-15);
  EXPECT_NEAR(b.at({1}), h.p[1], 1e-15);
  EXPECT_NEAR(a.at({0}), h.p[0], 1e-15);  // a was skipped this time
}

TEST(AdamW, Float32MatchesFloat64) {
  Tensor w64 = randn({5, 7}, 11, DType::f64), w32 = w64.to(DType::f32);
  AdamW o64({{"w", w64}}, AdamWOptions{}), o32({{"w", w32}}, AdamWOptions{});
  for (int s = 0; s < 3; ++s) {
    Tensor g = randn({5, 7}, 100 + s, DType::f64);
    w64.impl()->grad = g.impl_ptr();
    w32.impl()->grad = g.to(DType::f32).impl_ptr();
    o64.step();
    o32.step();
  }
  auto a = w64.to_vector(), b = w32.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 2e-6 * (1 + std::abs(a[i])));
}

TEST(AdamW, RejectsBadOptionsAndGradients) {
  Tensor w = v64({1.0, 2.0}, {2});
  AdamWOptions o;
  o.beta2 = 1.0;
  EXPECT_THROW(AdamW({{"w", w}}, o), Error);
  EXPECT_THROW(AdamW({{"w", w}, {"w", v64({1.0}, {1})}}, AdamWOptions{}), Error);  // name twice
  EXPECT_THROW(AdamW({{"w", w}, {"v", w}}, AdamWOptions{}), Error);                // tensor twice
  Tensor m = v64({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_THROW(AdamW({{"mt", m.transpose(0, 1)}}, AdamWOptions{}), Error);         // not contiguous
  EXPECT_THROW(AdamW({{"ids", arange(0, 3)}}, AdamWOptions{}), Error);             // not floating
  AdamW opt({{"w", w}}, AdamWOptions{});
  EXPECT_THROW(opt.set_lr(-1.0), Error);
  w.impl()->grad = v64({1, 2, 3}, {3}).impl_ptr();
  try {
    opt.step();
    ADD_FAILURE() << "step accepted a gradient of the wrong shape";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
  }
}

// A 37-element f32 parameter runs the wide loop for most elements; 37 one-element
// parameters with the same values run the scalar loop only. Both must agree bit for bit,
// in the parameters and in both moments. lr 1 on parameters ~1 gives the update and the
// decayed parameter similar sizes, so a one-ulp difference in either shows.
TEST(AdamW, WideAndScalarLoopsAgreeBitForBit) {
  const int64_t n = 37;
  Tensor big = randn({n, 1}, 21), g = randn({n, 1}, 22);
  NamedParams singles;
  for (int64_t i = 0; i < n; ++i) singles.emplace_back(std::to_string(i), full({1, 1}, big.at({i, 0})));
  AdamWOptions o;
  o.lr = 1.0;
  AdamW wide({{"big", big}}, o), narrow(singles, o);
  for (int s = 0; s < 3; ++s) {
    big.impl()->grad = mul(g, 1.0 + 0.37 * s).impl_ptr();
    for (int64_t i = 0; i < n; ++i) set_grad(singles[i].second, {big.grad().at({i, 0})});
    wide.step();
    narrow.step();
  }
  auto ws = wide.state_dict(), ns = narrow.state_dict();
  for (int64_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    EXPECT_EQ(big.at({i, 0}), singles[i].second.item()) << "element " << i;
    EXPECT_EQ(ws.at("exp_avg.big").at({i, 0}), ns.at("exp_avg." + k).item()) << "element " << i;
    EXPECT_EQ(ws.at("exp_avg_sq.big").at({i, 0}), ns.at("exp_avg_sq." + k).item()) << "element " << i;
  }
}

// min over (w, b) of mean((X w + b - y)²) with y = X w* + b*: AdamW must reach low loss.
TEST(AdamW, SolvesLinearRegression) {
  Tensor x = randn({64, 4}, 1, DType::f32);
  Tensor w_true = from_vector({1.5, -2.0, 0.5, 3.0}, {4, 1});
  Tensor y = add(matmul(x, w_true), 0.7);
  Tensor w = zeros({4, 1}).requires_grad_(), b = zeros({1}).requires_grad_();
  AdamWOptions o;
  o.weight_decay = 0.0;  // decay would pull w off the exact solution
  AdamW opt({{"w", w}, {"b", b}}, o);
  // Adam hovers ~lr around the optimum at a constant lr, so anneal: cosine 0.1 -> 1e-4.
  LrSchedule sched{.peak_lr = 0.1, .min_lr = 1e-4, .warmup = 10, .total = 300, .decay = LrDecay::cosine};
  auto loss_fn = [&] { Tensor r = sub(add(matmul(x, w), b), y); return mean(mul(r, r)); };
  const double initial = loss_fn().item();
  for (int s = 0; s < 300; ++s) {
    opt.set_lr(lr_at(sched, opt.step_count()));
    opt.zero_grad();
    loss_fn().backward();
    opt.step();
  }
  const double final_loss = loss_fn().item();
  EXPECT_GT(initial, 5.0);
  EXPECT_LT(final_loss, 1e-6) << "initial " << initial;
}

}  // namespace
}  // namespace skein
