// softmax_attention.cpp — softmax_attention (core/ops.h): causal multi-head softmax attention
// as one fused op: a flash-style forward (online softmax over key blocks; the Tq×Tk scores are
// never stored, memory O(T)) that saves only the output and the per-row log-sum-exp, and a
// backward that recomputes the scores block by block from q, k and that log-sum-exp. Here: the
// recompute backward, the shape checks and the op; the shared kernels and the visibility rule
// are in softmax_attention_impl.h, the blocks of a split sequence (sequence parallelism) in
// softmax_attention_blocks.cpp.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
#include <algorithm>
#include <cmath>
#include <limits>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/ops/softmax_attention_impl.h"
#include "core/threadpool.h"

namespace skein {
namespace softmax_attention_impl {
namespace {

constexpr int64_t kBackwardTasks = 16;  // backward splits keys until B*H*chunks reaches this

// ---- the recompute backward -------------------------------------------------------------

// With P = exp(S - lse), Dr_i = Σ_c dO_ic O_ic:
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP - Dr),  dQ = scale·dS K,  dK = scale·dSᵀ Q.
// dK/dV of a key block are owned by one task: tasks are (b, h, key chunk), chunk c holding
// key blocks c, c + C, ... (interleaved, so causal work balances). Each chunk adds into its
// own dQ partial dq: [C, B, H, Tq, D]; dk: [B, H, Tk, D] and dv: [B, H, Tk, Dv] are per query
// head (the caller sums a kv head's group). C depends on the shapes only, so the result
// does not depend on the thread count.
template <typename T>
void attention_backward(const Geometry& g, int64_t C, const T* q, const T* k, const T* v,
                        const T* lse, const T* dout, const T* drow, T* dq, T* dk, T* dv) {
  const int64_t nkb = (g.Tk + kBlockK - 1) / kBlockK;
  const T scale = static_cast<T>(g.scale);
  cpu::SingleThreadedBlas single;
  parallel_for(0, g.B * g.H * C, 1, [&](int64_t lo, int64_t hi) {
    Tensor scratch = Tensor::empty({2 * kBlockQ * kBlockK}, dtype_of<T>());
    T *s = scratch.data<T>(), *dp = s + kBlockQ * kBlockK;  // [kBlockQ, kBlockK] each
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t bh = t / C, c = t % C, b = bh / g.H, h = bh % g.H, hk = h / g.group();
      const T* kh = k + (b * g.Hkv + hk) * g.Tk * g.D;
      const T* vh = v + (b * g.Hkv + hk) * g.Tk * g.Dv;
      const T* qh = q + bh * g.Tq * g.D;
      const T* doh = dout + bh * g.Tq * g.Dv;
      T* dqh = dq + (c * g.B * g.H + bh) * g.Tq * g.D;
      for (int64_t jb = c; jb < nkb; jb += C) {
        const int64_t j0 = jb * kBlockK, nk = std::min(kBlockK, g.Tk - j0);
        const T *kb = kh + j0 * g.D, *vb = vh + j0 * g.Dv;
        T* dkb = dk + (bh * g.Tk + j0) * g.D;
        T* dvb = dv + (bh * g.Tk + j0) * g.Dv;
        const auto [qlo, qhi] = g.vis.query_range(j0, j0 + nk, g.Tq);
        for (int64_t i0 = qlo; i0 < qhi; i0 += kBlockQ) {
          const int64_t nq = std::min(kBlockQ, qhi - i0);
          const T *qb = qh + i0 * g.D, *dob = doh + i0 * g.Dv;
          cpu::gemm<T>(false, true, nq, nk, g.D, scale, qb, g.D, kb, g.D, T(0), s, kBlockK);
          g.vis.apply(s, nq, nk, kBlockK, i0, j0);
          for (int64_t r = 0; r < nq; ++r) {  // P = exp(S - lse)
            // (every row of [qlo, qhi) sees a key of this block, so L is finite; the guard
            // keeps a row that sees none at 0 should a caller ever pass such a range)
            const T L = lse[bh * g.Tq + i0 + r];
            T* sr = s + r * kBlockK;
            if (L == -std::numeric_limits<T>::infinity()) std::fill(sr, sr + nk, T(0));
            else exp_shift_row(sr, nk, L);
          }
          cpu::gemm<T>(true, false, nk, g.Dv, nq, T(1), s, kBlockK, dob, g.Dv, T(1), dvb,
                       g.Dv);                                             // dV += Pᵀ dO
          cpu::gemm<T>(false, true, nq, nk, g.Dv, T(1), dob, g.Dv, vb, g.Dv, T(0), dp,
                       kBlockK);                                          // dP = dO Vᵀ
          for (int64_t r = 0; r < nq; ++r) {  // dS = P ⊙ (dP - Dr), into s
            const T dr = drow[bh * g.Tq + i0 + r];
            T *sr = s + r * kBlockK, *dpr = dp + r * kBlockK;
            for (int64_t cc = 0; cc < nk; ++cc) sr[cc] *= dpr[cc] - dr;
          }
          cpu::gemm<T>(true, false, nk, g.D, nq, scale, s, kBlockK, qb, g.D, T(1), dkb,
                       g.D);                                              // dK += scale·dSᵀ Q
          cpu::gemm<T>(false, false, nq, g.D, nk, scale, s, kBlockK, kb, g.D, T(1),
                       dqh + i0 * g.D, g.D);                              // dQ += scale·dS K
        }
      }
    }
  });
}

// drow: [B, H, Tq] = Σ_c dout ⊙ out over the last dim (both [B, H, Tq, Dv], contiguous).
template <typename T>
void row_dot(const T* dout, const T* out, T* drow, int64_t rows, int64_t dv) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dv));
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < dv; ++c) acc += static_cast<double>(dout[r * dv + c]) * out[r * dv + c];
      drow[r] = static_cast<T>(acc);
    }
  });
}

}  // namespace

