// test_lora.cpp — LoRA: the adapted linear map in f64 against finite differences (A and B
// both nonzero), only adapter parameters receive gradients (the base is frozen), and the
// merged model's logits equal the adapter model's; the same for adapters on the MLP
// (gate/up/down_proj: LoRASwiGLU), whose forward is checked against finite differences.
#include <gtest/gtest.h>
#include <cmath>
#include "layers/liger.h"
#include "layers/lolcats.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

using testing::rand64;

TEST(LoRA, AdaptedLinearGradcheckF64) {
  LoRALinear lin(rand64({5, 4}, 1), rand64({5}, 2));
  lin.add_adapter(2, 3.0, 0.0, 7);
  {
    NoGradGuard ng;
    Tensor b = lin.lora_B;
    copy_(b, rand64({5, 2}, 3));  // B = 0 at init would hide A's gradient
  }
  EXPECT_FALSE(lin.weight.requires_grad());
  EXPECT_FALSE(lin.bias.requires_grad());
  EXPECT_DOUBLE_EQ(lin.scaling, 1.5);
  testing::expect_gradcheck([&](const std::vector<Tensor>& in) { return lin.forward(in[0]); },
                            {rand64({2, 3, 4}, 4), lin.lora_A, lin.lora_B});
  // the forward is W x + b + (alpha / r) B A x
  Tensor x = rand64({3, 4}, 5);
  NoGradGuard ng;
  Tensor want = add(matmul(x, add(lin.weight, mul(matmul(lin.lora_B, lin.lora_A), 1.5)).transpose(0, 1)), lin.bias);
  auto a = lin.forward(x).to_vector(), b = want.to_vector();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-13);
}

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.mlp_hidden = 24;
  c.layer_pattern = "S";
  c.dtype = DType::f64;
  c.init_std = 0.2;
  return c;
}

Tensor some_ids() {
  std::vector<double> ids;
  for (int i = 0; i < 18; ++i) ids.push_back((i * 5 + 3) % 32);
  return from_vector(ids, {2, 9}, DType::i64);
}

TEST(LoRA, OnlyAdaptersGetGradients) {
  HybridLM model(tiny());
  LolcatsOptions o;
  o.window = 4;
  o.feature_dim = 4;
  convert_to_lolcats(model, "", o, 1);
  set_trainable(model, false);
  LoRAConfig lc;
  lc.rank = 2;
  EXPECT_EQ(apply_lora(model, lc), 8);  // q, k, v, o of two layers
  NamedTensors trainable = trainable_parameters(model);
  ASSERT_EQ(trainable.size(), 16u);
  for (auto& [name, p] : trainable) EXPECT_NE(name.find(".lora_"), std::string::npos) << name;
  Tensor ids = some_ids();
  model.loss(ids, ids).total.backward();
  for (auto& [name, p] : model.named_parameters()) {
    const bool adapter = name.find(".lora_") != std::string::npos;
    EXPECT_EQ(p.grad().defined(), adapter) << name;
    if (name.ends_with("lora_B")) {  // B = 0 at init: the gradient reaches B, not yet A
      double norm = 0;
      for (double g : p.grad().to_vector()) norm += g * g;
      EXPECT_GT(norm, 0.0) << name;
    }
  }
  // a target that is not a projection is refused with its name
  LoRAConfig bad;
  bad.targets = {"w1"};
  try {
    apply_lora(model, bad);
    FAIL() << "accepted target w1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'w1'"), std::string::npos) << e.what();
  }
}

