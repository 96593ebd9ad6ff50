// config.h — ModelConfig: everything that defines a HybridLM. Defaults are the benchmark
// model of ../shared/BENCHMARK.md (V 8192, d 512, 8 heads, LLLS, SwiGLU 1408, decay L layers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "core/dtype.h"

namespace skein {

struct ModelConfig {
  int64_t vocab_size = 8192;
  int64_t d_model = 512;
  int64_t n_layers = 4;
  int64_t n_heads = 8;          // head dim = d_model / n_heads
  int64_t n_kv_heads = 0;       // softmax layers; 0 means n_heads (no grouping)
  int64_t mlp_hidden = 1408;
  // One letter a layer, repeated or cut to n_layers: L linear attention, S softmax, M MoM.
  std::string layer_pattern = "LLLS";
  // Per-layer override of the linear variant for L layers ("" keeps linear_variant).
  std::vector<std::string> layer_variants;
  // L layers: plain | decay | gla | delta | gated_delta
  std::string linear_variant = "decay";
  // q/k feature map of plain/decay/gla: identity | elu1 | relu | hedgehog
  std::string feature_map = "identity";
  double linear_scale = 1.0;    // the benchmark: no q/k scaling
  bool linear_output_norm = true;
  bool linear_output_gate = false;
  int64_t gla_gate_rank = 16;
  double gla_gate_normalizer = 16.0;
  int64_t chunk_size = 64;
  // Short causal depthwise conv (SiLU) on q, k, v of L and M layers (layers/short_conv.h):
  // auto (delta, gated_delta and MoM, as in fla) | true (every L and M layer) | false.
  std::string short_conv = "auto";
  int64_t conv_size = 4;  // its kernel length
  // S layers
  int64_t window = 0;           // 0: full causal
  double rope_theta = 10000.0;
  // RoPE scaling of S layers (layers/rope.h), as transformers' modeling_rope_utils computes it:
  // default | linear | dynamic | llama3 | yarn.
  std::string rope_type = "default";
  double rope_factor = 1.0;                 // linear, dynamic, llama3, yarn
  int64_t rope_original_max_positions = 0;  // llama3, yarn: the pretraining context; dynamic: max_position_embeddings
  double rope_low_freq_factor = 1.0;        // llama3
  double rope_high_freq_factor = 4.0;       // llama3
  double rope_beta_fast = 32.0;             // yarn
  double rope_beta_slow = 1.0;              // yarn
  bool rope_truncate = true;                // yarn: round the correction range outwards
  double rope_attention_factor = 0.0;       // yarn: the cos/sin scale (0: 0.1 ln(factor) + 1)
  bool qkv_bias = false;                    // S layers: q/k/v projections with biases (Qwen2)
  // M layers (Mixture-of-Memories)
  int64_t mom_memories = 4;
  int64_t mom_topk = 2;
  bool mom_shared_memory = true;
  std::string mom_variant = "gated_delta";  // the recurrence of each memory
  double mom_aux_loss_scale = 0.01;
  // everything
  double norm_eps = 1e-6;
  bool tie_embeddings = false;
  double init_std = 0.02;
  bool scaled_residual_init = false;  // output projections std / sqrt(2 n_layers)
  uint64_t seed = 1234;
  DType dtype = DType::f32;
  // > 0: continuous inputs [B, T, input_dim] through a read-in layer instead of token ids, and
  // one scalar out per position (in-context regression); 0: a language model.
  int64_t input_dim = 0;  // parameters and activations (f64 for gradient checks)

  int64_t head_dim() const { return d_model / n_heads; }
  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  char layer_kind(int64_t i) const { return layer_pattern[i % layer_pattern.size()]; }
  std::string variant_of(int64_t i) const {
    return i < static_cast<int64_t>(layer_variants.size()) && !layer_variants[i].empty()
               ? layer_variants[i] : linear_variant;
  }
  void validate() const;  // throws skein::Error naming the field and value
};

}  // namespace skein
