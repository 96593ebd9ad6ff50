// test_generation.cpp — for every mixer: token-by-token decoding (each linear layer carrying
// its state, each softmax layer its KV cache) gives the full forward's logits at every
// position; the pattern string builds the right layers; sampling rules.
#include <gtest/gtest.h>
#include <cmath>
#include "layers/generate.h"
#include "layers/linear_attention.h"
#include "layers/mom.h"

namespace skein {
namespace {

ModelConfig tiny(const std::string& pattern, const std::string& variant) {
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.mlp_hidden = 24;
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.mom_variant = variant == "gla" ? "gated_delta" : variant;
  c.chunk_size = 4;  // several chunks in a short test sequence
  c.dtype = DType::f64;
  c.init_std = 0.2;  // larger weights: outputs that differ per position
  return c;
}

void expect_stepwise_equals_full(const ModelConfig& cfg, int64_t B = 1) {
  HybridLM model(cfg);
  NoGradGuard ng;
  const int64_t T = 11;
  std::vector<double> ids;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) ids.push_back(static_cast<double>((t * 7 + 3 + 5 * b) % cfg.vocab_size));
  Tensor all = from_vector(ids, {B, T}, DType::i64);
  Tensor full = model.forward(all);
  // prefill 3 tokens, then 2 tokens, then one token at a time
  std::vector<MixerCache> caches;
  Tensor pre = model.forward(all.narrow(1, 0, 3).contiguous(), &caches);
  std::vector<Tensor> pieces{pre, model.forward(all.narrow(1, 3, 2).contiguous(), &caches)};
  for (int64_t t = 5; t < T; ++t)
    pieces.push_back(model.forward(all.narrow(1, t, 1).contiguous(), &caches));
  Tensor stepped = cat(pieces, 1);
  auto a = full.to_vector(), b = stepped.to_vector();
  ASSERT_EQ(a.size(), b.size());
  double max_err = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_err = std::max(max_err, std::fabs(a[i] - b[i]));
    max_abs = std::max(max_abs, std::fabs(a[i]));
  }
  EXPECT_LT(max_err, 1e-10 * std::max(1.0, max_abs)) << cfg.layer_pattern << " " << cfg.linear_variant;
  EXPECT_GT(max_abs, 1e-3);
}

TEST(Generation, StepwiseEqualsFullForEveryMixer) {
  for (const char* v : {"plain", "decay", "gla", "delta", "gated_delta"})
    expect_stepwise_equals_full(tiny("L", v));
  expect_stepwise_equals_full(tiny("S", "decay"));
  ModelConfig gqa = tiny("S", "decay");
  gqa.n_heads = 4;
  gqa.n_kv_heads = 2;
  gqa.window = 3;
  expect_stepwise_equals_full(gqa);
  for (const char* v : {"gated_delta", "decay"}) expect_stepwise_equals_full(tiny("M", v));
  ModelConfig hh = tiny("LS", "plain");
  hh.feature_map = "hedgehog";
  expect_stepwise_equals_full(hh);
  ModelConfig gated = tiny("LLS", "gla");
  gated.linear_output_gate = true;
  expect_stepwise_equals_full(gated);
}

TEST(Generation, ShortConvStateCarriesAcrossCalls) {
  // Short convs on every L variant and MoM (kernel 4 and 2; pieces of 3, 2, 1, 1, ...
  // tokens: shorter than the kernel), batch 2 (MoM keeps one conv state per (memory, batch)).
  for (int64_t K : {4, 2}) {
    for (const char* v : {"plain", "decay", "gla", "delta", "gated_delta"}) {
      ModelConfig c = tiny("LS", v);
      c.short_conv = "true";
      c.conv_size = K;
      expect_stepwise_equals_full(c, 2);
    }
    for (const char* v : {"gated_delta", "decay"}) {
      ModelConfig c = tiny("M", v);
      c.conv_size = K;
      expect_stepwise_equals_full(c, 2);
    }
  }
  // auto: on for delta, gated_delta and MoM, off for the others; false: off everywhere.
  auto has_conv = [](const ModelConfig& c) { return HybridLM(c).state_dict().count("blocks.0.mixer.q_conv1d") > 0; };
  EXPECT_TRUE(has_conv(tiny("L", "gated_delta")));
  EXPECT_TRUE(has_conv(tiny("L", "delta")));
  EXPECT_TRUE(has_conv(tiny("M", "decay")));
  EXPECT_FALSE(has_conv(tiny("L", "decay")));
  EXPECT_FALSE(has_conv(tiny("L", "gla")));
  ModelConfig off = tiny("M", "gated_delta");
  off.short_conv = "false";
  EXPECT_FALSE(has_conv(off));
  off.short_conv = "maybe";
  EXPECT_THROW(HybridLM{off}, Error);
}

TEST(Generation, PatternRepeatsAndOverrides) {
  ModelConfig c = tiny("LS", "decay");
  c.n_layers = 5;
  c.layer_variants = {"", "", "gla"};
  HybridLM m(c);
  std::string kinds;
  for (auto& b : m.blocks) kinds += b->kind;
  EXPECT_EQ(kinds, "LSLSL");
  EXPECT_EQ(dynamic_cast<LinearAttention*>(m.blocks[0]->mixer.get())->variant, "decay");
  EXPECT_EQ(dynamic_cast<LinearAttention*>(m.blocks[2]->mixer.get())->variant, "gla");
}

TEST(Generation, SamplingRules) {
  Tensor logits = from_vector({0.1, 3.0, 2.9, -1.0}, {4}, DType::f64);
  Generator g(3);
  SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(sample_token(logits, greedy, g), 1);
  SamplingOptions top2;
  top2.top_k = 2;
  for (int i = 0; i < 50; ++i) {
    int64_t t = sample_token(logits, top2, g);
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
  HybridLM m(tiny("LS", "decay"));
  auto out = generate(m, {1, 2, 3}, greedy);
  EXPECT_EQ(out.size(), 3u + 64u);
  EXPECT_EQ(out[0], 1);
  for (int64_t t : out) EXPECT_TRUE(t >= 0 && t < 40);
  EXPECT_THROW(generate(m, {}, greedy), Error);
}

}  // namespace
}  // namespace skein
