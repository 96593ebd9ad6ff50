// softmax_attention.cpp — causal multi-head softmax attention as one fused op: a flash-style
// forward (online softmax over key blocks; the Tq×Tk scores are never stored, memory O(T))
// that saves only the output and the per-row log-sum-exp, and a backward that recomputes
// the scores block by block from q, k and that log-sum-exp.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
//
// Visibility: query i sits at position p = off + i, key j at position j; key j is seen when
//   (!causal || j <= p) && (window <= 0 || p - j < window).
// The two conditions are independent, as the header states them, so causal = false with
// window > 0 hides keys more than window - 1 positions in the past and shows every later key.
// A query row that sees no key at all outputs 0, has log-sum-exp -inf and gets 0 gradient.
//
// The same kernels, without autograd, serve sequence parallelism (parallel/softmax_sp.h): a
// block forward of queries and keys at any global positions returning {out, lse}, the merge
// of two such results, and a block backward from the merged out and lse.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

constexpr int64_t kBlockQ = 64;         // query rows per block (one forward task each)
constexpr int64_t kBlockK = 64;         // keys per block
constexpr int64_t kBackwardTasks = 16;  // backward splits keys until B*H*chunks reaches this

// Which keys each query sees (see the file comment).
struct Visibility {
  bool causal = true;
  int64_t window = 0;  // 0: none
  int64_t off = 0;     // position of query 0

  // Keys [lo, hi) in [0, Tk) that any of queries [i0, i1) may see (empty when lo >= hi).
  std::pair<int64_t, int64_t> key_range(int64_t i0, int64_t i1, int64_t Tk) const {
    const int64_t lo = window > 0 ? std::clamp<int64_t>(off + i0 - window + 1, 0, Tk) : 0;
    const int64_t hi = causal ? std::clamp<int64_t>(off + i1, 0, Tk) : Tk;
    return {lo, std::max(lo, hi)};
  }
  // Queries [lo, hi) in [0, Tq) that may see any of keys [j0, j1).
  std::pair<int64_t, int64_t> query_range(int64_t j0, int64_t j1, int64_t Tq) const {
    const int64_t lo = causal ? std::clamp<int64_t>(j0 - off, 0, Tq) : 0;
    const int64_t hi = window > 0 ? std::clamp<int64_t>(j1 - 1 + window - off, 0, Tq) : Tq;
    return {lo, std::max(lo, hi)};
  }
  // True when every query of [i0, i1) sees every key of [j0, j1).
  bool all_visible(int64_t i0, int64_t i1, int64_t j0, int64_t j1) const {
    return (!causal || j1 - 1 <= off + i0) && (window <= 0 || off + i1 - 1 - j0 < window);
  }
  // Sets s[r, c] (row stride lds) to -inf where query i0 + r does not see key j0 + c.
  template <typename T>
  void apply(T* s, int64_t rows, int64_t cols, int64_t lds, int64_t i0, int64_t j0) const {
    if (all_visible(i0, i0 + rows, j0, j0 + cols)) return;
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t p = off + i0 + r;  // sees keys in [p - window + 1, p] ∩ [j0, j0 + cols)
      const int64_t c_lo = window > 0 ? std::clamp<int64_t>(p - window + 1 - j0, 0, cols) : 0;
      const int64_t c_hi = causal ? std::clamp<int64_t>(p + 1 - j0, 0, cols) : cols;
      T* sr = s + r * lds;
      for (int64_t c = 0; c < c_lo; ++c) sr[c] = ninf;
      for (int64_t c = std::max(c_hi, c_lo); c < cols; ++c) sr[c] = ninf;
    }
  }
};

struct Geometry {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  double scale;
  Visibility vis;
  int64_t group() const { return H / Hkv; }
};

// ---- row kernels (written so that the compiler vectorises them) -------------------------

// max(init, x[0..n)) in 8 independent lanes (no serial dependency chain).
template <typename T>
T row_max(const T* x, int64_t n, T init) {
  T lane[8] = {init, init, init, init, init, init, init, init};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] = std::max(lane[j], x[i + j]);
  for (; i < n; ++i) lane[0] = std::max(lane[0], x[i]);
  for (int j = 1; j < 8; ++j) lane[0] = std::max(lane[0], lane[j]);
  return lane[0];
}

// Σ x[0..n) in 8 lanes (vectorises; the order is fixed, so the result is deterministic).
template <typename T>
T row_sum(const T* x, int64_t n) {
  T lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += x[i + j];
  for (; i < n; ++i) lane[0] += x[i];
  T sum = 0;
  for (int j = 0; j < 8; ++j) sum += lane[j];
  return sum;
}

