// model_parallel.cpp — CommModelParallel (parallel/model_parallel.h).
#include "parallel/model_parallel.h"
#include "parallel/collective_ops.h"
#include "parallel/conv_halo.h"
#include "parallel/lasp2.h"
#include "parallel/softmax_sp.h"
#include "parallel/vocab_parallel.h"

namespace skein {

CommModelParallel::CommModelParallel(Communicator& tp, Communicator& sp, Communicator& batch,
                                     const std::string& softmax_sp, const Lasp2Options& lasp2)
    : ModelParallel(tp.rank(), tp.size(), sp.rank(), sp.size()), tp_(tp), sp_(sp), batch_(batch),
      softmax_sp_(softmax_sp), lasp2_(lasp2) {
  SKEIN_CHECK(softmax_sp_ == "ring" || softmax_sp_ == "lasp2h", "parallel.softmax_sp: unknown '", softmax_sp_,
              "' (ring, lasp2h)");
}

Tensor CommModelParallel::tp_copy(const Tensor& x) const {
  return tp_size() == 1 ? x : identity_allreduce_backward_op(tp_, x);
}

Tensor CommModelParallel::tp_sum(const Tensor& x) const { return tp_size() == 1 ? x : all_reduce_op(tp_, x); }

Tensor CommModelParallel::tp_gather_last(const Tensor& x) const {
  return tp_size() == 1 ? x : all_gather_last_dim_op(tp_, x);
}

Tensor CommModelParallel::vocab_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_start,
                                              int64_t vocab_size, int64_t ignore_index) const {
  return vocab_parallel_cross_entropy(tp_, logits, targets, vocab_start, vocab_size, ignore_index);
}

LinearAttentionResult CommModelParallel::linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                          const Tensor& log_gate, const Tensor& init,
                                                          double scale, int64_t chunk) const {
  if (sp_size() == 1) return skein::linear_attention(q, k, v, log_gate, init, scale, chunk);
  SKEIN_CHECK(!init.defined(), "linear_attention: an initial state cannot be given with sp_size ", sp_size(),
              " (the state comes from the earlier sp ranks)");
  return lasp2_linear_attention(sp_, q, k, v, log_gate, scale, chunk, lasp2_);
}

LinearAttentionResult CommModelParallel::delta_rule(const Tensor& q, const Tensor& k, const Tensor& v,
                                                    const Tensor& beta, const Tensor& log_alpha, const Tensor& init,
                                                    double scale, int64_t chunk) const {
  if (sp_size() == 1) return skein::delta_rule(q, k, v, beta, log_alpha, init, scale, chunk);
  SKEIN_CHECK(!init.defined(), "delta_rule: an initial state cannot be given with sp_size ", sp_size(),
              " (the state comes from the earlier sp ranks)");
  return lasp2_delta_rule(sp_, q, k, v, beta, log_alpha, scale, chunk, lasp2_);
}

Tensor CommModelParallel::causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                                           int64_t window) const {
  if (sp_size() == 1) return softmax_attention(q, k, v, scale, true, window, 0);
  return softmax_sp_ == "lasp2h" ? lasp2h_attention(sp_, q, k, v, scale, window)
                                 : ring_attention(sp_, q, k, v, scale, window, true);
}

std::vector<LinearAttentionResult> CommModelParallel::segment_recurrences(const std::vector<Recurrence>& segments,
                                                                          double scale, int64_t chunk) const {
  if (sp_size() == 1) return ModelParallel::segment_recurrences(segments, scale, chunk);
  return lasp2_segments(sp_, segments, scale, chunk, lasp2_);
}

std::vector<Tensor> CommModelParallel::conv_prefixes(const std::vector<Tensor>& xs, int64_t width) const {
  if (sp_size() == 1) return ModelParallel::conv_prefixes(xs, width);
  return conv_halo(sp_, xs, width);
}

Tensor CommModelParallel::batch_sum(const Tensor& x) const { return batch_.size() == 1 ? x : all_reduce_op(batch_, x); }

}  // namespace skein
