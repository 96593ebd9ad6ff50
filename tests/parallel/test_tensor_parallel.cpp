// test_tensor_parallel.cpp — tensor parallelism equals one process. A HybridLM built over a tp
// group (tp = the world size where the heads divide, else groups of 2) holds exactly its
// shard of the one-process model's parameters, and its loss and EVERY parameter gradient
// (sharded: the slice of the full gradient, padding rows zero) equal the one-process model's,
// computed on every rank as the oracle: each linear variant (plus hedgehog, an output gate,
// GLA's replicated low-rank gate), softmax attention with grouped-query heads, tied and untied
// embeddings, a vocabulary that needs padding, a continuous-input (regression) model. Also the vocabulary-parallel cross-entropy
// against cross_entropy (ignored targets, padding columns, a shard of padding only), the
// tensor-parallel gradient-norm clipping against the one-process norm, and the errors.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <functional>
#include "helpers.h"
#include "layers/model.h"
#include "optim/clip.h"
#include "parallel/model_parallel.h"
#include "parallel/tensor_parallel.h"
#include "parallel/vocab_parallel.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

// Groups of `tp` consecutive world ranks (tp divides the world size); collective over world.
std::unique_ptr<Communicator> tp_group(int tp) { return world().split(world().rank() / tp, world().rank()); }

// The world size when the model's heads and hidden size divide by it, else 2.
int pick_tp(const ModelConfig& c) {
  const int W = world().size();
  return c.n_heads % W == 0 && c.kv_heads() % W == 0 && c.mlp_hidden % W == 0 ? W : 2;
}

// A vocabulary of 29 (padded on 2 and 4 ranks), d 16 in 4 heads, T 10 with chunk 4.
ModelConfig small_model(DType dt, const std::string& pattern, const std::string& variant) {
  ModelConfig c;
  c.vocab_size = 29;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.linear_output_gate = true;
  c.mlp_hidden = 24;
  c.chunk_size = 4;
  c.gla_gate_rank = 4;
  c.dtype = dt;
  return c;
}

struct Batch {
  Tensor ids, targets;  // [2, 10] i64, a few targets ignored
};

Batch batch(int64_t vocab) {
  std::vector<double> ids, tgt;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 10; ++t) {
      ids.push_back(static_cast<double>((b * 17 + t * 7 + 3) % vocab));
      tgt.push_back((b == 0 && t < 3) ? -100.0 : static_cast<double>((b * 11 + t * 5 + 1) % vocab));
    }
  return {from_vector(ids, {2, 10}, DType::i64), from_vector(tgt, {2, 10}, DType::i64)};
}

// Loss, init, every gradient and the clipped gradients of `sharded` (rank r of tp) against
// `full` (one process), after each ran `loss_of` and backward.
void compare(HybridLM& full, HybridLM& sharded, Communicator& tp_comm, double tol,
             const std::function<LossParts(HybridLM&)>& loss_of) {
  const int r = tp_comm.rank(), tp = tp_comm.size();
  LossParts ref = loss_of(full), got = loss_of(sharded);
  ref.total.backward();
  got.total.backward();
  EXPECT_LE(std::fabs(got.total.item() - ref.total.item()), tol * std::fabs(ref.total.item()))
      << got.total.item() << " vs " << ref.total.item();

  const NamedTensors fp = full.named_parameters(), shp = sharded.named_parameters();
  const std::map<std::string, TpSplit> splits = sharded.tp_splits();
  ASSERT_EQ(fp.size(), shp.size());
  for (size_t i = 0; i < fp.size(); ++i) {
    const std::string& name = fp[i].first;
    ASSERT_EQ(shp[i].first, name);
    const TpSplit split = splits.at(name);
    EXPECT_EQ(rel_diff(shp[i].second, tp_shard(fp[i].second, split, r, tp)), 0.0) << name << " (init)";
    ASSERT_TRUE(fp[i].second.grad().defined() && shp[i].second.grad().defined()) << name;
    EXPECT_LE(rel_diff(shp[i].second.grad(), tp_shard(fp[i].second.grad(), split, r, tp)), tol) << name;
  }

  // Clipping to half the norm: the same pre-clip norm and the same clipped gradients.
  const double ref_norm = std::sqrt(grad_squared_norm(full.parameters()));
  const double tp_norm = clip_grad_norm_tp(shp, splits, tp_comm, ref_norm / 2);
  clip_grad_norm(full.parameters(), ref_norm / 2);
  EXPECT_LE(std::fabs(tp_norm - ref_norm), tol * ref_norm) << tp_norm << " vs " << ref_norm;
  for (size_t i = 0; i < fp.size(); ++i)
    EXPECT_LE(rel_diff(shp[i].second.grad(), tp_shard(fp[i].second.grad(), splits.at(fp[i].first), r, tp)), tol)
        << fp[i].first << " (clipped)";
}

