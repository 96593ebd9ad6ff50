// delta_rule_impl.h — private to core/ops/delta_rule*.cpp: what the forward of
// delta_rule saves for its backward, the one recurrent step both passes share, and the
// backward kernel (core/ops/delta_rule_backward.cpp).
#pragma once
#include <cstdint>
#include "core/tensor.h"

namespace skein::delta_rule_impl {

// q, k, v, the output and their gradients are read and written in place in any layout whose
// last dim is contiguous (a head-split view of [B, T, H, D] needs no copy): row t of head
// (b, h) starts at data + b * stride(0) + h * stride(1) + t * stride(2).
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t sb = 0, sh = 0, st = 0;
  T* head(int64_t b, int64_t h) const { return p ? p + b * sb + h * sh : nullptr; }
};
template <typename T>
Rows<T> rows_of(const Tensor& t) {  // t: undefined | [B, H, T, D] with stride(3) == 1
  if (!t.defined()) return {};
  return {t.data<T>(), t.strides()[0], t.strides()[1], t.strides()[2]};
}
// t as the kernels read it: itself when its last dim is contiguous, else a contiguous copy.
inline Tensor rows_readable(const Tensor& t) {
  return !t.defined() || t.size(3) <= 1 || t.strides()[3] == 1 ? t : t.contiguous();
}
// A new [B, H, T, D] tensor laid out as `like` is: [B, T, H, D] storage (returned as its
// head-split view) when like's heads are inner to its time steps, else contiguous.
inline Tensor empty_rows_like(const Tensor& like, int64_t D) {
  const int64_t B = like.size(0), H = like.size(1), T = like.size(2);
  if (H > 1 && T > 1 && like.strides()[1] < like.strides()[2])
    return Tensor::empty({B, T, H, D}, like.dtype(), like.device()).permute({0, 2, 1, 3});
  return Tensor::empty({B, H, T, D}, like.dtype(), like.device());
}

// Everything the backward needs: the detached inputs (read in place, see Rows) and the state
// at every chunk boundary (O(T / chunk) states, never one per token).
struct Saved {
  Tensor q, k, v;      // q, k: [B, H, T, Dk], v: [B, H, T, Dv]; last dims contiguous
  Tensor beta;         // [B, H, T]
  Tensor log_alpha;    // undefined | [B, H, T]
  Tensor checkpoints;  // [B, H, N, Dk, Dv], N = ceil(T / chunk): the state entering chunk n
  double scale = 1.0;
  int64_t chunk = 64;
};

// Gradients of the six inputs of delta_rule; log_alpha's is undefined when log_alpha was.
struct Grads {
  Tensor q, k, v, beta, log_alpha, initial_state;
};

// dout: undefined | [B, H, T, Dv]; dfinal: undefined | [B, H, Dk, Dv] (undefined = zero).
Grads backward(const Saved& saved, const Tensor& dout, const Tensor& dfinal);

// Row kernels. A running float sum may not be reordered without -ffast-math, so a
// reduction over a row is kept in kLanes independent partial sums (vectorisable), and
// for_lanes calls body(c, lane) over c in [0, n) with lane = the partial sum c feeds.
// The summation order is fixed, so results never depend on the thread count.
inline constexpr int64_t kLanes = 16;

template <typename Body>
inline void for_lanes(int64_t n, Body&& body) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) body(c + l, l);
  for (int64_t l = 0; c < n; ++c, ++l) body(c, l);
}

template <typename T>
inline T lane_sum(T (&acc)[kLanes]) {
  static_assert(kLanes == 16, "lane_sum's pairwise steps assume 16 lanes");
  for (int64_t l = 0; l < 8; ++l) acc[l] += acc[l + 8];  // constant trip counts: stays in
  for (int64_t l = 0; l < 4; ++l) acc[l] += acc[l + 4];  // vector registers
  for (int64_t l = 0; l < 2; ++l) acc[l] += acc[l + 2];
  return acc[0] + acc[1];
}

// One step of the delta rule on row-major [Dk, Dv] states (S may alias S_prev):
//   u = v - a k S_prev   (the "pseudo-value", written to u: [Dv])
//   S = a S_prev + b kᵀ u = a (I - b kᵀ k) S_prev + b kᵀ v
// and, when o is given, o = scale q S (o: [Dv], q: [Dk]).
template <typename T>
inline void step(const T* S_prev, T* S, const T* k, const T* v, T a, T b, T* u, int64_t Dk,
                 int64_t Dv, const T* q = nullptr, T scale = T(1), T* o = nullptr) {
  for (int64_t j = 0; j < Dv; ++j) u[j] = 0;
  for (int64_t i = 0; i < Dk; ++i) {
    const T ki = k[i];
    const T* Si = S_prev + i * Dv;
    for (int64_t j = 0; j < Dv; ++j) u[j] += ki * Si[j];
  }
  for (int64_t j = 0; j < Dv; ++j) u[j] = v[j] - a * u[j];
  if (o) {
    for (int64_t j = 0; j < Dv; ++j) o[j] = 0;
  }
  for (int64_t i = 0; i < Dk; ++i) {
    const T bk = b * k[i];
    const T* Pi = S_prev + i * Dv;
    T* Si = S + i * Dv;
    for (int64_t j = 0; j < Dv; ++j) Si[j] = a * Pi[j] + bk * u[j];
    if (o) {
      const T sq = scale * q[i];
      for (int64_t j = 0; j < Dv; ++j) o[j] += sq * Si[j];
    }
  }
}

}  // namespace skein::delta_rule_impl
