// test_module.cpp — Module bookkeeping: dotted names, parameter counts, state dicts and
// their errors, train/eval, and the small layers' forward values.
#include <gtest/gtest.h>
#include "layers/model.h"

namespace skein {
namespace {

ModelConfig tiny(const std::string& pattern) {
  ModelConfig c;
  c.vocab_size = 50;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.mlp_hidden = 24;
  c.layer_pattern = pattern;
  return c;
}

TEST(Module, DottedNamesAndCount) {
  HybridLM m(tiny("LLLS"));
  auto named = m.named_parameters();
  std::map<std::string, Shape> shapes;
  for (auto& [n, p] : named) shapes[n] = p.shape();
  EXPECT_EQ(shapes.at("embed.weight"), (Shape{50, 16}));
  EXPECT_EQ(shapes.at("blocks.3.mixer.q_proj.weight"), (Shape{16, 16}));
  EXPECT_EQ(shapes.at("blocks.0.mixer.o_norm"), (Shape{16}));
  EXPECT_EQ(shapes.at("blocks.1.mlp.w1.weight"), (Shape{24, 16}));
  EXPECT_EQ(shapes.at("blocks.2.norm2.weight"), (Shape{16}));
  EXPECT_EQ(shapes.at("lm_head.weight"), (Shape{50, 16}));
  EXPECT_EQ(shapes.count("blocks.3.mixer.o_norm"), 0u);  // softmax layers have no output norm
  // count: embed + head + 3 L (4 d² + d) + 1 S (4 d²) + 4 * (mlp 3 d h + 2 norms d) + final norm d
  const int64_t d = 16, h = 24, V = 50;
  EXPECT_EQ(m.num_parameters(), 2 * V * d + 3 * (4 * d * d + d) + 4 * d * d + 4 * (3 * d * h + 2 * d) + d);
  for (auto& [n, p] : named) EXPECT_TRUE(p.requires_grad()) << n;
}

TEST(Module, TiedEmbeddingsHaveNoHead) {
  ModelConfig c = tiny("S");
  c.tie_embeddings = true;
  HybridLM m(c);
  for (auto& [n, p] : m.named_parameters()) EXPECT_NE(n, "lm_head.weight");
  Tensor logits = m.forward(from_vector({1, 2, 3}, {1, 3}, DType::i64));
  EXPECT_EQ(logits.shape(), (Shape{1, 3, 50}));
}

TEST(Module, StateDictRoundTripAndErrors) {
  ModelConfig c = tiny("LS");
  HybridLM a(c);
  c.seed = 99;
  HybridLM b(c);
  Tensor ids = from_vector({1, 7, 3, 9}, {1, 4}, DType::i64);
  EXPECT_NE(a.forward(ids).to_vector(), b.forward(ids).to_vector());
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(a.forward(ids).to_vector(), b.forward(ids).to_vector());
  // a mismatched shape names the tensor and both shapes
  auto sd = a.state_dict();
  sd["blocks.0.mlp.w2.weight"] = zeros({3, 3});
  try {
    b.load_state_dict(sd);
    FAIL() << "accepted a wrong shape";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("blocks.0.mlp.w2.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("[3,3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[16,24]"), std::string::npos) << m;
  }
  auto missing = a.state_dict();
  missing.erase("norm.weight");
  EXPECT_THROW(b.load_state_dict(missing), Error);
  b.load_state_dict(missing, /*strict=*/false);
  auto extra = a.state_dict();
  extra["bogus"] = zeros({1});
  EXPECT_THROW(b.load_state_dict(extra), Error);
}

TEST(Module, TrainEvalPropagates) {
  HybridLM m(tiny("LS"));
  m.eval();
  EXPECT_FALSE(m.blocks[1]->mixer->is_training());
  m.train();
  EXPECT_TRUE(m.blocks[0]->mlp->w1->is_training());
}

TEST(Module, LinearSwiGLUValues) {
  Generator g(1);
  Linear lin(3, 2, g, 0.02, true, DType::f64);
  Tensor x = from_vector({1, 2, 3}, {1, 3}, DType::f64);
  Tensor y = lin.forward(x);
  for (int64_t o = 0; o < 2; ++o) {
    double want = lin.bias.at({o});
    for (int64_t i = 0; i < 3; ++i) want += lin.weight.at({o, i}) * x.at({0, i});
    EXPECT_NEAR(y.at({0, o}), want, 1e-15);
  }
  SwiGLU mlp(3, 4, g, 0.5, 0.5, DType::f64);
  Tensor a = matmul(x, mlp.w1->weight.transpose(0, 1)), b = matmul(x, mlp.w3->weight.transpose(0, 1));
  Tensor want = matmul(mul(silu(a), b), mlp.w2->weight.transpose(0, 1));
  EXPECT_EQ(mlp.forward(x).to_vector(), want.to_vector());
}

TEST(Module, ConfigErrorsNameTheField) {
  ModelConfig c = tiny("LXS");
  try {
    HybridLM m(c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layer_pattern"), std::string::npos) << e.what();
  }
  c = tiny("L");
  c.d_model = 15;
  EXPECT_THROW(HybridLM{c}, Error);
  c = tiny("L");
  c.linear_variant = "bogus";
  EXPECT_THROW(HybridLM{c}, Error);
}

// The FLOP count behind the step line's GFLOP/s: the closed form of ../shared/BENCHMARK.md,
// and a continuous-input model counts its read-in and read-out, not a vocabulary it lacks.
TEST(Module, FlopsPerTokenClosedForm) {
  ModelConfig c = tiny("LS");
  const double d = static_cast<double>(c.d_model), h = static_cast<double>(c.mlp_hidden), T = 16;
  const double blocks = 2 * 2 * (4 * d * d + 3 * d * h) + 4 * d * (T + 1) / 2 +
                        4 * d * (static_cast<double>(c.chunk_size) + 1) / 2 + 4 * d * static_cast<double>(c.head_dim());
  EXPECT_DOUBLE_EQ(model_flops_per_token(c, 16), blocks + 2 * d * static_cast<double>(c.vocab_size));
  c.input_dim = 5;
  EXPECT_DOUBLE_EQ(model_flops_per_token(c, 16), blocks + 2 * d * 6);
}

}  // namespace
}  // namespace skein
