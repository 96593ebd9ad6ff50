// attention.h — SoftmaxAttention: causal multi-head attention with grouped-query heads,
// RoPE on q and k, an optional sliding window, and a KV cache for generation. The
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
  double rope_theta;
};

// [B, T, H*hd] -> [B, H, T, hd] and back.
Tensor split_heads(const Tensor& x, int64_t heads);
Tensor merge_heads(const Tensor& x);

}  // namespace skein