// x[i] = exp(x[i] - shift) for i < n; exp(-inf) = 0.
inline void exp_shift_row(double* x, int64_t n, double shift) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}
// The f32 version computes expf inline so that the loop vectorises (libm's is a call per
// element): x = n·ln2 + r by Cody–Waite reduction (n rounded by the 1.5·2^23 trick), e^r by
// the Cephes minimax polynomial (about 1 ulp), 2^n built in the exponent bits. Arguments
// below -87 (e^-87 ≈ FLT_MIN; also -inf) give 0.
inline void exp_shift_row(float* x, int64_t n, float shift) {
  constexpr float kRound = 12582912.0f;  // 1.5·2^23
  for (int64_t i = 0; i < n; ++i) {
    const float a = x[i] - shift;
    const float v = std::min(std::max(a, -87.0f), 88.0f);
    const float t = v * 1.44269504088896341f + kRound;
    const float fn = t - kRound;
    const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
    const float r = v - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    x[i] = a < -87.0f ? 0.0f : p * std::bit_cast<float>((ni + 127) << 23);
  }
}

// ---- the online softmax (forward) ------------------------------------------------------

// One online-softmax step for `rows` query rows against one key block — the merge that a
// ring / blockwise variant reuses. s: [rows, cols] (row stride lds) holds scaled scores with
// -inf where masked; on return it holds p = exp(s - m_new). The running row max m: [rows],
// row sum l: [rows] and unnormalised output acc: [rows, dv] are rescaled from the old max to
// m_new; the caller then adds p · V_blk to acc. A row that has seen no key keeps m = -inf,
// l = 0, acc = 0 (its p row is all 0), so no NaN arises from (-inf) - (-inf).
template <typename T>
void online_softmax_step(T* s, int64_t rows, int64_t cols, int64_t lds, T* m, T* l, T* acc,
                         int64_t dv) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    T* sr = s + r * lds;
    const T m_new = row_max(sr, cols, m[r]);
    if (m_new == ninf) {  // nothing seen yet, nor in this block
      std::fill(sr, sr + cols, T(0));
      continue;
    }
    exp_shift_row(sr, cols, m_new);
    const T sum = row_sum(sr, cols);
    if (m_new != m[r]) {  // rescale the old state (alpha = 0 when the old max was -inf)
      const T alpha = std::exp(m[r] - m_new);
      l[r] *= alpha;
      T* ar = acc + r * dv;
      for (int64_t c = 0; c < dv; ++c) ar[c] *= alpha;
      m[r] = m_new;
    }
    l[r] += sum;
  }
}

