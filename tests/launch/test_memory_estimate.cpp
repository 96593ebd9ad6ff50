// test_memory_estimate.cpp — the up-front memory estimate of a training step (launch/
// memory_estimate.h) against the allocator's measured peak of real steps (forward, backward,
// AdamW) on three model sizes and layer kinds: within 25%. And the error when it does not fit
// names the biggest consumers and their keys.
#include <gtest/gtest.h>
#include <cmath>
#include <cstdio>
#include "configs/loader.h"
#include "core/allocator.h"
#include "core/ops.h"
#include "launch/memory_estimate.h"
#include "layers/model.h"
#include "optim/adamw.h"

namespace skein {
namespace {

// The allocator's peak over model construction and two optimizer steps.
int64_t measured_peak(const Config& cfg, int64_t* params) {
  cpu_allocator::reset_peak();
  const int64_t before = cpu_allocator::stats().bytes_live;
  HybridLM model(cfg.model);
  *params = model.num_parameters();
  AdamW opt(model.named_parameters(), AdamWOptions{});
  const int64_t B = cfg.data.batch_size, T = cfg.data.seq_len;
  Tensor ids = Tensor::empty({B, T}, DType::i64), tg = Tensor::empty({B, T}, DType::i64);
  for (int64_t i = 0; i < B * T; ++i) ids.data<int64_t>()[i] = tg.data<int64_t>()[i] = (i * 7) % cfg.model.vocab_size;
  for (int s = 0; s < 2; ++s) {
    opt.zero_grad();
    model.loss(ids, tg).total.backward();
    opt.step();
  }
  return cpu_allocator::stats().bytes_peak - before;
}

Config sized(const std::string& pattern, int64_t d, int64_t layers, int64_t T, int64_t B, int64_t V) {
  return load_config("", {"model.d_model=" + std::to_string(d), "model.n_layers=" + std::to_string(layers),
                          "model.n_heads=4", "model.mlp_hidden=" + std::to_string(d * 11 / 4),
                          "model.vocab_size=" + std::to_string(V), "model.layer_pattern=" + pattern,
                          "data.seq_len=" + std::to_string(T), "data.batch_size=" + std::to_string(B)});
}

TEST(MemoryEstimate, WithinAQuarterOfTheMeasuredPeakOnThreeSizes) {
  const Config configs[] = {sized("LS", 64, 2, 128, 4, 256), sized("L", 128, 2, 512, 2, 256), sized("M", 96, 2, 256, 2, 512)};
  for (const Config& c : configs) {
    int64_t params = 0;
    const int64_t peak = measured_peak(c, &params);
    const int64_t est = estimate_step_memory(c, params).total;
    SCOPED_TRACE(c.model.layer_pattern + " d " + std::to_string(c.model.d_model) + ": estimate " + format_bytes(est) +
                 ", measured peak " + format_bytes(peak));
    std::printf("memory estimate %s d %lld T %lld: estimate %lld, measured peak %lld bytes (ratio %.3f)\n",
                c.model.layer_pattern.c_str(), static_cast<long long>(c.model.d_model),
                static_cast<long long>(c.data.seq_len), static_cast<long long>(est), static_cast<long long>(peak),
                static_cast<double>(est) / static_cast<double>(peak));
    EXPECT_NEAR(static_cast<double>(est) / static_cast<double>(peak), 1.0, 0.25);
  }
}

TEST(MemoryEstimate, TooBigNamesTheBiggestConsumersAndKeys) {
  Config c = sized("LS", 1024, 24, 8192, 64, 32000);
  c.train.fused_head = false;  // the unfused head holds the [tokens, V] logits: a named consumer
  const MemoryEstimate est = estimate_step_memory(c, 400'000'000);
  EXPECT_EQ(est.items.front().what, "activations kept for backward");  // sorted, biggest first
  try {
    check_step_memory(est, int64_t{8} << 30);
    FAIL() << "a step of " << format_bytes(est.total) << " fit in 8 GiB";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const char* want : {"memory: one training step needs about", "8.0 GiB are available",
                             "activations kept for backward", "data.batch_size, data.seq_len", "logits",
                             "model.vocab_size", "train.grad_accum"})
      EXPECT_NE(m.find(want), std::string::npos) << want << " in: " << m;
  }
  EXPECT_NO_THROW(check_step_memory(est, est.total));
  EXPECT_NO_THROW(check_step_memory(est, -1));  // unknown: no check
  EXPECT_GT(available_memory_bytes(), 0);
}

}  // namespace
}  // namespace skein
