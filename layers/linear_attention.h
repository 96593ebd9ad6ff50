// linear_attention.h — LinearAttention: the L layer. Projections, feature map or key norm,
// gates, the fused chunkwise op (skein::linear_attention or skein::delta_rule), per-head
// output RMSNorm with a learnable gain, an optional output gate, and the output projection.
// Variants (config): plain | decay (fixed per-head λ_h, the benchmark's L) | gla | delta |
// gated_delta. The recurrent state is carried in a MixerCache during generation; training
// runs the mixing op through par().linear_attention / par().delta_rule (sequence parallelism).
// Tensor parallelism: rank r holds heads [r H/tp, (r + 1) H/tp): q/k/v/g_proj (and GLA's
// gk_proj_b, bias included) are column-parallel, b/a_proj rows, A_log, dt_bias, q/k_fmap,
// o_norm's gain features and the fixed decay are cut to those heads, o_proj is row-parallel;
// the short convs' channels are cut as q/k/v_proj's outputs; GLA's low-rank gk_proj_a is replicated and its output enters the tp region through
// par().tp_copy, as x does.
#pragma once
#include <utility>
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

// The fixed per-head decay of the benchmark model: log λ_h, λ_h = 1 - 2^-(5+h).  -> [H]
Tensor retnet_log_decay(int64_t n_heads);
// Gated DeltaNet's per-head {A_log, dt_bias} for all n_heads heads, drawn from gen (GDN / MoM
// init: A ~ U(0, 16), dt ~ log-uniform [1e-3, 0.1], dt_bias = softplus^-1(dt)).  -> [H], [H]
std::pair<Tensor, Tensor> gated_delta_init(int64_t n_heads, Generator& gen, DType dtype);

class LinearAttention : public Mixer {
 public:
  LinearAttention(const ModelConfig& cfg, const std::string& variant, Generator& gen, double out_std,
                  const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]

  std::string variant, feature_map;
  int64_t n_heads, head_dim, chunk;  // n_heads: this rank's heads (all of them on one process)
  double scale, gate_normalizer;
  bool output_norm, output_gate;
  bool short_conv;  // q, k, v pass a SiLU short conv (layers/short_conv.h)
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj, g_proj;
  std::shared_ptr<Linear> gk_proj_a, gk_proj_b;   // gla: low-rank gate projection
  std::shared_ptr<Linear> b_proj, a_proj;         // delta: beta; gated_delta: alpha
  Tensor A_log, dt_bias;                          // gated_delta  [H]  (this rank's heads)
  Tensor q_fmap, k_fmap;                          // hedgehog     [H, hd, hd]
  Tensor o_norm;                                  // output RMSNorm gain [H * hd]
  Tensor q_conv, k_conv, v_conv;                  // short conv weights [H * hd, conv_size]
  Tensor log_decay;                               // decay: constant [H], not a parameter

  // Pieces MoM reuses: the q/k feature transform, and the output path.
  Tensor feature(const Tensor& x, const Tensor& fmap) const;   // x: [B, H, T, hd]
  // o: [B, H, T, dv] (this rank's heads), x: [B, T, d] (after par().tp_copy: it feeds g_proj).
  Tensor output(const Tensor& o, const Tensor& x) const;
};

}  // namespace skein
