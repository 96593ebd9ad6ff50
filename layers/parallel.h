// parallel.h — ModelParallel: how one model is split over ranks, as the layers see it.
// Layers ask it for their tensor-parallel shard (tp_rank of tp_size: attention heads, MLP
// hidden columns and vocabulary rows are split in equal contiguous blocks) and route the few
// operations that cross ranks through it: Megatron's f / g around each tensor-parallel
// region, the vocabulary-parallel cross-entropy and the gather of the whole logits, the
// sequence-mixing ops over a sequence split across sp ranks (each sp rank holds one
// contiguous slice of every sequence), and sums of statistics over the ranks that hold the
// other tokens of the global batch.
// This base class is one process: every hook is the plain core op. parallel/model_parallel.h
// implements the hooks over communicators (layers never include parallel/).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>
#include "core/ops.h"

namespace skein {

// One independent linear recurrence (ModelParallel::segment_recurrences): the delta rule when
// beta is defined, else linear attention (core/ops.h). T is the length of this rank's piece of
// the segment's token list and may be 0 (no tokens here: out is [B, H, 0, Dv]).
struct Recurrence {
  Tensor q, k, v;  // q, k: [B, H, T, Dk], v: [B, H, T, Dv]
  Tensor beta;     // delta rule: [B, H, T]; undefined: linear attention
  Tensor gate;     // linear attention: log_gate (undefined | [H] | [B, H, T, Dk]);
                   // delta rule: log_alpha (undefined | [B, H, T])
  Tensor init;     // undefined (zeros) | [B, H, Dk, Dv]; undefined when sp_size > 1
};

// The core op over one whole recurrence (a piece of length 0 leaves init, or zeros, as is).
inline LinearAttentionResult run_recurrence(const Recurrence& r, double scale, int64_t chunk) {
  if (r.q.size(2) == 0) {
    const int64_t B = r.q.size(0), H = r.q.size(1), Dk = r.q.size(3), Dv = r.v.size(3);
    return {zeros({B, H, 0, Dv}, r.v.dtype()), r.init.defined() ? r.init : zeros({B, H, Dk, Dv}, r.v.dtype())};
  }
  if (r.beta.defined()) return skein::delta_rule(r.q, r.k, r.v, r.beta, r.gate, r.init, scale, chunk);
  return skein::linear_attention(r.q, r.k, r.v, r.gate, r.init, scale, chunk);
}

class ModelParallel {
 public:
  ModelParallel() = default;
  ModelParallel(int tp_rank, int tp_size, int sp_rank, int sp_size)
      : tp_rank_(tp_rank), tp_size_(tp_size), sp_rank_(sp_rank), sp_size_(sp_size) {}
  virtual ~ModelParallel() = default;

  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }
  int sp_rank() const { return sp_rank_; }
  int sp_size() const { return sp_size_; }

