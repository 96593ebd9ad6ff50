// test_tp_generation.cpp — whole logits under tensor parallelism. A HybridLM built over a tp
// group (tp 2, and 4 where the world and the model divide) gathers its vocabulary-parallel
// logits on every tp rank: forward's logits equal the one-process model's (LLLS with decay,
// GLA and gated DeltaNet; softmax attention with grouped-query heads, tied embeddings), greedy
// and sampled generation give the one-process ids on every tp rank, and a loss on the gathered
// logits gives the one-process gradients (the gather's backward keeps this rank's slice).
// Also all_gather_last_dim_op against a locally built oracle, and that sampling is a function
// of the logits and the seed.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include "helpers.h"
#include "layers/generate.h"
#include "layers/model.h"
#include "parallel/collective_ops.h"
#include "parallel/model_parallel.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

// Groups of `tp` consecutive world ranks (tp divides the world size); collective over world.
std::unique_ptr<Communicator> tp_group(int tp) { return world().split(world().rank() / tp, world().rank()); }

// A vocabulary of 29 (padded on 2 and 4 ranks), d 16 in 4 heads, chunk 4.
ModelConfig linear_model(DType dt, const std::string& variant) {
  ModelConfig c;
  c.vocab_size = 29;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_layers = 4;
  c.layer_pattern = "LLLS";
  c.linear_variant = variant;
  c.mlp_hidden = 24;
  c.chunk_size = 4;
  c.gla_gate_rank = 4;
  c.dtype = dt;
  return c;
}

// Softmax attention only: 8 query heads over 4 kv heads, a window, tied embeddings.
ModelConfig gqa_model(DType dt) {
  ModelConfig c = linear_model(dt, "decay");
  c.d_model = 32;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.n_layers = 2;
  c.layer_pattern = "SS";
  c.window = 6;
  c.tie_embeddings = true;
  return c;
}

std::vector<ModelConfig> models(DType dt) {
  return {linear_model(dt, "decay"), linear_model(dt, "gla"), linear_model(dt, "gated_delta"), gqa_model(dt)};
}

// The tp sizes to try: 2, and 4 when the world has 4 ranks and the model's heads divide.
std::vector<int> tp_sizes(const ModelConfig& c) {
  std::vector<int> out;
  for (int tp : {2, 4})
    if (world().size() % tp == 0 && c.n_heads % tp == 0 && c.kv_heads() % tp == 0 && c.mlp_hidden % tp == 0)
      out.push_back(tp);
  return out;
}

// Runs `check(full, sharded, tp_comm)` for every model and tp size, the sharded model on rank
// tp_rank of a tp group and the one-process model (the oracle) on every rank.
void for_each_split(DType dt, const std::function<void(HybridLM&, HybridLM&, Communicator&)>& check) {
  for (const ModelConfig& cfg : models(dt))
    for (int tp : tp_sizes(cfg)) {
      SCOPED_TRACE(testing::Message() << cfg.layer_pattern << " " << cfg.linear_variant << " " << dtype_name(dt)
                                      << " tp " << tp);
      std::unique_ptr<Communicator> tp_comm = tp_group(tp);
      SingleProcessComm sp;
      HybridLM full(cfg), sharded(cfg, std::make_shared<CommModelParallel>(*tp_comm, sp));
      check(full, sharded, *tp_comm);
    }
}

Tensor some_ids(int64_t vocab, int64_t salt = 0) {  // [2, 10]
  std::vector<double> ids;
  for (int64_t i = 0; i < 20; ++i) ids.push_back(static_cast<double>((i * 7 + salt * 5 + 3) % vocab));
  return from_vector(ids, {2, 10}, DType::i64);
}

void forward_equals_one_process(DType dt, double tol) {
  for_each_split(dt, [&](HybridLM& full, HybridLM& sharded, Communicator&) {
    NoGradGuard no_grad;
    const Tensor ids = some_ids(full.cfg.vocab_size);
    Tensor want = full.forward(ids), got = sharded.forward(ids);
    ASSERT_EQ(got.shape(), (Shape{2, 10, full.cfg.vocab_size}));
    EXPECT_LE(rel_diff(got, want), tol);
  });
}

TEST(TpGeneration, ForwardLogitsEqualOneProcessF32) { forward_equals_one_process(DType::f32, 1e-5); }
TEST(TpGeneration, ForwardLogitsEqualOneProcessF64) { forward_equals_one_process(DType::f64, 1e-10); }

// The ids of every rank of `comm` (equal lengths), rank order.
std::vector<std::vector<int64_t>> gather_ids(Communicator& comm, const std::vector<int64_t>& ids) {
  std::vector<double> v(ids.begin(), ids.end());
  const std::vector<double> all = comm.all_gather(from_vector(v, {static_cast<int64_t>(v.size())}, DType::f64)).to_vector();
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(comm.size()));
  for (size_t i = 0; i < all.size(); ++i) out[i / ids.size()].push_back(static_cast<int64_t>(all[i]));
  return out;
}

