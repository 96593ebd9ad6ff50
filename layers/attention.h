// attention.h — SoftmaxAttention: causal multi-head attention with grouped-query heads,
// RoPE on q and k, an optional sliding window, and a KV cache for generation. The
// attention itself is the fused flash-style op skein::softmax_attention.
#pragma once
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

class SoftmaxAttention : public Mixer {
 public:
  SoftmaxAttention(const ModelConfig& cfg, Generator& gen, double out_std);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]

  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;
  int64_t n_heads, n_kv_heads, head_dim, window;
  double rope_theta;
};

// [B, T, H*hd] -> [B, H, T, hd] and back.
Tensor split_heads(const Tensor& x, int64_t heads);
Tensor merge_heads(const Tensor& x);

}  // namespace skein
