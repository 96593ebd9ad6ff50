// attention.h — SoftmaxAttention: causal multi-head attention with grouped-query heads,
// RoPE on q and k (scaled per the config's rope_type, layers/rope.h), optional q/k/v biases
// (Qwen2), an optional sliding window, and a KV cache for generation. The
// attention itself is the fused flash-style op skein::softmax_attention (training goes
// through par().causal_attention so sequence parallelism can take over).
// Tensor parallelism: rank r holds query heads [r H/tp, (r + 1) H/tp) and kv heads
// [r Hkv/tp, (r + 1) Hkv/tp) (the grouped-query mapping is kept inside each block);
// q/k/v_proj are column-parallel, o_proj row-parallel, x enters through par().tp_copy.
#pragma once
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

class SoftmaxAttention : public Mixer {
 public:
  SoftmaxAttention(const ModelConfig& cfg, Generator& gen, double out_std, const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]

  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;
  int64_t n_heads, n_kv_heads, head_dim, window;  // heads: this rank's (all of them on one process)
  ModelConfig rope_cfg;  // the model's config: its rope_* fields set the frequencies
};

// The RoPE frequencies of a layer whose sequence so far ends at position seq_len - 1.
RopeFreqs layer_rope_freqs(const ModelConfig& rope_cfg, int64_t head_dim, int64_t seq_len);

// [B, T, H*hd] -> [B, H, T, hd] and back.
Tensor split_heads(const Tensor& x, int64_t heads);
Tensor merge_heads(const Tensor& x);

}  // namespace skein
