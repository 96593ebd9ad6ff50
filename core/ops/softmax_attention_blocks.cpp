// softmax_attention_blocks.cpp — the blocks of a split sequence for sequence parallelism
// (core/ops.h, used by parallel/softmax_sp.h for Ring Attention): the device kernels of
// softmax_attention without autograd — a block forward of queries and keys at any global
// positions returning {out, lse}, the merge of two such results, and a block backward from
// the merged out and lse.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023; Liu et al., "Ring Attention with Blockwise Transformers for
//            Near-Infinite Context", 2023.
#include <string>
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/ops/softmax_attention_impl.h"

namespace skein {
namespace sa = softmax_attention_impl;

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> out [B, H, Tq, Dv], lse [B, H, Tq]
AttentionBlockResult attention_block_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             double scale, bool causal, int64_t window,
                                             int64_t q_pos, int64_t k_pos) {
  const kern::AttentionArgs a = sa::checked_args("attention_block_forward", q, k, v, scale, causal,
                                                 window, q_pos, k_pos);
  return sa::attention_forward(a, q, k, v);
}

// q, k, v as above; out, dout: [B, H, Tq, Dv], lse: [B, H, Tq] (merged over every key block)
// -> {dq [B, H, Tq, D], dk [B, Hkv, Tk, D], dv [B, Hkv, Tk, Dv]}
std::vector<Tensor> attention_block_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse,
                                             const Tensor& dout, double scale, bool causal,
                                             int64_t window, int64_t q_pos, int64_t k_pos) {
  const kern::AttentionArgs a = sa::checked_args("attention_block_backward", q, k, v, scale, causal,
                                                 window, q_pos, k_pos);
  const Shape out_shape{a.B, a.H, a.Tq, a.Dv}, lse_shape{a.B, a.H, a.Tq};
  SKEIN_CHECK(out.defined() && lse.defined() && dout.defined() && out.shape() == out_shape &&
                  dout.shape() == out_shape && lse.shape() == lse_shape,
              "attention_block_backward: need out and dout ", shape_str(out_shape), " and lse ",
              shape_str(lse_shape), " for q ", shape_str(q.shape()), " and v ", shape_str(v.shape()),
              ", got out ", out.defined() ? shape_str(out.shape()) : "undefined", ", dout ",
              dout.defined() ? shape_str(dout.shape()) : "undefined", ", lse ",
              lse.defined() ? shape_str(lse.shape()) : "undefined");
  SKEIN_CHECK(out.dtype() == q.dtype() && lse.dtype() == q.dtype() && dout.dtype() == q.dtype(),
              "attention_block_backward: out ", dtype_name(out.dtype()), ", lse ",
              dtype_name(lse.dtype()), " and dout ", dtype_name(dout.dtype()), " must be q's ",
              dtype_name(q.dtype()));
  ops::common_device("attention_block_backward", {q, out, lse, dout});
  return sa::attention_grads(a, q.detach().contiguous(), k.detach().contiguous(),
                             v.detach().contiguous(), out.detach().contiguous(),
                             lse.detach().contiguous(), dout.detach());
}

// out, block_out: [B, H, Tq, Dv]; lse, block_lse: [B, H, Tq] (all contiguous)
void attention_merge_(const Tensor& out, const Tensor& lse, const Tensor& block_out,
                      const Tensor& block_lse) {
  const auto ok = [&](const Tensor& t, const Shape& shape) {
    return t.defined() && t.shape() == shape && t.dtype() == out.dtype() && t.is_contiguous();
  };
  const auto desc = [](const Tensor& t) {
    return t.defined() ? detail::concat(shape_str(t.shape()), " ", dtype_name(t.dtype()),
                                        t.is_contiguous() ? "" : " (strided)")
                       : std::string("undefined");
  };
  SKEIN_CHECK(out.defined() && out.dim() == 4 && ok(out, out.shape()) && ok(block_out, out.shape()) &&
                  ok(lse, Shape(out.shape().begin(), out.shape().end() - 1)) &&
                  ok(block_lse, Shape(out.shape().begin(), out.shape().end() - 1)),
              "attention_merge_: need contiguous out and block_out [B, H, Tq, Dv], lse and ",
              "block_lse [B, H, Tq], one dtype; got out ", desc(out), ", lse ", desc(lse),
              ", block_out ", desc(block_out), ", block_lse ", desc(block_lse));
  const Device dev = ops::common_device("attention_merge_", {out, lse, block_out, block_lse});
  kern::kernels(dev).attention_merge(out.dtype(), out.raw_data(), lse.raw_data(), block_out.raw_data(),
                                     block_lse.raw_data(), lse.numel(), out.size(3));
}

}  // namespace skein
