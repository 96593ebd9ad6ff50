// test_data_parallel.cpp — data parallelism equals one process: a tiny HybridLM ("LS",
// d 16) on a global batch split over the ranks gives the same loss and every parameter
// gradient as one process on the whole batch (computed on every rank as the reference),
// with ignored targets spread unevenly (the loss-normalisation bug: the test also shows
// that plain averaging of per-rank means is wrong there). Plus the bucket layout, partial
// gradient presence, token counting and grid-aware norms.
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

struct Outcome {
  double loss = 0;      // the global mean loss
  double grad_norm = 0;
  NamedParams params;   // with .grad set
};

// One process on the whole global batch.
Outcome reference(HybridLM& m, const test::Batch2& b) {
  LossParts l = m.loss(b.ids, b.targets);
  l.total.backward();
  return {l.lm.item(), std::sqrt(grad_squared_norm(m.parameters())), m.named_parameters()};
}

// This rank's share, scaled by global_token_scale (or not, when `naive`), then reduced.
Outcome data_parallel(HybridLM& m, const test::Batch2& global, bool naive, int64_t bucket_bytes, bool overlap) {
  test::Batch2 b = test::local_batch(global, world().rank(), world().size());
  const TokenScale s = global_token_scale(world(), count_targets(b.targets));
  EXPECT_EQ(s.global, count_targets(global.targets));
  GradReducer reducer(world(), m.named_parameters(), {bucket_bytes, overlap});
  reducer.arm();  // overlap: buckets all-reduced during backward, as their gradients finish
  LossParts l = m.loss(b.ids, b.targets);
  mul(l.total, naive ? 1.0 : s.scale).backward();
  reducer.reduce();
  if (overlap && reducer.num_buckets() > 1 && world().size() > 1) {
    EXPECT_GT(reducer.last_overlap().launched_in_backward, 0u) << "no bucket started during backward";
  }
  return {global_mean_loss(world(), l.lm.item(), s.local), std::sqrt(grad_squared_norm(m.parameters())),
          m.named_parameters()};
}

void expect_same_as_one_process(DType dt, double tol, int64_t bucket_bytes, bool overlap) {
  if (test::kBatch % world().size()) GTEST_SKIP() << "needs a rank count dividing " << test::kBatch;
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " bucket " << bucket_bytes << " overlap " << overlap);
  const test::Batch2 batch = test::global_batch(0);
  HybridLM ref_model(test::tiny_model(dt)), dp_model(test::tiny_model(dt));
  broadcast_parameters(world(), dp_model.named_parameters());
  const Outcome ref = reference(ref_model, batch);
  const Outcome dp = data_parallel(dp_model, batch, false, bucket_bytes, overlap);
  EXPECT_LE(std::fabs(dp.loss - ref.loss), tol * std::fabs(ref.loss)) << dp.loss << " vs " << ref.loss;
  EXPECT_LE(std::fabs(dp.grad_norm - ref.grad_norm), tol * ref.grad_norm);
  ASSERT_EQ(dp.params.size(), ref.params.size());
  for (size_t i = 0; i < ref.params.size(); ++i) {
    ASSERT_TRUE(dp.params[i].second.grad().defined()) << ref.params[i].first;
    EXPECT_LE(rel_diff(dp.params[i].second.grad(), ref.params[i].second.grad()), tol) << ref.params[i].first;
  }
}

TEST(DataParallel, SameLossAndGradientsAsOneProcessF64) {
  expect_same_as_one_process(DType::f64, 1e-11, 4096, false);  // several blocking buckets
  expect_same_as_one_process(DType::f64, 1e-11, 4096, true);   // several overlapped buckets
}
TEST(DataParallel, SameLossAndGradientsAsOneProcessF32) {
  expect_same_as_one_process(DType::f32, 1e-5, 25 << 20, false);  // the default: one bucket here
  expect_same_as_one_process(DType::f32, 1e-5, 2048, true);
}

// Averaging per-rank mean losses without the token scale weights ranks' tokens unequally:
// with these uneven counts the gradients are visibly wrong (so the test above can fail).
TEST(DataParallel, NaiveAveragingIsWrongWithUnevenIgnoredTokens) {
  if (world().size() == 1 || test::kBatch % world().size()) GTEST_SKIP() << "needs 2 or 4 ranks";
  const test::Batch2 batch = test::global_batch(0);
  HybridLM ref_model(test::tiny_model(DType::f64)), dp_model(test::tiny_model(DType::f64));
  const Outcome ref = reference(ref_model, batch);
  const Outcome naive = data_parallel(dp_model, batch, true, 4096, false);
  double worst = 0;
  for (size_t i = 0; i < ref.params.size(); ++i)
    worst = std::max(worst, rel_diff(naive.params[i].second.grad(), ref.params[i].second.grad()));
  EXPECT_GT(worst, 1e-2);
}