// Gradients {dq, dk, dv} from the saved inputs (contiguous), output and log-sum-exp.
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], out and g_out: [B, H, Tq, Dv],
// lse: [B, H, Tq].
std::vector<Tensor> attention_grads(const Geometry& g, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& out, const Tensor& lse,
                                    const Tensor& g_out) {
  Tensor dout = g_out.contiguous();
  const int64_t nkb = (g.Tk + kBlockK - 1) / kBlockK;
  const int64_t heads = std::max<int64_t>(1, g.B * g.H);
  const int64_t C = std::clamp<int64_t>((kBackwardTasks + heads - 1) / heads, 1,
                                        std::max<int64_t>(1, nkb));  // key chunks per head
  const DType dt = q.dtype();
  Tensor drow = Tensor::empty({g.B, g.H, g.Tq}, dt);
  Tensor dq = zeros(C == 1 ? q.shape() : Shape{C, g.B, g.H, g.Tq, g.D}, dt);
  Tensor dk = zeros({g.B, g.H, g.Tk, g.D}, dt), dv = zeros({g.B, g.H, g.Tk, g.Dv}, dt);
  SKEIN_DISPATCH_FLOAT(dt, "softmax_attention backward", [&] {
    row_dot(dout.data<scalar_t>(), out.data<scalar_t>(), drow.data<scalar_t>(), g.B * g.H * g.Tq,
            g.Dv);
    attention_backward<scalar_t>(g, C, q.data<scalar_t>(), k.data<scalar_t>(), v.data<scalar_t>(),
                                 lse.data<scalar_t>(), dout.data<scalar_t>(), drow.data<scalar_t>(),
                                 dq.data<scalar_t>(), dk.data<scalar_t>(), dv.data<scalar_t>());
  });
  if (C > 1) dq = sum(dq, {0});
  if (g.Hkv != g.H) {  // a kv head's gradient sums over its query heads
    dk = sum(dk.view({g.B, g.Hkv, g.group(), g.Tk, g.D}), {2});
    dv = sum(dv.view({g.B, g.Hkv, g.group(), g.Tk, g.Dv}), {2});
  }
  return {dq, dk, dv};
}

// Checks q, k, v for `op` and returns their geometry (visibility: the defaults).
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
Geometry checked_geometry(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                          double scale, int64_t window) {
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
  return Geometry{qs[0], qs[1], ks[1], qs[2], ks[2], qs[3], vs[3], scale, {}};
}

// Visibility of queries at positions q_pos + i against keys at k_pos + j. Only the position
// difference matters, so the kernels see key 0 at position 0 and query 0 at q_pos - k_pos.
Visibility block_visibility(bool causal, int64_t window, int64_t q_pos, int64_t k_pos, int64_t Tq) {
  Visibility vis{causal, window, q_pos - k_pos};
  if (vis.window >= vis.off + Tq) vis.window = 0;  // p - j < window always holds
  return vis;
}

}  // namespace softmax_attention_impl

namespace sa = softmax_attention_impl;

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv]
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                         bool causal, int64_t window, int64_t q_pos_offset) {
  sa::Geometry g = sa::checked_geometry("softmax_attention", q, k, v, scale, window);
  if (q.device() != Device::cpu)  // host-staged until the CUDA kernel lands (op_util.h)
    return softmax_attention(ops::on_host(q), ops::on_host(k), ops::on_host(v), scale, causal, window,
                             q_pos_offset).to(q.device());
  SKEIN_CHECK(q_pos_offset >= -1,
              "softmax_attention: q_pos_offset must be >= 0 or -1 (Tk - Tq), got ", q_pos_offset);
  const int64_t q_pos = q_pos_offset == -1 ? g.Tk - g.Tq : q_pos_offset;
  g.vis = sa::block_visibility(causal, window, q_pos, 0, g.Tq);

  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  Tensor out = Tensor::empty({g.B, g.H, g.Tq, g.Dv}, q.dtype());
  Tensor lse = Tensor::empty({g.B, g.H, g.Tq}, q.dtype());
  SKEIN_DISPATCH_FLOAT(q.dtype(), "softmax_attention", [&] {
    sa::attention_forward<scalar_t>(g, qc.data<scalar_t>(), kc.data<scalar_t>(),
                                    vc.data<scalar_t>(), out.data<scalar_t>(),
                                    lse.data<scalar_t>());
  });
  if (!any_requires_grad({q, k, v})) return out;
  Tensor saved_out = out.detach();  // not `out` itself: its node must not own it
  return record("softmax_attention", out, {q, k, v},
                [g, qc, kc, vc, saved_out, lse](const Tensor& g_out) {
                  return sa::attention_grads(g, qc, kc, vc, saved_out, lse, g_out);
                });
}

}  // namespace skein
