// test_zero.cpp — Zero1AdamW equals GradReducer + AdamW: the tiny HybridLM trained 3 steps
// both ways (global-token loss scale, global-norm clipping on step 2) gives the same
// parameters, norms and optimizer state (gathered into AdamW's layout); the shards
// partition the parameters; state dicts load across the two; and a toy parameter set whose
// size needs padding, with a parameter that never gets a gradient.
#include <gtest/gtest.h>
#include <cmath>
#include "helpers.h"
#include "model_batch.h"
#include "optim/clip.h"
#include "parallel/data_parallel.h"
#include "parallel/zero.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

AdamWOptions options() {
  AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  return o;
}

// Backward of this rank's share of step `step`'s global batch, scaled to the global mean.
void backward_local(HybridLM& m, int step) {
  const test::Batch2 b = test::local_batch(test::global_batch(step), world().rank(), world().size());
  const TokenScale s = global_token_scale(world(), count_targets(b.targets));
  mul(m.loss(b.ids, b.targets).total, s.scale).backward();
}

void expect_zero_equals_dp(DType dt, double tol, bool overlap = false) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << (overlap ? " overlap" : ""));
  if (test::kBatch % world().size()) GTEST_SKIP() << "needs a rank count dividing " << test::kBatch;
  HybridLM a(test::tiny_model(dt)), b(test::tiny_model(dt));
  GradReducer reducer(world(), a.named_parameters(), {4096});
  AdamW adamw(a.named_parameters(), options());
  Zero1AdamW zero(world(), b.named_parameters(), options(), {4096, overlap});
  const double max_norm = 1e-2;  // below the gradient norm: step 2 really clips
  for (int step = 0; step < 3; ++step) {
    backward_local(a, step);
    reducer.reduce();
    zero.arm();  // overlap: each shard's reduce starts as soon as its gradients are final
    backward_local(b, step);
    zero.reduce_grads();
    if (overlap && world().size() > 1) {
      EXPECT_GT(zero.launched_in_backward(), 0) << "no shard reduce started during backward";
    }
    if (step == 1) {
      const double na = clip_grad_norm(adamw.params(), max_norm), nb = zero.clip_grad_norm(max_norm);
      EXPECT_GT(na, max_norm);
      EXPECT_LE(std::fabs(na - nb), tol * na) << na << " vs " << nb;
    }
    adamw.step();
    zero.step();
    adamw.zero_grad();
    zero.zero_grad();
    const NamedParams pa = a.named_parameters(), pb = b.named_parameters();
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_LE(rel_diff(pb[i].second, pa[i].second), tol) << "step " << step << " " << pa[i].first;
  }
  EXPECT_EQ(zero.step_count(), 3);
  // The gathered state is AdamW's, key for key.
  const auto sa = adamw.state_dict(), sb = zero.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [key, t] : sa) {
    ASSERT_TRUE(sb.count(key)) << key;
    EXPECT_LE(rel_diff(sb.at(key), t), tol) << key;
  }
  // A fresh Zero1AdamW loaded from AdamW's dict gathers back the same state.
  HybridLM c(test::tiny_model(dt));
  Zero1AdamW loaded(world(), c.named_parameters(), options());
  loaded.load_state_dict(sa);
  const auto sc = loaded.state_dict();
  for (const auto& [key, t] : sa) EXPECT_LE(rel_diff(sc.at(key), t), 0.0) << key;
}

TEST(Zero1, EqualsDataParallelAdamWF64) { expect_zero_equals_dp(DType::f64, 1e-12); }
TEST(Zero1, EqualsDataParallelAdamWF32) { expect_zero_equals_dp(DType::f32, 1e-6); }
TEST(Zero1, OverlappedShardReducesEqualDataParallelAdamW) {
  expect_zero_equals_dp(DType::f64, 1e-12, true);
  expect_zero_equals_dp(DType::f32, 1e-6, true);
}

TEST(Zero1, ShardsPartitionTheParameters) {
  HybridLM m(test::tiny_model(DType::f32));
  Zero1AdamW zero(world(), m.named_parameters(), options());
  const int64_t p = world().size();
  EXPECT_EQ(zero.numel(), m.num_parameters());
  EXPECT_EQ(zero.shard_numel(), (m.num_parameters() + p - 1) / p);
  int64_t mine = 0;
  for (const auto& [name, t] : zero.shard_optimizer().params()) mine += t.numel();
  EXPECT_LE(mine, zero.shard_numel());
  // The optimizer state this rank holds is its shard only: 2 buffers of `mine` elements.
  int64_t state = 0;
  for (const auto& [key, t] : zero.shard_optimizer().state_dict())
    if (key.rfind("exp_avg", 0) == 0) state += t.numel();
  EXPECT_EQ(state, 2 * mine);
  Tensor total = from_vector({static_cast<double>(mine)}, {1}, DType::i64);
  world().all_reduce(total);
  EXPECT_EQ(total.at({0}), m.num_parameters());
}

// 13 elements (padding for 2 and 4 ranks), rank-dependent gradients, and a parameter that
// never has a gradient (skipped: unchanged, its step counter stays 0, as with AdamW).
TEST(Zero1, PaddingAndParametersWithoutGradients) {
  const int r = world().rank();
  auto make = [] {
    NamedParams ps;
    ps.emplace_back("w", from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64));
    ps.emplace_back("frozen", from_vector({7, 8}, {2}, DType::f64));
    ps.emplace_back("v", from_vector({-1, -2, -3, -4, -5}, {5}, DType::f64));
    return ps;
  };
  NamedParams pa = make(), pb = make();
  GradReducer reducer(world(), pa);
  AdamW adamw(pa, options());
  Zero1AdamW zero(world(), pb, options());
  for (int step = 0; step < 2; ++step) {
    for (NamedParams* ps : {&pa, &pb})
      for (size_t i : {0u, 2u}) {
        Tensor& t = (*ps)[i].second;
        std::vector<double> g;
        for (int64_t k = 0; k < t.numel(); ++k) g.push_back(0.1 * (k + 1) * (r + 1) - 0.05 * step);
        t.impl()->grad = from_vector(g, t.shape(), DType::f64).impl_ptr();
      }
    reducer.reduce();
    adamw.step();
    zero.step();
    adamw.zero_grad();
    zero.zero_grad();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_LE(rel_diff(pb[i].second, pa[i].second), 1e-14) << pa[i].first;
  }
  EXPECT_EQ(pb[1].second.at({1}), 8.0);
  EXPECT_EQ(zero.state_dict().at("step.frozen").item(), 0);
  EXPECT_EQ(zero.state_dict().at("step.w").item(), 2);
}

TEST(Zero1, LoadStateDictErrorsNameTheKey) {
  HybridLM m(test::tiny_model(DType::f32));
  Zero1AdamW zero(world(), m.named_parameters(), options());
  auto sd = zero.state_dict();
  sd.erase("exp_avg.norm.weight");
  try {
    zero.load_state_dict(sd);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp_avg.norm.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skein
