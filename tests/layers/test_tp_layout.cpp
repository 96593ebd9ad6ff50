// test_tp_layout.cpp — the tensor-parallel layout, checked in one process: tp_shard / tp_join
// (padding rows zero, dropped on join); a model built for rank r of tp (a plain ModelParallel,
// whose hooks are identities) holds exactly tp_shard of the one-process model's parameters,
// whatever the variant, and the shards join back to them; the one-process model records the
// same layout (tp_splits); the default par gives bit-identical losses; and the partial
// outputs of a row-parallel Linear and of the vocabulary-parallel Embedding, summed over ranks
// (what par->tp_sum does across processes), equal the one-process layer's output.
#include <gtest/gtest.h>
#include "core/autograd.h"
#include "layers/model.h"

namespace skein {
namespace {

ModelConfig layout_model(const std::string& pattern, const std::string& variant) {
  ModelConfig c;
  c.vocab_size = 23;  // padded on 2 and 3 ranks
  c.d_model = 24;
  c.n_heads = 12;
  c.n_kv_heads = 6;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.linear_output_gate = true;
  c.mlp_hidden = 18;
  c.gla_gate_rank = 4;
  return c;
}

TEST(TpLayout, ShardAndJoinPadWithZeros) {
  Tensor full = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2});
  const TpSplit rows{0, 5};
  std::vector<Tensor> shards;
  for (int r = 0; r < 4; ++r) shards.push_back(tp_shard(full, rows, r, 4));  // 8 rows, 2 per rank
  EXPECT_EQ(shards[2].to_vector(), (std::vector<double>{9, 10, 0, 0}));
  EXPECT_EQ(shards[3].to_vector(), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(tp_join(shards, rows).to_vector(), full.to_vector());
  const TpSplit cols{1, 2};
  EXPECT_EQ(tp_shard(full, cols, 1, 2).to_vector(), (std::vector<double>{2, 4, 6, 8, 10}));
  EXPECT_EQ(tp_join({tp_shard(full, cols, 0, 2), tp_shard(full, cols, 1, 2)}, cols).to_vector(), full.to_vector());
  EXPECT_EQ(tp_shard(full, TpSplit{}, 1, 2).to_vector(), full.to_vector());  // replicated
  EXPECT_THROW(tp_shard(full, TpSplit{0, 4}, 0, 2), Error);               // wrong full size
}

// Every parameter of rank r's model is rank r's shard of the one-process model's, and the
// ranks' shards join back to it exactly.
void expect_layout(const ModelConfig& cfg, int tp) {
  SCOPED_TRACE(testing::Message() << cfg.layer_pattern << " " << cfg.linear_variant << " tied "
                                  << cfg.tie_embeddings << " tp " << tp);
  HybridLM full(cfg);
  const NamedTensors fp = full.named_parameters();
  const std::map<std::string, TpSplit> one_process_splits = full.tp_splits();
  std::vector<NamedTensors> ranks;
  for (int r = 0; r < tp; ++r) {
    HybridLM m(cfg, std::make_shared<ModelParallel>(r, tp, 0, 1));
    ranks.push_back(m.named_parameters());
    const std::map<std::string, TpSplit> splits = m.tp_splits();
    ASSERT_EQ(ranks.back().size(), fp.size());
    for (size_t i = 0; i < fp.size(); ++i) {
      const auto& [name, p] = ranks.back()[i];
      ASSERT_EQ(name, fp[i].first);
      const TpSplit s = splits.at(name), one = one_process_splits.at(name);
      EXPECT_TRUE(s.dim == one.dim && s.full == one.full) << name;
      EXPECT_EQ(p.to_vector(), tp_shard(fp[i].second, s, r, tp).to_vector()) << name;
    }
  }
  for (size_t i = 0; i < fp.size(); ++i) {
    std::vector<Tensor> shards;
    for (const NamedTensors& params : ranks) shards.push_back(params[i].second);
    EXPECT_EQ(tp_join(shards, one_process_splits.at(fp[i].first)).to_vector(), fp[i].second.to_vector())
        << fp[i].first;
  }
}

TEST(TpLayout, ShardsAreSlicesOfTheOneProcessModel) {
  for (const char* v : {"plain", "decay", "gla", "delta", "gated_delta"})
    for (int tp : {2, 3}) expect_layout(layout_model("LS", v), tp);
  ModelConfig hedgehog = layout_model("L", "plain");
  hedgehog.feature_map = "hedgehog";
  expect_layout(hedgehog, 3);
  ModelConfig tied = layout_model("S", "decay");
  tied.tie_embeddings = true;
  expect_layout(tied, 3);
}

TEST(TpLayout, SplitsOfTheOneProcessModel) {
  const std::map<std::string, TpSplit> s = HybridLM(layout_model("LS", "gla")).tp_splits();
  auto expect_split = [&](const std::string& name, int dim, int64_t full) {
    EXPECT_TRUE(s.at(name).dim == dim && s.at(name).full == full) << name << ": dim " << s.at(name).dim << " full "
                                                                  << s.at(name).full;
  };
  expect_split("embed.weight", 0, 23);
  expect_split("lm_head.weight", 0, 23);
  expect_split("blocks.0.mixer.q_proj.weight", 0, 24);
  expect_split("blocks.0.mixer.g_proj.weight", 0, 24);
  expect_split("blocks.0.mixer.o_proj.weight", 1, 24);
  expect_split("blocks.0.mixer.o_norm", 0, 24);
  expect_split("blocks.0.mixer.gk_proj_a.weight", -1, 0);
  expect_split("blocks.0.mixer.gk_proj_b.weight", 0, 24);
  expect_split("blocks.0.mixer.gk_proj_b.bias", 0, 24);
  expect_split("blocks.1.mixer.k_proj.weight", 0, 12);  // 6 kv heads of 2
  expect_split("blocks.1.mixer.o_proj.weight", 1, 24);
  expect_split("blocks.1.mlp.w1.weight", 0, 18);
  expect_split("blocks.1.mlp.w2.weight", 1, 18);
  expect_split("blocks.1.norm1.weight", -1, 0);
  expect_split("norm.weight", -1, 0);
}

TEST(TpLayout, DefaultParallelIsOneProcess) {
  const ModelConfig cfg = layout_model("LLLS", "gated_delta");
  HybridLM a(cfg), b(cfg, std::make_shared<ModelParallel>());
  Tensor ids = from_vector({1, 7, 3, 9, 22, 0}, {1, 6}, DType::i64);
  Tensor targets = from_vector({7, 3, 9, 22, 0, -100}, {1, 6}, DType::i64);
  LossParts la = a.loss(ids, targets), lb = b.loss(ids, targets);
  EXPECT_EQ(la.total.item(), lb.total.item());
  EXPECT_EQ(la.total.item(), cross_entropy(a.forward(ids).reshape({-1, 23}), targets.reshape({-1})).item());
  la.total.backward();
  lb.total.backward();
  auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(pa[i].second.grad().to_vector(), pb[i].second.grad().to_vector()) << pa[i].first;
}

// Row-parallel Linear and vocabulary-parallel Embedding: the ranks' partial outputs sum to
// the one-process output. (The plain ModelParallel's tp_sum is the identity, so each rank
// adds the replicated bias to its partial product here: the sum holds tp copies of it.)
TEST(TpLayout, PartialOutputsSumToTheOneProcessOutput) {
  const int tp = 3;
  Tensor x = randn({2, 6}, 5, DType::f64), ids = from_vector({0, 4, 6, 7, 2}, {5}, DType::i64);
  NoGradGuard no_grad;
  Generator g0(3);
  Linear row_full(6, 4, g0, 0.5, true, DType::f64);
  Embedding embed_full(8, 3, g0, 0.5, DType::f64);
  fill_(row_full.bias, 0.25);
  Tensor row_sum = mul(row_full.bias, -static_cast<double>(tp - 1)), embed_sum = zeros({5, 3}, DType::f64);
  for (int r = 0; r < tp; ++r) {
    ModelParallel par(r, tp, 0, 1);
    Generator g(3);
    Linear row(6, 4, g, 0.5, true, DType::f64, TpMode::row, &par);
    Embedding embed(8, 3, g, 0.5, DType::f64, &par);
    fill_(row.bias, 0.25);
    EXPECT_EQ(row.weight.shape(), (Shape{4, 2}));
    EXPECT_EQ(embed.weight.shape(), (Shape{3, 3}));  // 8 rows padded to 9
    row_sum = add(row_sum, row.forward(x.narrow(1, 2 * r, 2)));
    embed_sum = add(embed_sum, embed.forward(ids));
  }
  const std::vector<double> got = row_sum.to_vector(), want = row_full.forward(x).to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-14) << i;
  EXPECT_EQ(embed_sum.to_vector(), embed_full.forward(ids).to_vector());
}

}  // namespace
}  // namespace skein
