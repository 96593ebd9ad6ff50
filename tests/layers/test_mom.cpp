// test_mom.cpp — Mixture-of-Memories: routing weights, per-memory token lists (exactly the
// routed tokens, in time order), the aux loss on hand-computed cases, and gradients through
// the router and a memory's projections against finite differences (f64).
#include <gtest/gtest.h>
#include <cmath>
#include <set>
#include "layers/model.h"
#include "layers/mom.h"

namespace skein {
namespace {

ModelConfig tiny_mom(int64_t memories, int64_t topk, bool shared) {
  ModelConfig c;
  c.vocab_size = 30;
  c.d_model = 8;
  c.n_heads = 2;
  c.n_layers = 1;
  c.mlp_hidden = 12;
  c.layer_pattern = "M";
  c.mom_memories = memories;
  c.mom_topk = topk;
  c.mom_shared_memory = shared;
  c.chunk_size = 4;
  c.dtype = DType::f64;
  c.init_std = 0.3;
  return c;
}

Tensor some_ids(int64_t B, int64_t T, int64_t V) {
  std::vector<double> v;
  for (int64_t i = 0; i < B * T; ++i) v.push_back(static_cast<double>((i * 11 + 5) % V));
  return from_vector(v, {B, T}, DType::i64);
}

TEST(MoM, RoutingWeightsAndTokenLists) {
  HybridLM m(tiny_mom(4, 2, true));
  const int64_t B = 2, T = 9;
  m.forward(some_ids(B, T, 30));
  auto* mom = dynamic_cast<MoM*>(m.blocks[0]->mixer.get());
  ASSERT_NE(mom, nullptr);
  // weights: [K, B*T], each column sums to 1, all positive
  Tensor w = mom->last_weights;
  ASSERT_EQ(w.shape(), (Shape{2, B * T}));
  for (double s : sum(w, {0}).to_vector()) EXPECT_NEAR(s, 1.0, 1e-14);
  auto probs = mom->last_probs.to_vector();
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int> seen(T, 0);
    for (int64_t mem = 0; mem < 4; ++mem) {
      const auto& seg = mom->last_segments[b * 4 + mem];
      for (size_t i = 1; i < seg.size(); ++i) EXPECT_LT(seg[i - 1], seg[i]) << "time order";
      for (int64_t t : seg) {
        seen[t]++;
        // memory mem is among the token's top-2 probabilities
        const double* p = probs.data() + (b * T + t) * 4;
        int higher = 0;
        for (int j = 0; j < 4; ++j) higher += p[j] > p[mem];
        EXPECT_LT(higher, 2) << "token " << t << " routed to a memory outside its top-2";
      }
    }
    for (int64_t t = 0; t < T; ++t) EXPECT_EQ(seen[t], 2) << "token " << t << " must reach exactly top-k memories";
  }
  double counted = 0;
  for (double c : mom->last_counts) counted += c;
  EXPECT_EQ(counted, 2.0 * B * T);
}

TEST(MoM, AuxLossHandComputed) {
  HybridLM m(tiny_mom(2, 1, false));
  auto* mom = dynamic_cast<MoM*>(m.blocks[0]->mixer.get());
  // balanced: probs [[.7,.3],[.4,.6]], top-1 -> counts [1,1]; f = [.5,.5], P = [.55,.45]
  mom->last_probs = from_vector({0.7, 0.3, 0.4, 0.6}, {2, 2}, DType::f64);
  mom->last_counts = {1, 1};
  EXPECT_NEAR(mom_aux_loss({mom}).item(), 2 * (0.5 * 0.55 + 0.5 * 0.45), 1e-15);
  // collapsed: probs [[.7,.3],[.8,.2]] -> counts [2,0]; f = [1,0], P = [.75,.25] -> 2 * .75
  mom->last_probs = from_vector({0.7, 0.3, 0.8, 0.2}, {2, 2}, DType::f64);
  mom->last_counts = {2, 0};
  EXPECT_NEAR(mom_aux_loss({mom}).item(), 1.5, 1e-15);
  // two layers pool their statistics: f = [3/4, 1/4], P = [.7, .3] over 4 tokens
  HybridLM m2(tiny_mom(2, 1, false));
  auto* mom2 = dynamic_cast<MoM*>(m2.blocks[0]->mixer.get());
  mom2->last_probs = from_vector({0.6, 0.4, 0.7, 0.3}, {2, 2}, DType::f64);
  mom2->last_counts = {1, 1};
  const double P0 = (0.7 + 0.8 + 0.6 + 0.7) / 4, P1 = 1 - P0;
  EXPECT_NEAR(mom_aux_loss({mom, mom2}).item(), 2 * (0.75 * P0 + 0.25 * P1), 1e-15);
}

// d(loss)/d(param) by autograd vs central differences on a few entries of `param`.
void check_param_grad(HybridLM& m, Tensor param, const Tensor& ids, const Tensor& tgt) {
  m.zero_grad();
  m.loss(ids, tgt).total.backward();
  ASSERT_TRUE(param.grad().defined());
  std::vector<double> analytic = param.grad().to_vector();
  double* p = param.data<double>();
  double max_g = 0;
  for (int64_t i = 0; i < std::min<int64_t>(param.numel(), 12); ++i) {
    const double saved = p[i], eps = 1e-6;
    NoGradGuard ng;
    p[i] = saved + eps;
    double up = m.loss(ids, tgt).total.item();
    p[i] = saved - eps;
    double down = m.loss(ids, tgt).total.item();
    p[i] = saved;
    double numeric = (up - down) / (2 * eps);
    max_g = std::max(max_g, std::fabs(numeric));
    EXPECT_NEAR(analytic[i], numeric, 1e-6 * std::max(1.0, std::fabs(numeric))) << "entry " << i;
  }
  EXPECT_GT(max_g, 1e-6);
}

TEST(MoM, GradientsThroughRouterAndMemories) {
  ModelConfig c = tiny_mom(3, 2, true);
  c.mom_aux_loss_scale = 0.5;  // make the aux path visible in the gradient
  HybridLM m(c);
  Tensor ids = some_ids(1, 10, 30), tgt = some_ids(1, 10, 30);
  auto* mom = dynamic_cast<MoM*>(m.blocks[0]->mixer.get());
  check_param_grad(m, mom->router->weight, ids, tgt);
  check_param_grad(m, mom->memories[1]->k_proj->weight, ids, tgt);
  check_param_grad(m, mom->shared_memory->v_proj->weight, ids, tgt);
  check_param_grad(m, mom->q_proj->weight, ids, tgt);
}

// Training on one process runs each memory's segments in groups of up to 8 batch rows, padded
// to the group's longest; generation (a cache) runs one recurrence per (memory, batch row).
// From an empty cache over whole sequences the two must agree, in the output and in every
// gradient: 19 rows (groups of 8, 8, 3) whose segments differ in length, some rows without a
// token for some memory (inputs pushed towards memory 0 in the first rows).
TEST(MoM, GroupedTrainingPathEqualsThePerSegmentPath) {
  ModelConfig c = tiny_mom(4, 2, true);
  Generator gen(5);
  MoM layer(c, gen, 0.3);
  const int64_t B = 19, T = 11, d = c.d_model;
  std::vector<double> xv = randn({B, T, d}, 61, DType::f64).to_vector();
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t t = 0; t < T; ++t) xv[(b * T + t) * d] += 6.0 * (b + 1);
  Tensor x = from_vector(xv, {B, T, d}, DType::f64);
  Tensor w_out = randn({B, T, d}, 62, DType::f64);
  auto run = [&](bool with_cache) {
    for (Tensor& p : layer.parameters()) p.zero_grad();
    Tensor xi = x.detach();
    xi.requires_grad_();
    MixerCache cache;
    Tensor y = layer.forward(xi, with_cache ? &cache : nullptr);
    sum(mul(y, w_out)).backward();
    std::vector<std::vector<double>> out{y.detach().to_vector(), xi.grad().to_vector()};
    for (const Tensor& p : layer.parameters()) out.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<double>());
    return out;
  };
  const auto grouped = run(false);
  std::set<size_t> lengths;
  for (int64_t b = 0; b < B; ++b) lengths.insert(layer.last_segments[b * 4 + 0].size());
  EXPECT_GE(lengths.size(), 3u) << "the segments should differ in length";
  const auto per_segment = run(true);
  ASSERT_EQ(grouped.size(), per_segment.size());
  for (size_t i = 0; i < grouped.size(); ++i) {
    ASSERT_EQ(grouped[i].size(), per_segment[i].size()) << "tensor " << i;
    for (size_t j = 0; j < grouped[i].size(); ++j)
      ASSERT_NEAR(grouped[i][j], per_segment[i][j], 1e-10 * (1.0 + std::abs(per_segment[i][j]))) << "tensor " << i << " element " << j;
  }
}

}  // namespace
}  // namespace skein
