// linear_attention.h — LinearAttention: the L layer. Projections, feature map or key norm,
// gates, the fused chunkwise op (skein::linear_attention or skein::delta_rule), per-head
// output RMSNorm with a learnable gain, an optional output gate, and the output projection.
// Variants (config): plain | decay (fixed per-head λ_h, the benchmark's L) | gla | delta |
// gated_delta. The recurrent state is carried in a MixerCache during generation.
#pragma once
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

// The fixed per-head decay of the benchmark model: log λ_h, λ_h = 1 - 2^-(5+h).  -> [H]
Tensor retnet_log_decay(int64_t n_heads);

class LinearAttention : public Mixer {
 public:
  LinearAttention(const ModelConfig& cfg, const std::string& variant, Generator& gen, double out_std);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]

  std::string variant, feature_map;
  int64_t n_heads, head_dim, chunk;
  double scale, gate_normalizer;
  bool output_norm, output_gate;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj, g_proj;
  std::shared_ptr<Linear> gk_proj_a, gk_proj_b;   // gla: low-rank gate projection
  std::shared_ptr<Linear> b_proj, a_proj;         // delta: beta; gated_delta: alpha
  Tensor A_log, dt_bias;                          // gated_delta  [H]
  Tensor q_fmap, k_fmap;                          // hedgehog     [H, hd, hd]
  Tensor o_norm;                                  // output RMSNorm gain [d]
  Tensor log_decay;                               // decay: constant [H], not a parameter

  // Pieces MoM reuses: the q/k feature transform, and the output path.
  Tensor feature(const Tensor& x, const Tensor& fmap) const;   // x: [B, H, T, hd]
  Tensor output(const Tensor& o, const Tensor& x) const;       // o: [B, H, T, dv], x: [B, T, d]
};

}  // namespace skein
