// test_composed_mixers.cpp — the device-op compositions of the mixers (core/ops/composed.h), the
// GPU path until their fused CUDA kernels land, run here on the CPU against the fused CPU ops:
// outputs, final states and every input gradient (f64, L2-relative ≤ 1e-10) for no gate, a fixed
// decay and GLA gates (linear attention), DeltaNet and gated DeltaNet (delta rule), with and
// without an initial state, T around the chunk sizes; and an f64 finite-difference gradcheck of
// each composition.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>
#include "core/ops.h"
#include "core/ops/composed.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {
using testing::expect_gradcheck;
using testing::rand64;
using V = std::vector<Tensor>;

double rel_l2(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += x[i] * x[i];
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-3);  // a reference of ~0 (roundoff): absolute
}

// Runs f on fresh f64 leaves holding `values`, weights its outputs with fixed random tensors and
// returns {outputs..., input gradients...}.
V run_with_grads(const std::function<V(const V&)>& f, const V& values) {
  V leaves;
  for (const Tensor& t : values) leaves.push_back(t.defined() ? t.detach().clone().requires_grad_() : Tensor());
  V outs = f(leaves);
  Tensor loss;
  for (size_t i = 0; i < outs.size(); ++i) {
    Tensor w = randn(outs[i].shape(), 900 + i, DType::f64);
    Tensor term = sum(mul(outs[i], w));
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
  V r = outs;
  for (const Tensor& l : leaves) r.push_back(l.defined() ? l.grad() : Tensor());
  return r;
}

void expect_same(const V& fused, const V& composed, const std::string& what) {
  ASSERT_EQ(fused.size(), composed.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    ASSERT_EQ(fused[i].defined(), composed[i].defined()) << what << " item " << i;
    if (!fused[i].defined()) continue;
    EXPECT_EQ(fused[i].shape(), composed[i].shape()) << what << " item " << i;
    EXPECT_LE(rel_l2(fused[i], composed[i]), 1e-10) << what << " item " << i << " (outputs, then input gradients)";
  }
}

enum class Gate { none, fixed, gla };

V la_inputs(Gate gate, int64_t B, int64_t H, int64_t T, int64_t Dk, int64_t Dv, bool s0, uint64_t seed) {
  V in{rand64({B, H, T, Dk}, seed), rand64({B, H, T, Dk}, seed + 1), rand64({B, H, T, Dv}, seed + 2), Tensor(),
       s0 ? rand64({B, H, Dk, Dv}, seed + 4) : Tensor()};
  if (gate == Gate::fixed) {
    std::vector<double> g(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h) g[static_cast<size_t>(h)] = std::log(1.0 - std::pow(2.0, -(2.0 + h)));
    in[3] = from_vector(g, {H}, DType::f64);
  } else if (gate == Gate::gla) {
    in[3] = rand64({B, H, T, Dk}, seed + 3, -1.5, 0.0);
  }
  return in;
}

TEST(ComposedMixers, LinearAttentionEqualsTheFusedOp) {
  uint64_t seed = 40;
  for (Gate gate : {Gate::none, Gate::fixed, Gate::gla})
    for (int64_t T : {1, 15, 16, 17, 40, 70})
      for (bool s0 : {false, true}) {
        const V in = la_inputs(gate, 2, 3, T, 5, 4, s0, seed += 7);
        const double scale = 0.6;
        const int64_t chunk = 32;
        V fused = run_with_grads([&](const V& x) {
          LinearAttentionResult r = linear_attention(x[0], x[1], x[2], x[3], x[4], scale, chunk);
          return V{r.out, r.final_state};
        }, in);
        V composed = run_with_grads([&](const V& x) {
          LinearAttentionResult r = linear_attention_composed(x[0], x[1], x[2], x[3], x[4], scale, chunk);
          return V{r.out, r.final_state};
        }, in);
        expect_same(fused, composed, "linear_attention gate " + std::to_string(static_cast<int>(gate)) + " T " +
                                         std::to_string(T) + (s0 ? " with initial state" : ""));
      }
}

TEST(ComposedMixers, LinearAttentionGradcheck) {
  for (Gate gate : {Gate::fixed, Gate::gla}) {
    V in = la_inputs(gate, 1, 2, 19, 3, 2, true, 70);
    if (gate == Gate::fixed) in[3] = rand64({2}, 75, -0.5, -0.05);  // differentiable decay
    expect_gradcheck([](const V& x) {
      LinearAttentionResult r = linear_attention_composed(x[0], x[1], x[2], x[3], x[4], 0.7, 8);
      return cat({r.out.reshape({-1}), r.final_state.reshape({-1})}, 0);
    }, in, 1e-6);
  }
}

// q, k (L2-normalised rows), v, beta in (0, 1), log_alpha <= 0 or undefined, initial state.
V dr_inputs(bool gated, int64_t B, int64_t H, int64_t T, int64_t Dk, int64_t Dv, bool s0, uint64_t seed) {
  return V{rand64({B, H, T, Dk}, seed), l2_normalize(rand64({B, H, T, Dk}, seed + 1)), rand64({B, H, T, Dv}, seed + 2),
           rand64({B, H, T}, seed + 3, 0.05, 0.95), gated ? rand64({B, H, T}, seed + 4, -0.7, 0.0) : Tensor(),
           s0 ? rand64({B, H, Dk, Dv}, seed + 5) : Tensor()};
}

TEST(ComposedMixers, DeltaRuleEqualsTheFusedOp) {
  uint64_t seed = 140;
  for (bool gated : {false, true})
    for (int64_t T : {1, 7, 8, 9, 31, 32, 33, 70})
      for (bool s0 : {false, true}) {
        const V in = dr_inputs(gated, 2, 2, T, 6, 5, s0, seed += 7);
        const double scale = 0.8;
        const int64_t chunk = 64;  // the composition runs chunks of 32: a different split than the fused op
        V fused = run_with_grads([&](const V& x) {
          LinearAttentionResult r = delta_rule(x[0], x[1], x[2], x[3], x[4], x[5], scale, chunk);
          return V{r.out, r.final_state};
        }, in);
        V composed = run_with_grads([&](const V& x) {
          LinearAttentionResult r = delta_rule_composed(x[0], x[1], x[2], x[3], x[4], x[5], scale, chunk);
          return V{r.out, r.final_state};
        }, in);
        expect_same(fused, composed, std::string("delta_rule ") + (gated ? "gated" : "plain") + " T " +
                                         std::to_string(T) + (s0 ? " with initial state" : ""));
      }
}

TEST(ComposedMixers, DeltaRuleGradcheck) {
  V in = dr_inputs(true, 1, 2, 11, 3, 2, true, 170);
  expect_gradcheck([](const V& x) {
    LinearAttentionResult r = delta_rule_composed(x[0], x[1], x[2], x[3], x[4], x[5], 0.7, 4);
    return cat({r.out.reshape({-1}), r.final_state.reshape({-1})}, 0);
  }, in, 1e-6);
}

TEST(ComposedMixers, ShortConvEqualsTheFusedOp) {
  uint64_t seed = 80;
  for (int64_t K : {1, 2, 4})
    for (bool prefix : {false, true})
      for (bool act : {false, true}) {
        V in{rand64({2, 9, 5}, seed), rand64({5, K}, seed + 1), prefix && K > 1 ? rand64({2, K - 1, 5}, seed + 2) : Tensor()};
        seed += 3;
        V fused = run_with_grads([&](const V& x) { return V{short_conv(x[0], x[1], x[2], act)}; }, in);
        V composed = run_with_grads([&](const V& x) { return V{short_conv_composed(x[0], x[1], x[2], act)}; }, in);
        expect_same(fused, composed, "short_conv K " + std::to_string(K));
      }
}

}  // namespace
}  // namespace skein