TEST(LoRA, MergedModelEqualsAdapterModel) {
  HybridLM model(tiny());
  const auto teacher_names = model.state_dict();
  convert_to_liger(model, "", LigerOptions{});
  LoRAConfig lc;
  lc.rank = 3;
  lc.alpha = 5;
  apply_lora(model, lc);
  {
    NoGradGuard ng;
    uint64_t seed = 10;
    for (auto& [name, p] : model.named_parameters())
      if (name.ends_with("lora_B")) {
        Tensor t = p;
        copy_(t, rand64(p.shape(), seed++));
      }
  }
  NoGradGuard ng;
  Tensor ids = some_ids();
  const std::vector<double> adapted = model.forward(ids).to_vector();
  merge_lora(model);
  const std::vector<double> merged = model.forward(ids).to_vector();
  double diff = 0, mag = 0;
  for (size_t i = 0; i < adapted.size(); ++i) {
    diff = std::max(diff, std::fabs(adapted[i] - merged[i]));
    mag = std::max(mag, std::fabs(adapted[i]));
  }
  EXPECT_LT(diff, 1e-12 * std::max(1.0, mag));
  // the merged model has the teacher's parameter names again, and its weights moved
  auto state = model.state_dict();
  ASSERT_EQ(state.size(), teacher_names.size());
  for (auto& [name, t] : teacher_names) EXPECT_TRUE(state.count(name)) << name;
  EXPECT_NE(state.at("blocks.0.mixer.q_proj.weight").to_vector(),
            teacher_names.at("blocks.0.mixer.q_proj.weight").to_vector());
}

// LoRA on the MLP of converted blocks (gate_proj, up_proj, down_proj), as LoLCATs / Liger
// configure it: gradients reach only the adapters, in f64 they match finite differences,
// and merging gives the plain SwiGLU's names back with the same logits.
TEST(LoRA, MlpAdapters) {
  HybridLM model(tiny());
  const auto teacher_names = model.state_dict();
  convert_to_liger(model, "", LigerOptions{});
  set_trainable(model, false);
  LoRAConfig lc;
  lc.rank = 2;
  lc.targets = {"q_proj", "gate_proj", "up_proj", "down_proj"};
  EXPECT_EQ(apply_lora(model, lc), 8);
  auto* mlp = dynamic_cast<LoRASwiGLU*>(model.blocks[1]->mlp.get());
  ASSERT_NE(mlp, nullptr);
  EXPECT_TRUE(mlp->down->has_adapter());
  {
    NoGradGuard ng;
    uint64_t seed = 30;
    for (auto& [name, p] : model.named_parameters())
      if (name.ends_with("lora_B")) {
        Tensor t = p;
        copy_(t, rand64(p.shape(), seed++));
      }
  }
  testing::expect_gradcheck([&](const std::vector<Tensor>& in) { return mlp->forward(in[0]); },
                            {rand64({2, 3, 16}, 40), mlp->gate->lora_A, mlp->up->lora_B, mlp->down->lora_A, mlp->down->lora_B});
  Tensor ids = some_ids();
  model.loss(ids, ids).total.backward();
  for (auto& [name, p] : model.named_parameters())
    EXPECT_EQ(p.grad().defined(), name.find(".lora_") != std::string::npos) << name;
  EXPECT_TRUE(model.named_parameters().size() > teacher_names.size());
  NoGradGuard ng;
  const std::vector<double> adapted = model.forward(ids).to_vector();
  merge_lora(model);
  const std::vector<double> merged = model.forward(ids).to_vector();
  for (size_t i = 0; i < adapted.size(); ++i) EXPECT_NEAR(adapted[i], merged[i], 1e-11);
  auto state = model.state_dict();
  ASSERT_EQ(state.size(), teacher_names.size());
  EXPECT_NE(state.at("blocks.0.mlp.w2.weight").to_vector(), teacher_names.at("blocks.0.mlp.w2.weight").to_vector());
  HybridLM plain(tiny());  // a plain model loads the merged student (what load_student does)
  EXPECT_NO_THROW(plain.load_state_dict(state));
  LoRAConfig bad;
  bad.targets = {"w1"};
  EXPECT_THROW(apply_lora(model, bad), Error);
}

}  // namespace
}  // namespace skein
