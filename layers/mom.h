// mom.h — MoM (Mixture-of-Memories): a bias-free linear router with softmax and top-k
// (weights renormalised); each memory runs its own linear recurrence over ONLY the tokens
// routed to it, in time order; an optional shared memory sees every token; the outputs are
// combined with the routing weights, then the usual output path (per-head RMSNorm, gate,
// o_proj). The Switch-style load-balancing statistics are kept for the model's aux loss.
// reference: Du et al., "MoM: Linear Sequence Modeling with Mixture-of-Memories", 2025;
// OpenSparseLLMs/MoM mom/layers/mom.py (router, dispatch, combine; see
// ../shared/research/linear_attention.md §4).
// Short convs (model.short_conv, on by default as in MomConfig.use_short_conv): one set of
// q/k/v conv weights shared by the memories (fla's q/k/v_conv1d), run over each (batch,
// memory) token list alone, and over the whole sequence for the shared memory, each with its
// own carried inputs in generation. (fla's training path runs the conv over the packed
// segments, so its windows cross segment boundaries; its inference path does not: skein
// follows the inference path in both, so that generation equals the full forward.)
// Speed (one sp rank, training): memory m's B segments run as one right-padded batch, so a
// layer makes M + 1 recurrence and conv calls, not M * B + 1.
//
// Sequence parallelism: each sp rank holds a contiguous slice of every sequence, so a rank's
// tokens routed to memory m are a contiguous piece of m's token list. All memories' (and the
// shared memory's) recurrences go through ONE par().segment_recurrences call (LASP-2 over
// all of them: one all-gather per layer, its size independent of T).
// Tensor parallelism: rank r holds heads [r H/tp, (r + 1) H/tp), as LinearAttention: q_proj,
// every memory's k/v_proj and g_proj are column-parallel, b/a_proj rows, A_log, dt_bias,
// o_norm, the fixed decay and the short convs' channels cut to those heads, o_proj row-parallel; the router is
// replicated, and the routing weights enter the sharded combine through par().tp_copy.
#pragma once
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

// One memory's own projections (q is shared by all memories), this rank's heads.
class MemoryProjections : public Module {
 public:
  MemoryProjections(const ModelConfig& cfg, const std::string& variant, Generator& gen, const ModelParallel* par);
  std::shared_ptr<Linear> k_proj, v_proj, b_proj, a_proj;
  // k, v, then b and a where the variant has them: the order of MoM::inputs' projections.
  std::vector<const Linear*> layers() const;
};

class MoM : public Mixer {
 public:
  // par: the model's split over ranks (null: one process); must outlive the layer.
  MoM(const ModelConfig& cfg, Generator& gen, double out_std, const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& x, MixerCache* cache) override;  // x: [B, T, d] (this rank's tokens)

  // Routing of the last forward: probs [B*T, M] (differentiable) and, per memory, how many
  // (token, slot) pairs chose it (a constant) — the inputs of the aux loss.
  Tensor last_probs;
  std::vector<double> last_counts;
  // The renormalised routing weights of the last forward: [K, B*T] (slot s, row b*T + t).
  Tensor last_weights;
  // Token lists of the last forward, per (batch b, memory m): segments[b * M + m] (time order).
  std::vector<std::vector<int64_t>> last_segments;

  int64_t n_memories, topk;
  int64_t n_heads, head_dim, chunk;  // n_heads: this rank's heads (all of them on one process)
  double scale;
  bool shared, output_norm, output_gate;
  bool short_conv;  // q, k, v of every memory's segment pass a SiLU short conv (shared weights)
  std::string variant;
  std::shared_ptr<Linear> router;                // replicated
  std::shared_ptr<Linear> q_proj, o_proj, g_proj;  // shared by all memories
  Tensor A_log, dt_bias;  // gated_delta: [H] (this rank's heads), shared by all memories
  Tensor o_norm;          // output RMSNorm gain [H * hd]
  Tensor log_decay;       // decay: constant [H], not a parameter
  Tensor q_conv, k_conv, v_conv;  // short conv weights [H * hd, conv_size], shared by all memories
  std::vector<std::shared_ptr<MemoryProjections>> memories;
  std::shared_ptr<MemoryProjections> shared_memory;

  // A memory's inputs before the short conv and the head split: q, k, v: [Bx, n, H*hd];
  // beta, gate: [Bx, H, n] (delta rule) or gate [H] | undefined (linear attention).
  struct Inputs {
    Tensor q, k, v, beta, gate;
  };
 private:
  // A memory's inputs from queries q: [Bx, n, H*hd] and its projections p of the same rows
  // (MemoryProjections::layers' order): k, v: [Bx, n, H*hd], then b, a: [Bx, n, H].
  Inputs inputs(const Tensor& q, const std::vector<Tensor>& p) const;
  // Head split and key/query features of (conv'd) inputs -> the recurrence.
  Recurrence recurrence(const Inputs& in) const;
  // The short convs of every part's q, k, v (in place; with the cache's conv states).
  void conv_parts(std::vector<Inputs>& parts, MixerCache* cache) const;
  // o: [B, T, H, dv] (this rank's heads), gate: g_proj(x): [B, T, H*dv] (undefined without
  // the output gate) -> [B, T, d].
  Tensor output(const Tensor& o, const Tensor& gate) const;
};

// Switch-style load-balancing loss over MoM layers: M * Σ_m f_m P_m with f_m the fraction of
// (token, slot) choices for memory m and P_m the mean router probability (a scalar), both
// over the WHOLE global batch: the statistics are summed over ranks by par().batch_sum
// (forward all-reduce, backward identity), so the value is the same on every rank.
// Gradient weighting under data / sequence parallelism (W = dp * sp ranks, gradients
// AVERAGED over them, parallel/data_parallel.h): with the identity backward, rank r's
// gradient of aux is only the part through its own tokens, and the parts sum to the exact
// gradient. So rank r backpropagates
//     c_r * lm_r  +  W * aux_scale * aux        (c_r = W n_r / N, global_token_scale)
// and the average over W ranks is exactly ∇(lm + aux_scale * aux) of one process on the
// global batch. (Tensor-parallel ranks hold the same tokens and compute the same aux: no
// extra factor.)
Tensor mom_aux_loss(const std::vector<const MoM*>& layers);

}  // namespace skein
