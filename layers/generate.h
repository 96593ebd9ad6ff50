// generate.h — generation without grad: the prompt is run once (prefill), then one token at
// a time, each linear layer carrying its recurrent state (O(1) memory per token) and each
// softmax layer a KV cache. Greedy, temperature and top-k sampling.
// Tensor parallelism: every tp rank calls generate with the same prompt and options (the
// forward's collectives run in lockstep); each rank's caches hold its own heads, and the
// logits are gathered whole on every rank, so the same seed picks the same token everywhere.
#pragma once
#include <vector>
#include "layers/model.h"

namespace skein {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: the whole vocabulary
  uint64_t seed = 0;
};

// prompt: token ids (non-empty) -> prompt followed by the generated tokens.
std::vector<int64_t> generate(HybridLM& model, const std::vector<int64_t>& prompt, const SamplingOptions& opt);

// Picks the next token from logits [V] (f32 or f64) per the options; `gen` supplies randomness.
// Deterministic: the same logits and generator state give the same token.
int64_t sample_token(const Tensor& logits, const SamplingOptions& opt, Generator& gen);

}  // namespace skein
