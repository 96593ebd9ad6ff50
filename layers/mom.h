// mom.h — MoM (Mixture-of-Memories): a bias-free linear router with softmax and top-k
// (weights renormalised); each memory runs its own linear recurrence over ONLY the tokens
// routed to it, in time order; an optional shared memory sees every token; the outputs are
// combined with the routing weights, then the usual output path (per-head RMSNorm, gate,
// o_proj). The Switch-style load-balancing statistics are kept for the model's aux loss.
// reference: Du et al., "MoM: Linear Sequence Modeling with Mixture-of-Memories", 2025;
// OpenSparseLLMs/MoM mom/layers/mom.py (router, dispatch, combine; see
// ../shared/research/linear_attention.md §4).
#pragma once
#include "layers/linear_attention.h"

namespace skein {

// One memory's own projections (q is shared by all memories).
class MemoryProjections : public Module {
 public:
  MemoryProjections(const ModelConfig& cfg, const std::string& variant, Generator& gen);
  std::shared_ptr<Linear> k_proj, v_proj, b_proj, a_proj;
};

class MoM : public Mixer {
 public:
  MoM(const ModelConfig& cfg, Generator& gen, double out_std);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d]

  // Routing of the last forward: probs [B*T, M] (differentiable) and, per memory, how many
  // (token, slot) pairs chose it (a constant) — the inputs of the aux loss.
  Tensor last_probs;
  std::vector<double> last_counts;
  // The renormalised routing weights of the last forward: [K, B*T] (slot s, row b*T + t).
  Tensor last_weights;
  // Token lists of the last forward, per (batch b, memory m): segments[b * M + m] (time order).
  std::vector<std::vector<int64_t>> last_segments;

  int64_t n_memories, topk;
  bool shared;
  std::string variant;
  std::shared_ptr<Linear> router;
  std::shared_ptr<LinearAttention> base;  // q_proj, o_proj, output norm/gate, A_log, dt_bias
  std::vector<std::shared_ptr<MemoryProjections>> memories;
  std::shared_ptr<MemoryProjections> shared_memory;

 private:
  // Runs one memory's recurrence over rows `rows` of the flattened input.  -> [n, H*dv]
  Tensor run_memory(const MemoryProjections& mem, const Tensor& x_rows, const Tensor& q_rows,
                    Tensor* state);
};

// Switch-style load-balancing loss over MoM layers: M * Σ_m f_m P_m with f_m the fraction of
// (token, slot) choices for memory m and P_m the mean router probability (a scalar).
Tensor mom_aux_loss(const std::vector<const MoM*>& layers);

}  // namespace skein