  // ---- tensor parallelism (reference: Megatron-LM §3, the f and g operators) ----
  // f: identity forward, gradient summed over tp ranks backward. Put on a replicated tensor
  // where it enters a tensor-parallel region (column-parallel inputs).
  virtual Tensor tp_copy(const Tensor& x) const { return x; }
  // g: sum over tp ranks forward, identity backward. Put on the partial outputs of a
  // row-parallel product (o_proj, w2) and of the vocabulary-parallel embedding.
  virtual Tensor tp_sum(const Tensor& x) const { return x; }
  // Every tp rank's x concatenated along the last dim in rank order, the same tensor on every
  // tp rank (x: [..., n] -> [..., tp_size * n]); backward: this rank's n columns of the
  // gradient. Every tp rank must then compute the same thing from it (the whole logits for
  // generation and accuracy).
  virtual Tensor tp_gather_last(const Tensor& x) const { return x; }
  // Mean cross-entropy over the non-ignored targets, with the vocabulary split over tp ranks:
  // logits: [N, V_shard] = columns [vocab_start, vocab_start + V_shard) of the padded
  // vocabulary (columns >= vocab_size are padding and take no probability); targets: [N]
  // global ids. The same scalar on every tp rank.
  virtual Tensor vocab_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                     int64_t vocab_size, int64_t ignore_index) const {
    (void)vocab_start;
    Tensor l = logits.size(1) == vocab_size ? logits : logits.narrow(1, 0, vocab_size);
    return cross_entropy(l, targets, ignore_index);
  }

  // ---- sequence parallelism (contiguous slices: rank r holds tokens [r*T, (r+1)*T)) ----
  // Global position of this rank's first token when it holds T tokens of each sequence.
  int64_t seq_offset(int64_t local_T) const { return static_cast<int64_t>(sp_rank_) * local_T; }
  // The core ops over this rank's slice (shapes as in core/ops.h; T is the local length).
  // `init` must be undefined when sp_size > 1 (the state comes from the earlier ranks); the
  // returned final_state is the state after the WHOLE sequence.
  virtual LinearAttentionResult linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                 const Tensor& log_gate, const Tensor& init, double scale,
                                                 int64_t chunk) const {
    return skein::linear_attention(q, k, v, log_gate, init, scale, chunk);
  }
  virtual LinearAttentionResult delta_rule(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                           const Tensor& log_alpha, const Tensor& init, double scale,
                                           int64_t chunk) const {
    return skein::delta_rule(q, k, v, beta, log_alpha, init, scale, chunk);
  }
  // Causal softmax attention of this rank's queries over the whole sequence's keys (training,
  // no KV cache). q: [B, H, T, D], k: [B, Hkv, T, D], v: [B, Hkv, T, Dv] (local slices, RoPE
  // already applied at global positions) -> [B, H, T, Dv].
  virtual Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                                  int64_t window) const {
    return softmax_attention(q, k, v, scale, true, window, 0);
  }
  // Several independent recurrences at once (MoM's memories): segment i's token list is split
  // over the sp ranks in rank order, this rank holding segments[i] (a contiguous piece, maybe
  // empty). Every rank passes the same number of segments with the same B, H, Dk, Dv and
  // kind. Returns, per segment, this rank's piece of the output and the state after the WHOLE
  // segment. Sequence-parallel: one collective for all segments together.
  virtual std::vector<LinearAttentionResult> segment_recurrences(const std::vector<Recurrence>& segments,
                                                                 double scale, int64_t chunk) const {
    std::vector<LinearAttentionResult> out;
    for (const Recurrence& r : segments) out.push_back(run_recurrence(r, scale, chunk));
    return out;
  }

  // Short convolutions over sequences split across sp ranks (layers/short_conv.h): xs[i]:
  // [B_i, T_i, C_i] is this rank's piece of stream i, the streams being cut over the sp ranks
  // in rank order (T_i may differ between ranks and be 0, as MoM's memories' token lists).
  // Returns per stream the `width` rows that precede this piece in the whole stream,
  // [B_i, width, C_i] (zeros before the stream's start), or undefined (= zeros) when nothing
  // precedes (one process). Backward: the gradient goes to the ranks holding those rows.
  // Every sp rank passes the same number of streams with the same B_i, C_i; one collective.
  virtual std::vector<Tensor> conv_prefixes(const std::vector<Tensor>& xs, int64_t width) const {
    (void)width;
    return std::vector<Tensor>(xs.size());
  }

  // ---- statistics of the whole global batch ----
  // x summed over the ranks that hold the other tokens of the same global batch (the dp x sp
  // group); forward all-reduce, backward identity (each rank's gradient stays its own part).
  virtual Tensor batch_sum(const Tensor& x) const { return x; }

 private:
  int tp_rank_ = 0, tp_size_ = 1, sp_rank_ = 0, sp_size_ = 1;
};

// The one-process instance (what a layer uses when it is given none).
inline const ModelParallel& single_process_parallel() {
  static const ModelParallel p;
  return p;
}

}  // namespace skein
