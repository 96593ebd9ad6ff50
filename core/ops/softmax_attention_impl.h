// softmax_attention_impl.h — private to core/ops/softmax_attention*.cpp: the flash-style
// kernels that the fused op softmax_attention (softmax_attention.cpp) and the blocks of a
// split sequence for Ring Attention (softmax_attention_blocks.cpp) share — the visibility
// mask, the online-softmax forward — and the shape checks and recompute backward, defined
// in softmax_attention.cpp.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
//
// Visibility: query i sits at position p = off + i, key j at position j; key j is seen when
//   (!causal || j <= p) && (window <= 0 || p - j < window).
// The two conditions are independent, as core/ops.h states them, so causal = false with
// window > 0 hides keys more than window - 1 positions in the past and shows every later key.
// A query row that sees no key at all outputs 0, has log-sum-exp -inf and gets 0 gradient.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein::softmax_attention_impl {

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

// Checks q, k, v for `op` and returns their geometry (visibility: the defaults).
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
Geometry checked_geometry(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                          double scale, int64_t window);

// Visibility of queries at positions q_pos + i against keys at k_pos + j. Only the position
// difference matters, so the kernels see key 0 at position 0 and query 0 at q_pos - k_pos.
Visibility block_visibility(bool causal, int64_t window, int64_t q_pos, int64_t k_pos, int64_t Tq);

// Gradients {dq, dk, dv} from the saved inputs (contiguous), output and log-sum-exp.
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], out and g_out: [B, H, Tq, Dv],
// lse: [B, H, Tq].
std::vector<Tensor> attention_grads(const Geometry& g, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& out, const Tensor& lse,
                                    const Tensor& g_out);

}  // namespace skein::softmax_attention_impl