// 12 new tokens from a 5-token prompt, greedy and sampled (f64: no near-tie flips).
TEST(TpGeneration, GenerationEqualsOneProcessOnEveryTpRank) {
  const std::vector<int64_t> prompt = {3, 17, 5, 8, 22};
  SamplingOptions greedy;
  greedy.max_new_tokens = 12;
  greedy.temperature = 0.0;
  SamplingOptions sampled = greedy;
  sampled.temperature = 0.8;
  sampled.top_k = 5;
  sampled.seed = 11;
  for_each_split(DType::f64, [&](HybridLM& full, HybridLM& sharded, Communicator& tp_comm) {
    for (const SamplingOptions& opt : {greedy, sampled}) {
      SCOPED_TRACE(testing::Message() << "temperature " << opt.temperature);
      const std::vector<int64_t> want = generate(full, prompt, opt), got = generate(sharded, prompt, opt);
      ASSERT_EQ(got.size(), prompt.size() + 12);
      EXPECT_EQ(got, want);
      for (const std::vector<int64_t>& other : gather_ids(tp_comm, got)) EXPECT_EQ(other, got);
    }
  });
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// A loss on the gathered logits (every tp rank the same) gives every parameter its slice of the
// one-process gradient: max |difference| relative to the largest of the WHOLE gradient (a
// one-head shard may hold only small entries, where f32 rounding is large relative to them).
void gather_backward_equals_one_process(DType dt, double tol) {
  for_each_split(dt, [&](HybridLM& full, HybridLM& sharded, Communicator& tp_comm) {
    const int64_t V = full.cfg.vocab_size;
    const Tensor ids = some_ids(V), targets = some_ids(V, 1).reshape({-1});
    auto loss_of = [&](HybridLM& m) { return cross_entropy(m.forward(ids).reshape({-1, V}), targets); };
    Tensor ref = loss_of(full), got = loss_of(sharded);
    ref.backward();
    got.backward();
    EXPECT_LE(std::fabs(got.item() - ref.item()), tol * std::max(1.0, std::fabs(ref.item())));
    const NamedTensors fp = full.named_parameters(), shp = sharded.named_parameters();
    const std::map<std::string, TpSplit> splits = sharded.tp_splits();
    ASSERT_EQ(fp.size(), shp.size());
    for (size_t i = 0; i < fp.size(); ++i) {
      ASSERT_TRUE(fp[i].second.grad().defined() && shp[i].second.grad().defined()) << fp[i].first;
      const Tensor& whole = fp[i].second.grad();
      Tensor want = tp_shard(whole, splits.at(fp[i].first), tp_comm.rank(), tp_comm.size());
      EXPECT_LE(rel_diff(shp[i].second.grad(), want) * max_abs(want), tol * max_abs(whole)) << fp[i].first;
    }
  });
}

// f32: 3e-5. gated DeltaNet's short convs (on by default) feed q/k/v_proj's backward a
// gradient summed in another order on a head shard; w3 of the first block then lands 1.2e-5
// from the one-process f32 gradient (the f64 test below shows both are the same function).
TEST(TpGeneration, GatherBackwardEqualsOneProcessF32) { gather_backward_equals_one_process(DType::f32, 3e-5); }
TEST(TpGeneration, GatherBackwardEqualsOneProcessF64) { gather_backward_equals_one_process(DType::f64, 1e-10); }

// Rank r's input: [2, 3, 2] (a non-contiguous view), values that name the rank.
Tensor rank_input(int r) { return add(randn({2, 2, 3}, 50 + static_cast<uint64_t>(r), DType::f64), 10.0 * r).transpose(1, 2); }

// Forward: the ranks' inputs concatenated along the last dim; backward of Σ out ⊙ W: W's
// columns of this rank.
TEST(TpGeneration, AllGatherLastDimOpConcatenatesAndSlicesTheGradient) {
  const int W = world().size(), r = world().rank();
  std::vector<Tensor> parts;
  for (int q = 0; q < W; ++q) parts.push_back(rank_input(q));
  Tensor x = rank_input(r).detach().requires_grad_(true);
  Tensor out = all_gather_last_dim_op(world(), x);
  EXPECT_EQ(rel_diff(out, cat(parts, 2)), 0.0);
  const Tensor weights = randn({2, 3, 2 * W}, 9, DType::f64);
  sum(mul(out, weights)).backward();
  EXPECT_EQ(rel_diff(x.grad(), weights.narrow(2, 2 * r, 2)), 0.0);
}

// Sampling is a function of the logits and the seed: two generators with the same seed give
// the same 20 draws, on every process (so tp ranks holding the same gathered logits pick the
// same tokens).
TEST(TpGeneration, SamplingIsDeterministicGivenLogitsAndSeed) {
  const Tensor logits = randn({29}, 4, DType::f32);
  SamplingOptions opt;
  opt.temperature = 1.5;
  opt.top_k = 10;
  Generator a(7), b(7);
  std::vector<int64_t> first, second;
  for (int i = 0; i < 20; ++i) {
    first.push_back(sample_token(logits, opt, a));
    second.push_back(sample_token(logits, opt, b));
  }
  EXPECT_EQ(first, second);
  EXPECT_GT(std::set<int64_t>(first.begin(), first.end()).size(), 1u);  // it does sample
  for (const std::vector<int64_t>& other : gather_ids(world(), first)) EXPECT_EQ(other, first);  // every process
}

}  // namespace
}  // namespace skein