TEST(DataParallel, BucketsHoldEveryParameterOnceInReverseOrder) {
  HybridLM m(test::tiny_model(DType::f32));
  const NamedParams params = m.named_parameters();
  const int64_t cap = 2048;
  GradReducer r(world(), params, {cap});
  EXPECT_GT(r.num_buckets(), 2u);
  std::vector<size_t> order;
  for (size_t b = 0; b < r.num_buckets(); ++b) {
    const auto& idx = r.bucket(b);
    EXPECT_TRUE(r.bucket_bytes(b) <= cap || idx.size() == 1) << "bucket " << b << ": " << r.bucket_bytes(b) << " B";
    order.insert(order.end(), idx.begin(), idx.end());
  }
  ASSERT_EQ(order.size(), params.size());
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(order[k], params.size() - 1 - k);
  GradReducer one(world(), params);  // the 25 MiB default: one bucket for this model
  EXPECT_EQ(one.num_buckets(), 1u);
}

// A gradient present on some ranks counts as zero on the others; absent everywhere stays absent.
TEST(DataParallel, PartialGradientPresence) {
  const int p = world().size(), r = world().rank();
  Tensor a = zeros({3}, DType::f64), b = zeros({2}, DType::f64), c = zeros({4}, DType::f64);
  a.impl()->grad = full({3}, r + 1.0, DType::f64).impl_ptr();
  if (r == 0) b.impl()->grad = full({2}, 8.0, DType::f64).impl_ptr();
  GradReducer red(world(), {{"a", a}, {"b", b}, {"c", c}}, {16});
  red.reduce();
  EXPECT_DOUBLE_EQ(a.grad().at({2}), (p + 1) / 2.0);
  ASSERT_TRUE(b.grad().defined());
  EXPECT_DOUBLE_EQ(b.grad().at({1}), 8.0 / p);
  EXPECT_FALSE(c.grad().defined());
}

// Ranks holding different models fail together at construction instead of hanging later.
TEST(DataParallel, DifferentModelsOnRanksAreAnError) {
  if (world().size() == 1) GTEST_SKIP() << "needs 2 ranks";
  NamedParams ps = {{"w", zeros({world().rank() == 1 ? 5 : 4})}};
  try {
    GradReducer r(world(), ps);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different models"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Zero1AdamW(world(), ps), Error);
}

TEST(DataParallel, TokenCountsAndGlobalMean) {
  const int p = world().size(), r = world().rank();
  Tensor t = from_vector({1, -100, 3, -100, 5}, {5}, DType::i64);
  EXPECT_EQ(count_targets(t), 3);
  EXPECT_EQ(count_targets(t, 3), 4);
  EXPECT_EQ(count_targets(t.to(DType::i32)), 3);
  // rank r holds r + 1 tokens of mean loss r: global mean = Σ r (r + 1) / Σ (r + 1).
  const TokenScale s = global_token_scale(world(), r + 1);
  double num = 0, den = 0;
  for (int q = 0; q < p; ++q) num += q * (q + 1.0), den += q + 1.0;
  EXPECT_EQ(s.global, static_cast<int64_t>(den));
  EXPECT_DOUBLE_EQ(s.scale, p * (r + 1) / den);
  EXPECT_DOUBLE_EQ(global_mean_loss(world(), r, r + 1), num / den);
  const TokenScale none = global_token_scale(world(), 0);
  EXPECT_EQ(none.global, 0);
  EXPECT_EQ(none.scale, 0.0);
  EXPECT_EQ(global_mean_loss(world(), 1.0, 0), 0.0);
}

// Disjoint owned pieces: the all-reduced norm equals the norm of everything on one rank.
TEST(DataParallel, GlobalGradNormOverOwnedPieces) {
  const int p = world().size(), r = world().rank();
  std::vector<Tensor> all, owned;
  for (int i = 0; i < 6; ++i) {
    Tensor w = zeros({5}, DType::f64);
    w.impl()->grad = full({5}, 0.5 * (i + 1), DType::f64).impl_ptr();
    all.push_back(w);
    if (i % p == r) owned.push_back(w);
  }
  const double local = std::sqrt(grad_squared_norm(all));
  EXPECT_NEAR(global_grad_norm(world(), owned), local, 1e-12 * local);
  const double before = clip_grad_norm_global(world(), all, owned, local / 2);
  EXPECT_NEAR(before, local, 1e-12 * local);
  EXPECT_NEAR(std::sqrt(grad_squared_norm(all)), local / 2, 1e-5);
}

}  // namespace
}  // namespace skein
