// test_cuda_model.cpp — the whole training step on a GPU against the CPU: a small model of the
// benchmark's shape (LLLS, decay; and the other mixers) gives the same loss and every parameter
// gradient; 20 AdamW steps reproduce the CPU's losses; a GPU checkpoint resumes on the CPU; the
// device errors (mixed devices, an allocation larger than the GPU). Skipped without a GPU.
#include <gtest/gtest.h>
#include <cmath>
#include "core/backend.h"
#include "data/loader.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "tests/cuda/cuda_compare.h"

namespace skein::cudatest {
namespace {

ModelConfig small(const std::string& pattern, const std::string& variant, DType dt) {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.mlp_hidden = 64;
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.chunk_size = 8;
  c.dtype = dt;
  return c;
}

Batch batch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  std::vector<double> ids, tgt;
  for (int64_t i = 0; i < B * T; ++i) {
    ids.push_back(static_cast<double>((i * 13 + seed) % V));
    tgt.push_back(static_cast<double>((i * 7 + 3 * seed) % V));
  }
  return {from_vector(ids, {B, T}, DType::i64), from_vector(tgt, {B, T}, DType::i64)};
}

// Loss and every gradient of one forward/backward on `device` (same init: the same seed).
std::pair<double, std::map<std::string, Tensor>> step_on(const ModelConfig& c, Device device, const Batch& b) {
  HybridLM model(c);
  model.to(device);
  LossParts l = model.loss(b.inputs.to(device), b.targets.to(device));
  l.total.backward();
  std::map<std::string, Tensor> grads;
  for (const auto& [name, p] : model.named_parameters()) grads[name] = p.grad().to(Device::cpu);
  return {l.total.item(), grads};
}

TEST(CudaModel, LossAndEveryGradientEqualTheCpu) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    for (auto [pattern, variant] : std::vector<std::pair<std::string, std::string>>{
             {"LLLS", "decay"}, {"LS", "gla"}, {"LS", "gated_delta"}, {"MS", "decay"}}) {
      const ModelConfig c = small(pattern, variant, dt);
      const Batch b = batch(2, 19, c.vocab_size, 3);
      auto [lc, gc] = step_on(c, Device::cpu, b);
      auto [lg, gg] = step_on(c, Device::cuda, b);
      const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
      EXPECT_NEAR(lc, lg, tol * std::max(1.0, std::abs(lc))) << pattern << " " << variant;
      for (const auto& [name, g] : gc)
        EXPECT_LE(rel_l2(g, gg.at(name)), tol) << pattern << " " << variant << " " << dtype_name(dt) << ": " << name;
    }
  }
}

std::vector<double> train_losses(const ModelConfig& c, Device device, int steps, HybridLM* keep = nullptr) {
  HybridLM local(c);
  HybridLM& model = keep ? *keep : local;
  model.to(device);
  AdamWOptions o;
  o.lr = 3e-3;
  AdamW opt(model.named_parameters(), o);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Batch b = batch(2, 16, c.vocab_size, static_cast<uint64_t>(s + 1));
    b = {b.inputs.to(device), b.targets.to(device)};
    opt.zero_grad();
    LossParts l = model.loss(b.inputs, b.targets);
    l.total.backward();
    clip_grad_norm(model.named_parameters(), 1.0);
    opt.step();
    losses.push_back(l.lm.item());
  }
  return losses;
}

TEST(CudaModel, TwentyStepsReproduceTheCpuLosses) {
  SKEIN_REQUIRE_GPU();
  const ModelConfig c = small("LLLS", "decay", DType::f32);
  const std::vector<double> cpu = train_losses(c, Device::cpu, 20), gpu = train_losses(c, Device::cuda, 20);
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(cpu[i], gpu[i], 1e-4 * std::max(1.0, cpu[i])) << "step " << i;
  EXPECT_LT(gpu.back(), gpu.front());  // and it learns
}

TEST(CudaModel, AGpuCheckpointResumesOnTheCpu) {
  SKEIN_REQUIRE_GPU();
  const ModelConfig c = small("LS", "decay", DType::f64);
  HybridLM gpu_model(c);
  train_losses(c, Device::cuda, 3, &gpu_model);
  std::map<std::string, Tensor> state;
  for (const auto& [k, t] : gpu_model.state_dict()) state[k] = t.to(Device::cpu);  // what checkpoints write
  HybridLM cpu_model(c);
  cpu_model.load_state_dict(state);
  const Batch b = batch(1, 12, c.vocab_size, 9);
  NoGradGuard ng;
  const double on_cpu = cpu_model.loss(b.inputs, b.targets).lm.item();
  const double on_gpu = gpu_model.loss(b.inputs.to(Device::cuda), b.targets.to(Device::cuda)).lm.item();
  EXPECT_NEAR(on_cpu, on_gpu, 1e-10);
}

TEST(CudaModel, AdamWAndClipMatchTheCpu) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Tensor p0 = randn({1000}, 1, dt), g0 = randn({1000}, 2, dt);
    Tensor pc = p0.clone().detach(), pg = p0.to(Device::cuda).detach();
    pc.requires_grad_();
    pg.requires_grad_();
    AdamWOptions o;
    AdamW oc({{"p", pc}}, o), og({{"p", pg}}, o);
    for (int s = 0; s < 3; ++s) {
      accumulate_grad(pc.impl_ptr()->grad, g0, pc.shape(), dt, "test", true);
      accumulate_grad(pg.impl_ptr()->grad, g0.to(Device::cuda), pg.shape(), dt, "test", true);
      EXPECT_NEAR(clip_grad_norm(std::vector<Tensor>{pc}, 0.5), clip_grad_norm(std::vector<Tensor>{pg}, 0.5), 1e-9);
      oc.step();
      og.step();
      oc.zero_grad();
      og.zero_grad();
    }
    EXPECT_LE(rel_l2(pc, pg), tolerance(dt));
    EXPECT_EQ(og.state_dict().at("exp_avg.p").device(), Device::cuda);  // state lives with the parameter
  }
}

TEST(CudaModel, DeviceErrors) {
  SKEIN_REQUIRE_GPU();
  Tensor a = randn({3, 4}, 1), b = randn({3, 4}, 2).to(Device::cuda);
  try {
    add(a, b);
    FAIL() << "mixed devices accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cpu"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda"), std::string::npos) << m;
    EXPECT_NE(m.find("add"), std::string::npos) << m;
  }
  try {
    Tensor huge = Tensor::empty({int64_t{1} << 40}, DType::f32, Device::cuda);  // 4 TiB
    FAIL() << "a 4 TiB allocation succeeded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("free"), std::string::npos) << m;
  }
  Tensor after = randn({8}, 3).to(Device::cuda);  // the device still works
  EXPECT_EQ(after.to_vector(), randn({8}, 3).to_vector());
}

}  // namespace
}  // namespace skein::cudatest
