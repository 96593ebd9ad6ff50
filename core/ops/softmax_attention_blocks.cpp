// softmax_attention_blocks.cpp — the blocks of a split sequence for sequence parallelism
// (core/ops.h, used by parallel/softmax_sp.h for Ring Attention): the kernels of
// softmax_attention without autograd — a block forward of queries and keys at any global
// positions returning {out, lse}, the merge of two such results, and a block backward from
// the merged out and lse.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023; Liu et al., "Ring Attention with Blockwise Transformers for
//            Near-Infinite Context", 2023.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/ops/softmax_attention_impl.h"
#include "core/threadpool.h"

namespace skein {
namespace {
namespace sa = softmax_attention_impl;

// (out, lse) <- the merge of (out, lse) and (bo, bl), row by row (see attention_merge_).
template <typename T>
void merge_rows(T* out, T* lse, const T* bo, const T* bl, int64_t rows, int64_t dv) {
  const int64_t grain = std::max<int64_t>(1, 8192 / dv);
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T L = lse[r], Lb = bl[r];
      T *o = out + r * dv;
      const T* ob = bo + r * dv;
      if (Lb == -std::numeric_limits<T>::infinity()) continue;  // the block adds nothing
      if (L == -std::numeric_limits<T>::infinity()) {           // nothing seen before
        std::copy(ob, ob + dv, o);
        lse[r] = Lb;
        continue;
      }
      const T hi_l = std::max(L, Lb), lo_l = std::min(L, Lb);
      const T merged = hi_l + std::log1p(std::exp(lo_l - hi_l));
      const T a = std::exp(L - merged), b = std::exp(Lb - merged);
      for (int64_t c = 0; c < dv; ++c) o[c] = a * o[c] + b * ob[c];
      lse[r] = merged;
    }
  });
}

}  // namespace

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> out [B, H, Tq, Dv], lse [B, H, Tq]
AttentionBlockResult attention_block_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             double scale, bool causal, int64_t window,
                                             int64_t q_pos, int64_t k_pos) {
  sa::Geometry g = sa::checked_geometry("attention_block_forward", q, k, v, scale, window);
  if (q.device() != Device::cpu) {  // host-staged until the CUDA kernel lands (op_util.h)
    AttentionBlockResult r = attention_block_forward(ops::on_host(q), ops::on_host(k), ops::on_host(v),
                                                     scale, causal, window, q_pos, k_pos);
    return {r.out.to(q.device()), r.lse.to(q.device())};
  }
  g.vis = sa::block_visibility(causal, window, q_pos, k_pos, g.Tq);
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  AttentionBlockResult res{Tensor::empty({g.B, g.H, g.Tq, g.Dv}, q.dtype()),
                           Tensor::empty({g.B, g.H, g.Tq}, q.dtype())};
  SKEIN_DISPATCH_FLOAT(q.dtype(), "attention_block_forward", [&] {
    sa::attention_forward<scalar_t>(g, qc.data<scalar_t>(), kc.data<scalar_t>(),
                                    vc.data<scalar_t>(), res.out.data<scalar_t>(),
                                    res.lse.data<scalar_t>());
  });
  return res;
}

// q, k, v as above; out, dout: [B, H, Tq, Dv], lse: [B, H, Tq] (merged over every key block)
// -> {dq [B, H, Tq, D], dk [B, Hkv, Tk, D], dv [B, Hkv, Tk, Dv]}
std::vector<Tensor> attention_block_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse,
                                             const Tensor& dout, double scale, bool causal,
                                             int64_t window, int64_t q_pos, int64_t k_pos) {
  sa::Geometry g = sa::checked_geometry("attention_block_backward", q, k, v, scale, window);
  if (q.device() != Device::cpu) {  // host-staged until the CUDA kernel lands (op_util.h)
    ops::common_device("attention_block_backward", {q, out, lse, dout});
    std::vector<Tensor> r = attention_block_backward(ops::on_host(q), ops::on_host(k), ops::on_host(v),
                                                     ops::on_host(out), ops::on_host(lse), ops::on_host(dout),
                                                     scale, causal, window, q_pos, k_pos);
    for (Tensor& t : r) t = t.to(q.device());
    return r;
  }
  g.vis = sa::block_visibility(causal, window, q_pos, k_pos, g.Tq);
  const Shape out_shape{g.B, g.H, g.Tq, g.Dv}, lse_shape{g.B, g.H, g.Tq};
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
  return sa::attention_grads(g, q.detach().contiguous(), k.detach().contiguous(),
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
  if (ops::common_device("attention_merge_", {out, lse, block_out, block_lse}) != Device::cpu) {
    Tensor ho = out.to(Device::cpu), hl = lse.to(Device::cpu);  // host-staged (op_util.h)
    attention_merge_(ho, hl, block_out.to(Device::cpu), block_lse.to(Device::cpu));
    Tensor o = out, l = lse;
    copy_(o, ho);
    copy_(l, hl);
    return;
  }
  SKEIN_DISPATCH_FLOAT(out.dtype(), "attention_merge_", [&] {
    merge_rows(out.data<scalar_t>(), lse.data<scalar_t>(), block_out.data<scalar_t>(),
               block_lse.data<scalar_t>(), lse.numel(), out.size(3));
  });
}

}  // namespace skein