// acc[r] /= l[r] and lse[r] = m[r] + log l[r]; a row that saw no key gets 0 and -inf.
template <typename T>
void online_softmax_finish(const T* m, const T* l, T* acc, int64_t rows, int64_t dv, T* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    T* ar = acc + r * dv;
    if (l[r] == T(0)) {
      std::fill(ar, ar + dv, T(0));
      lse[r] = -std::numeric_limits<T>::infinity();
      continue;
    }
    const T inv = T(1) / l[r];
    for (int64_t c = 0; c < dv; ++c) ar[c] *= inv;
    lse[r] = m[r] + std::log(l[r]);
  }
}

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] (contiguous) ->
// out: [B, H, Tq, Dv], lse: [B, H, Tq]. One task per (b, h, query block).
template <typename T>
void attention_forward(const Geometry& g, const T* q, const T* k, const T* v, T* out, T* lse) {
  const int64_t nqb = (g.Tq + kBlockQ - 1) / kBlockQ;
  const T scale = static_cast<T>(g.scale);
  cpu::SingleThreadedBlas single;
  parallel_for(0, g.B * g.H * nqb, 1, [&](int64_t lo, int64_t hi) {
    Tensor scratch = Tensor::empty({kBlockQ * (kBlockK + 2)}, dtype_of<T>());
    T* s = scratch.data<T>();  // [kBlockQ, kBlockK] scores, then m and l
    T *m = s + kBlockQ * kBlockK, *l = m + kBlockQ;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t bh = t / nqb, b = bh / g.H, h = bh % g.H, hk = h / g.group();
      const int64_t i0 = (nqb - 1 - t % nqb) * kBlockQ;  // longest rows first
      const int64_t nq = std::min(kBlockQ, g.Tq - i0);
      const T* qb = q + (bh * g.Tq + i0) * g.D;
      const T* kh = k + (b * g.Hkv + hk) * g.Tk * g.D;
      const T* vh = v + (b * g.Hkv + hk) * g.Tk * g.Dv;
      T* acc = out + (bh * g.Tq + i0) * g.Dv;
      std::fill(acc, acc + nq * g.Dv, T(0));
      std::fill(m, m + nq, -std::numeric_limits<T>::infinity());
      std::fill(l, l + nq, T(0));
      const auto [klo, khi] = g.vis.key_range(i0, i0 + nq, g.Tk);
      for (int64_t j0 = klo; j0 < khi; j0 += kBlockK) {
        const int64_t nk = std::min(kBlockK, khi - j0);
        cpu::gemm<T>(false, true, nq, nk, g.D, scale, qb, g.D, kh + j0 * g.D, g.D, T(0), s,
                     kBlockK);                                            // S = scale·Q Kᵀ
        g.vis.apply(s, nq, nk, kBlockK, i0, j0);
        online_softmax_step(s, nq, nk, kBlockK, m, l, acc, g.Dv);
        cpu::gemm<T>(false, false, nq, g.Dv, nk, T(1), s, kBlockK, vh + j0 * g.Dv, g.Dv, T(1),
                     acc, g.Dv);                                          // acc += P V
      }
      online_softmax_finish(m, l, acc, nq, g.Dv, lse + bh * g.Tq + i0);
    }
  });
}

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
  SKEIN_CHECK(q.device() == Device::cpu && k.device() == Device::cpu && v.device() == Device::cpu,
              op, ": cpu only so far");
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

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv]
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                         bool causal, int64_t window, int64_t q_pos_offset) {
  Geometry g = checked_geometry("softmax_attention", q, k, v, scale, window);
  SKEIN_CHECK(q_pos_offset >= -1,
              "softmax_attention: q_pos_offset must be >= 0 or -1 (Tk - Tq), got ", q_pos_offset);
  g.vis = block_visibility(causal, window, q_pos_offset == -1 ? g.Tk - g.Tq : q_pos_offset, 0, g.Tq);

  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  Tensor out = Tensor::empty({g.B, g.H, g.Tq, g.Dv}, q.dtype());
  Tensor lse = Tensor::empty({g.B, g.H, g.Tq}, q.dtype());
  SKEIN_DISPATCH_FLOAT(q.dtype(), "softmax_attention", [&] {
    attention_forward<scalar_t>(g, qc.data<scalar_t>(), kc.data<scalar_t>(), vc.data<scalar_t>(),
                                out.data<scalar_t>(), lse.data<scalar_t>());
  });
  if (!any_requires_grad({q, k, v})) return out;
  Tensor saved_out = out.detach();  // not `out` itself: its node must not own it
  return record("softmax_attention", out, {q, k, v},
                [g, qc, kc, vc, saved_out, lse](const Tensor& g_out) {
                  return attention_grads(g, qc, kc, vc, saved_out, lse, g_out);
                });
}

// ---- blocks of a split sequence (sequence parallelism) -----------------------------------

// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> out [B, H, Tq, Dv], lse [B, H, Tq]
AttentionBlockResult attention_block_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             double scale, bool causal, int64_t window,
                                             int64_t q_pos, int64_t k_pos) {
  Geometry g = checked_geometry("attention_block_forward", q, k, v, scale, window);
  g.vis = block_visibility(causal, window, q_pos, k_pos, g.Tq);
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  AttentionBlockResult res{Tensor::empty({g.B, g.H, g.Tq, g.Dv}, q.dtype()),
                           Tensor::empty({g.B, g.H, g.Tq}, q.dtype())};
  SKEIN_DISPATCH_FLOAT(q.dtype(), "attention_block_forward", [&] {
    attention_forward<scalar_t>(g, qc.data<scalar_t>(), kc.data<scalar_t>(), vc.data<scalar_t>(),
                                res.out.data<scalar_t>(), res.lse.data<scalar_t>());
  });
  return res;
}

// q, k, v as above; out, dout: [B, H, Tq, Dv], lse: [B, H, Tq] (merged over every key block)
// -> {dq [B, H, Tq, D], dk [B, Hkv, Tk, D], dv [B, Hkv, Tk, Dv]}
std::vector<Tensor> attention_block_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse,
                                             const Tensor& dout, double scale, bool causal,
                                             int64_t window, int64_t q_pos, int64_t k_pos) {
  Geometry g = checked_geometry("attention_block_backward", q, k, v, scale, window);
  g.vis = block_visibility(causal, window, q_pos, k_pos, g.Tq);
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
  return attention_grads(g, q.detach().contiguous(), k.detach().contiguous(),
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
  SKEIN_DISPATCH_FLOAT(out.dtype(), "attention_merge_", [&] {
    merge_rows(out.data<scalar_t>(), lse.data<scalar_t>(), block_out.data<scalar_t>(),
               block_lse.data<scalar_t>(), lse.numel(), out.size(3));
  });
}

}  // namespace skein
