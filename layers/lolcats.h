// lolcats.h — the LoLCATs mixer: learnable Hedgehog feature maps plus sliding-window softmax
// attention, joined under ONE normaliser, built from a teacher SoftmaxAttention whose q/k/v/o
// projections it reuses. Stage 1 of LoLCATs trains only the feature maps and window factors
// (attention transfer, launch/distill.h); stage 2 adds LoRA adapters (layers/lora.h).
// reference: Zhang et al., "LoLCATs: On Low-Rank Linearizing of Large Language Models",
// arXiv 2410.10254 (2024); HazyResearch/lolcats src/model/feature_map.py (FeatureMapMLP +
// SoftmaxDim), src/model/linear_attention/linear_window_attention_sw.py (the "sw" variant).
//
// Per head h, queries/keys after RoPE (keys repeated over grouped-query heads):
//   φ(x) = [softmax(x W_h), softmax(-x W_h)]      W_h: [hd, f] per head, separate for q and k
//   window  Win(i) = {j : i - w < j <= i},  linear part  Lin(i) = {j : j <= i - w}
//   a_sm[i,j] = γ_h exp(τ q_i·k_j - m_i), m_i = max_{j in Win(i)} τ q_i·k_j,  τ = 1/√hd
//   a_ln[i,j] = φq(q_i)·φk(k_j)
//   y_i = (Σ_Win a_sm v_j + Σ_Lin a_ln v_j) / (Σ_Win a_sm + Σ_Lin a_ln),   γ_h = σ(window_factor_h)
// (The window max rescales only the softmax term, as in the reference.) With w >= T the linear
// part is empty and γ cancels: the layer is exactly the teacher's causal softmax attention.
#pragma once
#include "layers/lora.h"

namespace skein {

struct LolcatsOptions {
  int64_t window = 64;              // softmax keys per query (incl. itself)
  int64_t feature_dim = 64;         // f: the feature map has 2f outputs
  bool linear = true;               // false: the window part only (sliding-window softmax)
  double window_factor_init = -2.1972;  // γ = σ(-2.1972) = 0.1 (configs "w01")
  int64_t chunk = 64;               // chunk length of the linear-attention op
};

struct LolcatsResult {
  Tensor out;    // [B, H, L, Dv]
  Tensor state;  // [B, H, F, Dv + 1]: Σ φk_j [v_j, 1] over the keys left of every window
};

// The joint-normaliser attention above, by blocks of the window (memory O(L·w)) plus the
// chunkwise linear-attention op on keys shifted by w (so each query sees exactly Lin(i)).
// q, k: [B, H, L, D] (RoPE applied), v: [B, H, L, Dv], fq, fk: [B, H, L, F], gamma: [H] in (0, 1).
// linear_state: undefined | [B, H, F, Dv + 1], the linear keys before row 0 (generation);
// linear false ignores fq, fk, linear_state. Differentiable in every tensor input.
LolcatsResult lolcats_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& fq,
                                const Tensor& fk, const Tensor& gamma, int64_t window, double scale,
                                const Tensor& linear_state, bool linear = true, int64_t chunk = 64);

class LolcatsAttention : public ConvertedAttention {
 public:
  LolcatsAttention(const SoftmaxAttention& teacher, const LolcatsOptions& options, Generator& gen);
  // x: [B, T, d]. A cache holds the last w RoPE'd keys/values [B, Hkv, ≤w, hd] and the linear
  // state of the keys before them (states[0]): O(w) memory per layer, whatever the length.
  // With a cache and T <= w the step takes the decode path (decode below), otherwise the
  // blocked lolcats_attention over the cached rows and the new ones.
  Tensor forward(const Tensor& x, MixerCache* cache) override;
  // x: [B, H, T, hd], map: [H, hd, f] -> [B, H, T, 2f]
  Tensor feature(const Tensor& x, const Tensor& map) const;

  LolcatsOptions options;
  Tensor q_map, k_map;     // [H, hd, f], kaiming-uniform (bound √(6 / (hd·f)), torch's fan-in of [H, hd, f])
  Tensor window_factors;   // [H]

 private:
  // The decode path: T new queries against the c <= w cached keys and themselves, O(T·(c + T)·hd)
  // for the window; the keys that leave the window (at most T) are mapped by φk once and folded
  // into the linear state, which the queries read in O(T·f·hd). Updates the cache.
  // q: [B, H, T, hd], k, v: [B, Hkv, T, hd] (RoPE'd at cache.pos) -> [B, H, T, hd]
  Tensor decode(const Tensor& q, const Tensor& k, const Tensor& v, MixerCache& cache);
};

// Converts the layers of `model` chosen by `pattern` (see convert_attention_layers) to
// LoLCATs; layer i's feature maps are drawn from Generator(seed + i).
std::vector<int64_t> convert_to_lolcats(HybridLM& model, const std::string& pattern, const LolcatsOptions& options,
                                        uint64_t seed);

// ---- stage 1: attention transfer ----
// One teacher layer's mixer input (after norm1) and output on a batch: [B, T, d] each.
struct MixerActivations {
  int64_t layer = 0;
  Tensor input, output;
};
// Runs `teacher` on ids [B, T] without grad and records the mixer input and output of each
// of `layers` (the teacher itself is left as it was).
std::vector<MixerActivations> teacher_mixer_activations(HybridLM& teacher, const Tensor& ids,
                                                        const std::vector<int64_t>& layers);
// What stage 1 trains: every LoLCATs layer's q_map, k_map and window_factors (made trainable).
NamedTensors attention_transfer_parameters(const HybridLM& student);
// Mean over the recorded layers of MSE(student mixer(teacher input), teacher output): every
// layer learns on the teacher's own activations, all in parallel (LoLCATs' train_attention).
Tensor attention_transfer_loss(HybridLM& student, const std::vector<MixerActivations>& acts);

}  // namespace skein
