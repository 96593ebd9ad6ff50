// softmax_attention.cpp — softmax_attention (core/ops.h): causal multi-head softmax attention
// as one fused op on the inputs' device: a flash-style forward (online softmax over key blocks;
// the Tq×Tk scores are never stored, memory O(T)) that saves only the output and the per-row
// log-sum-exp, and a backward that recomputes the scores block by block from q, k and that
// log-sum-exp. Here: the shape checks, the op and its backward; the kernels are the device's
// (core/kernels/kernels.h), the blocks of a split sequence in softmax_attention_blocks.cpp.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
#include <algorithm>
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/ops/softmax_attention_impl.h"

namespace skein {
namespace softmax_attention_impl {

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
kern::AttentionArgs checked_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                 double scale, bool causal, int64_t window, int64_t q_pos,
                                 int64_t k_pos) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined(), op, ": undefined input");
  ops::common_device(op, {q, k, v});
  SKEIN_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
              ": need q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], got q ",
              shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  SKEIN_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, ": dtypes differ: q ",
              dtype_name(q.dtype()), ", k ", dtype_name(k.dtype()), ", v ", dtype_name(v.dtype()));
  const Shape &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  SKEIN_CHECK(qs[0] == ks[0] && qs[0] == vs[0] && ks[1] == vs[1] && ks[2] == vs[2] && qs[3] == ks[3],
              op, ": shapes do not match: q ", shape_str(qs), " [B, H, Tq, D], k ", shape_str(ks),
              " [B, Hkv, Tk, D], v ", shape_str(vs), " [B, Hkv, Tk, Dv]");
  SKEIN_CHECK(ks[1] >= 1 && qs[1] % ks[1] == 0, op, ": query heads H = ", qs[1], " (q ",
              shape_str(qs), ") must be a multiple of kv heads Hkv = ", ks[1], " (k ", shape_str(ks),
              ")");
  SKEIN_CHECK(qs[3] >= 1 && vs[3] >= 1, op, ": head dims must be >= 1, got q ", shape_str(qs),
              ", v ", shape_str(vs));
  SKEIN_CHECK(window >= 0, op, ": window must be >= 0 (0: none), got ", window);
  kern::AttentionArgs a;
  a.dtype = q.dtype();
  a.B = qs[0], a.H = qs[1], a.Hkv = ks[1], a.Tq = qs[2], a.Tk = ks[2], a.D = qs[3], a.Dv = vs[3];
  a.scale = scale;
  a.causal = causal;
  a.off = q_pos - k_pos;
  a.window = window >= a.off + a.Tq ? 0 : window;  // p - j < window always holds: no window
  return a;
}

AttentionBlockResult attention_forward(const kern::AttentionArgs& a, const Tensor& q,
                                       const Tensor& k, const Tensor& v) {
  const Device dev = q.device();
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  AttentionBlockResult r{Tensor::empty({a.B, a.H, a.Tq, a.Dv}, a.dtype, dev),
                         Tensor::empty({a.B, a.H, a.Tq}, a.dtype, dev)};
  kern::kernels(dev).attention_fwd(a, qc.raw_data(), kc.raw_data(), vc.raw_data(), r.out.raw_data(),
                                   r.lse.raw_data());
  return r;
}

std::vector<Tensor> attention_grads(const kern::AttentionArgs& a, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& out, const Tensor& lse,
                                    const Tensor& g_out) {
  const Device dev = q.device();
  const kern::KernelTable& kt = kern::kernels(dev);
  Tensor dout = g_out.contiguous();
  Tensor dq = Tensor::empty({a.B, a.H, a.Tq, a.D}, a.dtype, dev);
  Tensor dk = Tensor::empty({a.B, a.H, a.Tk, a.D}, a.dtype, dev);
  Tensor dv = Tensor::empty({a.B, a.H, a.Tk, a.Dv}, a.dtype, dev);
  const size_t ws_bytes = kt.attention_bwd_workspace(a);
  Tensor ws = Tensor::empty({static_cast<int64_t>((ws_bytes + 7) / 8)}, DType::f64, dev);
  kt.attention_bwd(a, q.raw_data(), k.raw_data(), v.raw_data(), out.raw_data(), lse.raw_data(),
                   dout.raw_data(), dq.raw_data(), dk.raw_data(), dv.raw_data(), ws.raw_data());
  if (a.Hkv != a.H) {  // a kv head's gradient sums over its query heads
    const int64_t group = a.H / a.Hkv;
    dk = sum(dk.view({a.B, a.Hkv, group, a.Tk, a.D}), {2});
    dv = sum(dv.view({a.B, a.Hkv, group, a.Tk, a.Dv}), {2});
  }
  return {dq, dk, dv};
}

}  // namespace softmax_attention_impl

namespace sa = softmax_attention_impl;

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv]
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                         bool causal, int64_t window, int64_t q_pos_offset) {
  SKEIN_CHECK(q_pos_offset >= -1,
              "softmax_attention: q_pos_offset must be >= 0 or -1 (Tk - Tq), got ", q_pos_offset);
  const int64_t q_pos =
      q_pos_offset == -1 && q.defined() && k.defined() && q.dim() == 4 && k.dim() == 4
          ? k.size(2) - q.size(2)
          : q_pos_offset;
  const kern::AttentionArgs a =
      sa::checked_args("softmax_attention", q, k, v, scale, causal, window, q_pos, 0);
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  AttentionBlockResult r = sa::attention_forward(a, qc, kc, vc);
  if (!any_requires_grad({q, k, v})) return r.out;
  Tensor saved_out = r.out.detach();  // not `out` itself: its node must not own it
  Tensor lse = r.lse;
  return record("softmax_attention", r.out, {q, k, v},
                [a, qc, kc, vc, saved_out, lse](const Tensor& g_out) {
                  return sa::attention_grads(a, qc, kc, vc, saved_out, lse, g_out);
                });
}

}  // namespace skein
