// test_overfit.cpp — end-to-end learning: tiny HybridLMs (LLLS and M) overfit one fixed
// batch with AdamW, to a loss below 0.1 within a few hundred steps.
#include <gtest/gtest.h>
#include "layers/model.h"
#include "optim/adamw.h"

namespace skein {
namespace {

double overfit(const std::string& pattern, const std::string& variant, int steps) {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.mlp_hidden = 64;
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.chunk_size = 8;
  HybridLM model(c);
  AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.0;
  AdamW opt(model.named_parameters(), o);
  std::vector<double> ids, tgt;
  for (int64_t i = 0; i < 2 * 24; ++i) {
    ids.push_back(static_cast<double>((i * 13 + 7) % 32));
    tgt.push_back(static_cast<double>((i * 5 + 3) % 32));
  }
  Tensor x = from_vector(ids, {2, 24}, DType::i64), y = from_vector(tgt, {2, 24}, DType::i64);
  double loss = 0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    LossParts l = model.loss(x, y);
    l.total.backward();
    opt.step();
    loss = l.lm.item();
    if (loss < 0.05) break;
  }
  return loss;
}

TEST(Overfit, HybridLLLS) { EXPECT_LT(overfit("LLLS", "decay", 400), 0.1); }
TEST(Overfit, HybridGlaDelta) {
  EXPECT_LT(overfit("LS", "gla", 400), 0.1);
  EXPECT_LT(overfit("LS", "gated_delta", 400), 0.1);
}
TEST(Overfit, MoM) { EXPECT_LT(overfit("M", "decay", 400), 0.1); }

}  // namespace
}  // namespace skein
