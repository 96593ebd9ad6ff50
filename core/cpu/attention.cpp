// attention.cpp — the CPU softmax-attention kernels (core/kernels/kernels.h): the flash-style
// forward (online softmax over key blocks of kBlockK, query blocks of kBlockQ as tasks; the
// Tq x Tk scores are never stored), the recompute backward from the saved log-sum-exp, and the
// merge of two blocks' (out, lse) for Ring Attention. Scores and P·V run through the CPU GEMM on
// [64 x 64] tiles; the visibility rule is the one kernels.h states.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/gemm.h"
#include "core/tensor.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {

inline constexpr int64_t kBlockQ = 64;  // query rows per block (one forward task each)
inline constexpr int64_t kBlockK = 64;  // keys per block

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


Geometry geometry(const AttentionArgs& a) {
  return Geometry{a.B, a.H, a.Hkv, a.Tq, a.Tk, a.D, a.Dv, a.scale, Visibility{a.causal, a.window, a.off}};
}

// Key chunks per head of the backward: depends on the shapes only (never the thread count).
int64_t backward_chunks(const Geometry& g) {
  const int64_t nkb = (g.Tk + kBlockK - 1) / kBlockK;
  const int64_t heads = std::max<int64_t>(1, g.B * g.H);
  return std::clamp<int64_t>((kBackwardTasks + heads - 1) / heads, 1, std::max<int64_t>(1, nkb));
}

}  // namespace

void attention_fwd(const AttentionArgs& a, const void* q, const void* k, const void* v, void* out,
                   void* lse) {
  const Geometry g = geometry(a);
  SKEIN_DISPATCH_FLOAT(a.dtype, "softmax_attention", [&] {
    attention_forward<scalar_t>(g, static_cast<const scalar_t*>(q), static_cast<const scalar_t*>(k),
                                static_cast<const scalar_t*>(v), static_cast<scalar_t*>(out),
                                static_cast<scalar_t*>(lse));
  });
}

// drow [B, H, Tq], then the dq partials [C, B, H, Tq, D] when C > 1.
size_t attention_bwd_workspace(const AttentionArgs& a) {
  const Geometry g = geometry(a);
  const int64_t C = backward_chunks(g);
  const size_t partials = C > 1 ? static_cast<size_t>(C * g.B * g.H * g.Tq * g.D) : 0;
  return (static_cast<size_t>(g.B * g.H * g.Tq) + partials) * dtype_size(a.dtype);
}

void attention_bwd(const AttentionArgs& a, const void* q, const void* k, const void* v,
                   const void* out, const void* lse, const void* dout, void* dq, void* dk, void* dv,
                   void* workspace) {
  const Geometry g = geometry(a);
  const int64_t C = backward_chunks(g);
  SKEIN_DISPATCH_FLOAT(a.dtype, "softmax_attention backward", [&] {
    using T = scalar_t;
    T* drow = static_cast<T*>(workspace);
    const int64_t nq = g.B * g.H * g.Tq;
    T* dq_parts = C > 1 ? drow + nq : static_cast<T*>(dq);
    std::fill(dq_parts, dq_parts + C * nq * g.D, T(0));
    std::fill(static_cast<T*>(dk), static_cast<T*>(dk) + g.B * g.H * g.Tk * g.D, T(0));
    std::fill(static_cast<T*>(dv), static_cast<T*>(dv) + g.B * g.H * g.Tk * g.Dv, T(0));
    row_dot(static_cast<const T*>(dout), static_cast<const T*>(out), drow, nq, g.Dv);
    attention_backward<T>(g, C, static_cast<const T*>(q), static_cast<const T*>(k),
                          static_cast<const T*>(v), static_cast<const T*>(lse),
                          static_cast<const T*>(dout), drow, dq_parts, static_cast<T*>(dk),
                          static_cast<T*>(dv));
    if (C > 1) {  // dq = Σ_c partial c, in c order
      T* dqo = static_cast<T*>(dq);
      const int64_t n = nq * g.D;
      parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          T s = dq_parts[i];
          for (int64_t c = 1; c < C; ++c) s += dq_parts[c * n + i];
          dqo[i] = s;
        }
      });
    }
  });
}

void attention_merge(DType dt, void* out, void* lse, const void* bout, const void* blse, int64_t rows,
                     int64_t dv) {
  SKEIN_DISPATCH_FLOAT(dt, "attention_merge_", [&] {
    merge_rows(static_cast<scalar_t*>(out), static_cast<scalar_t*>(lse),
               static_cast<const scalar_t*>(bout), static_cast<const scalar_t*>(blse), rows, dv);
  });
}

}  // namespace skein::cpu
