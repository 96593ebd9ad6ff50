// model_parallel.h — CommModelParallel: the ModelParallel hooks (layers/parallel.h) over
// communicators, so a HybridLM built with it runs tensor-parallel over `tp` and
// sequence-parallel over `sp`:
//   tp_copy  = identity_allreduce_backward_op (Megatron f)   tp_sum = all_reduce_op (g)
//   tp_gather_last = all_gather_last_dim_op (backward: this rank's slice)
//   vocab_cross_entropy = vocab_parallel_cross_entropy (parallel/vocab_parallel.h)
//   linear_attention / delta_rule / segment_recurrences = LASP-2 (parallel/lasp2.h)
//   conv_prefixes = conv_halo (parallel/conv_halo.h: one all-gather of the last K-1 rows)
//   causal_attention = ring_attention (zigzag) or lasp2h_attention (parallel/softmax_sp.h)
//   batch_sum = all_reduce_op over `batch`, the ranks holding the other tokens of the global
//     batch (the dp × sp group)
// The sequence hooks are the one-process ops when sp_size is 1, the tp hooks when tp_size is 1.
// The communicators must outlive every model built with it and every backward pass.
#pragma once
#include <string>
#include "layers/parallel.h"
#include "parallel/communicator.h"
#include "parallel/grid.h"
#include "parallel/lasp2.h"

namespace skein {

class CommModelParallel : public ModelParallel {
 public:
  // softmax_sp: causal softmax attention over a sequence split across sp ranks, "ring" (Ring
  // Attention, zigzag: the local length must be even) or "lasp2h" (one all-gather of K, V).
  // lasp2: how LASP-2's state all-gather runs (overlap with the intra-slice pass, or none).
  CommModelParallel(Communicator& tp, Communicator& sp, Communicator& batch, const std::string& softmax_sp = "ring",
                    const Lasp2Options& lasp2 = {});
  // One data-parallel replica: the global batch's tokens are split over sp only (batch = sp).
  CommModelParallel(Communicator& tp, Communicator& sp) : CommModelParallel(tp, sp, sp) {}
  explicit CommModelParallel(const ProcessGrid& grid, const std::string& softmax_sp = "ring",
                             const Lasp2Options& lasp2 = {})
      : CommModelParallel(grid.tp_comm(), grid.sp_comm(), grid.dp_sp_comm(), softmax_sp, lasp2) {}

  Tensor tp_copy(const Tensor& x) const override;
  Tensor tp_sum(const Tensor& x) const override;
  Tensor tp_gather_last(const Tensor& x) const override;
  Tensor vocab_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                             int64_t vocab_size, int64_t ignore_index) const override;
  LinearAttentionResult linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& log_gate, const Tensor& init, double scale,
                                         int64_t chunk) const override;
  LinearAttentionResult delta_rule(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                   const Tensor& log_alpha, const Tensor& init, double scale,
                                   int64_t chunk) const override;
  Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                          int64_t window) const override;
  std::vector<LinearAttentionResult> segment_recurrences(const std::vector<Recurrence>& segments, double scale,
                                                         int64_t chunk) const override;
  std::vector<Tensor> conv_prefixes(const std::vector<Tensor>& xs, int64_t width) const override;
  Tensor batch_sum(const Tensor& x) const override;

 private:
  Communicator& tp_;
  Communicator& sp_;
  Communicator& batch_;
  std::string softmax_sp_;
  Lasp2Options lasp2_;
};

}  // namespace skein
