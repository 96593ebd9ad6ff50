// liger.h — Liger conversion of a softmax attention layer into a gated linear recurrence with
// NO new parameters: the teacher's q/k/v/o projections are reused, the feature map is a
// softmax over each head's dims, and the GLA forget gates come from the teacher's KEY
// projection itself. Optional Liger Attention mixes in sliding-window softmax attention.
// reference: Lan et al., "Liger: Linearizing Large Language Models to Gated Recurrent
// Structures", arXiv 2503.01496 (2025); OpenSparseLLMs/Linearization
// liger/models/liger_gla/modeling_liger_gla.py (LigerGatedLinearAttention.forward).
//
// Per head h (k, v repeated over grouped-query heads), with x the layer input [B, T, d]:
//   q = x Wqᵀ, k = x Wkᵀ, v = x Wvᵀ                   (raw projections: no RoPE on this path)
//   φq = softmax(q over the head dim), φk = softmax(k over the head dim)
//   log gate g = logsigmoid(k) / 16                    (α_t = σ(k_t)^(1/16) per key dim)
//   S_t = diag(exp g_t) S_{t-1} + φk_tᵀ v_t,  o_gla_t = φq_t S_t      (scale 1)
//   Liger Attention: o = 0.5 · SWA(rope(q), rope(k), v; window 64, scale 1/√hd) + 0.5 · o_gla
//   out = o_proj(o)
// The gate is exactly the function `liger_log_gates` below of the key projection's output.
#pragma once
#include "layers/lora.h"

namespace skein {

struct LigerOptions {
  bool attention = true;         // Liger Attention: mix in sliding-window softmax attention
  int64_t window = 64;           // its window (keys with query_pos - key_pos < window)
  double mix = 0.5;              // o = mix · o_swa + (1 - mix) · o_gla
  double gate_normalizer = 16.0; // log gate = logsigmoid(k) / gate_normalizer
  int64_t chunk = 64;            // chunk length of the chunkwise GLA op
};

// k: [B, Hkv, T, hd] (the key projection's output, split into heads) -> log gates of the
// same shape: logsigmoid(k) / normalizer (every entry < 0).
Tensor liger_log_gates(const Tensor& k, double normalizer);

class LigerAttention : public ConvertedAttention {
 public:
  LigerAttention(const SoftmaxAttention& teacher, const LigerOptions& options);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]
  // The GLA log gates of input x: [B, T, d] -> [B, H, T, hd] (repeated over query groups).
  Tensor log_gates(const Tensor& x) const;

  LigerOptions options;
};

// Converts the layers of `model` chosen by `pattern` (see convert_attention_layers) to Liger.
std::vector<int64_t> convert_to_liger(HybridLM& model, const std::string& pattern, const LigerOptions& options);

}  // namespace skein