void expect_same_as_one_process(const ModelConfig& cfg, double tol) {
  const int tp = pick_tp(cfg);
  SCOPED_TRACE(testing::Message() << cfg.layer_pattern << " " << cfg.linear_variant << " " << cfg.feature_map << " "
                                  << dtype_name(cfg.dtype) << " tied " << cfg.tie_embeddings << " tp " << tp);
  std::unique_ptr<Communicator> tp_comm = tp_group(tp);
  SingleProcessComm sp;
  HybridLM full(cfg), sharded(cfg, std::make_shared<CommModelParallel>(*tp_comm, sp));
  const Batch b = batch(cfg.vocab_size);
  compare(full, sharded, *tp_comm, tol, [&](HybridLM& m) { return m.loss(b.ids, b.targets); });
}

void every_linear_variant(DType dt, double tol) {
  for (const char* v : {"plain", "decay", "gla", "delta", "gated_delta"})
    expect_same_as_one_process(small_model(dt, "LLLS", v), tol);
  ModelConfig hedgehog = small_model(dt, "LLLS", "decay");
  hedgehog.feature_map = "hedgehog";
  expect_same_as_one_process(hedgehog, tol);
}

TEST(TensorParallel, LinearVariantsEqualOneProcessF64) { every_linear_variant(DType::f64, 1e-10); }
TEST(TensorParallel, LinearVariantsEqualOneProcessF32) { every_linear_variant(DType::f32, 1e-5); }

// Softmax attention with grouped-query heads (8 query heads over 4 kv heads), tied and untied.
void softmax_gqa(DType dt, double tol) {
  for (bool tied : {false, true}) {
    ModelConfig c = small_model(dt, "S", "decay");
    c.d_model = 32;
    c.n_heads = 8;
    c.n_kv_heads = 4;
    c.window = 6;
    c.tie_embeddings = tied;
    expect_same_as_one_process(c, tol);
  }
  ModelConfig hybrid = small_model(dt, "LS", "gated_delta");
  hybrid.tie_embeddings = true;
  hybrid.n_kv_heads = 2;
  expect_same_as_one_process(hybrid, tol);
}

TEST(TensorParallel, SoftmaxGqaTiedAndUntiedEqualOneProcessF64) { softmax_gqa(DType::f64, 1e-10); }
TEST(TensorParallel, SoftmaxGqaTiedAndUntiedEqualOneProcessF32) { softmax_gqa(DType::f32, 1e-5); }

// A continuous-input model (in-context regression): replicated read-in and read-out around
// tensor-parallel blocks.
TEST(TensorParallel, RegressionModelEqualsOneProcessF64) {
  ModelConfig c = small_model(DType::f64, "LS", "gla");
  c.input_dim = 3;
  const int tp = pick_tp(c);
  std::unique_ptr<Communicator> tp_comm = tp_group(tp);
  SingleProcessComm sp;
  HybridLM full(c), sharded(c, std::make_shared<CommModelParallel>(*tp_comm, sp));
  const Tensor inputs = randn({2, 8, 3}, 5, DType::f64), targets = randn({2, 4}, 6, DType::f64);
  compare(full, sharded, *tp_comm, 1e-10, [&](HybridLM& m) { return m.regression_loss(inputs, targets); });
}

// The vocabulary-parallel cross-entropy over the whole world against cross_entropy on the
// full logits. Padding columns hold a large value: counted, it would dominate the softmax.
void vocab_ce(DType dt, double tol, int64_t V, bool all_ignored) {
  const int W = world().size(), r = world().rank();
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " V " << V << " W " << W << " all ignored " << all_ignored);
  const int64_t N = 7, per = round_up(V, W) / W;
  Tensor logits = mul(randn({N, V}, 77, dt), 3.0).requires_grad_(true);
  std::vector<double> tgt = {0, static_cast<double>(V - 1), -100, 3, static_cast<double>(V - 2), 1, -100};
  if (all_ignored) tgt.assign(N, -100);
  Tensor targets = from_vector(tgt, {N}, DType::i64);
  Tensor ref = cross_entropy(logits, targets);
  ref.backward();

  Tensor shard = tp_shard(logits.detach(), {1, V}, r, W);
  const int64_t valid = std::clamp<int64_t>(V - r * per, 0, per);
  if (valid < per) {
    Tensor pad = shard.narrow(1, valid, per - valid);
    fill_(pad, 50.0);
  }
  shard.requires_grad_(true);
  Tensor got = vocab_parallel_cross_entropy(world(), shard, targets, r * per, V);
  got.backward();
  EXPECT_LE(std::fabs(got.item() - ref.item()), tol * std::max(1.0, std::fabs(ref.item())))
      << got.item() << " vs " << ref.item();
  Tensor want = tp_shard(logits.grad(), {1, V}, r, W);  // padding columns: zero gradient
  EXPECT_LE(rel_diff(shard.grad(), want), tol);
  if (all_ignored) {
    EXPECT_EQ(got.item(), 0.0);
  }
}

TEST(TensorParallel, VocabParallelCrossEntropyEqualsCrossEntropy) {
  const int64_t W = world().size();
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    vocab_ce(dt, tol, 4 * W, false);  // no padding
    vocab_ce(dt, tol, 5, false);      // padded; on 4 ranks rank 3 holds only padding
    vocab_ce(dt, tol, 5, true);
  }
}

TEST(TensorParallel, VocabParallelCrossEntropyRejectsTargetsOutsideTheVocabulary) {
  Tensor logits = zeros({2, 3});
  Tensor targets = from_vector({1.0, 3.0 * world().size()}, {2}, DType::i64);
  EXPECT_THROW(vocab_parallel_cross_entropy(world(), logits, targets, 3 * world().rank(), 3 * world().size()),
               Error);
}

// Divisibility errors name both numbers; an unknown softmax sequence-parallel method is refused.
TEST(TensorParallel, Errors) {
  const int W = world().size();
  std::unique_ptr<Communicator> tp_comm = tp_group(W);
  SingleProcessComm single;
  auto par = std::make_shared<CommModelParallel>(*tp_comm, single);
  auto expect_error = [&](const ModelConfig& c, const std::string& what) {
    try {
      HybridLM m(c, par);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tp_size (" + std::to_string(W) + ")"), std::string::npos) << e.what();
    }
  };
  ModelConfig heads = small_model(DType::f32, "L", "decay");
  heads.d_model = 12;
  heads.n_heads = 3;
  expect_error(heads, "model.n_heads (3)");
  ModelConfig kv = small_model(DType::f32, "S", "decay");
  kv.n_kv_heads = 1;
  expect_error(kv, "model.n_kv_heads 1");
  ModelConfig hidden = small_model(DType::f32, "L", "decay");
  hidden.mlp_hidden = 4 * W + 1;
  expect_error(hidden, "model.mlp_hidden " + std::to_string(4 * W + 1));

  EXPECT_THROW(CommModelParallel(*tp_comm, single, single, "ulysses"), Error);
}

}  // namespace
}  // namespace skein
