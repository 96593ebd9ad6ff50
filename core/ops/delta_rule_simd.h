// delta_rule_simd.h — private to core/ops/delta_rule*.cpp: the delta rule's per-token row
// kernels for the head dims the models use (Dv = 32, 64, 128), written with GCC/Clang vector
// extensions so that a token's rows (u, do, dw, du, the o accumulator) stay in registers while
// the loop walks the Dk rows of the [Dk, Dv] state, and every reduction is one vector
// accumulator folded once. The generic kernels in delta_rule_impl.h / delta_rule_backward.cpp
// handle every other width; both follow the same formulas (see delta_rule_backward.cpp).
// 64-byte vectors: one AVX-512 register, two AVX2 registers (the compiler splits them).
// Summation orders are fixed, so results never depend on the thread count.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace skein::delta_rule_simd {

template <typename T>
struct Lanes {
  static constexpr int L = 64 / static_cast<int>(sizeof(T));
  typedef T V __attribute__((vector_size(64)));
};

template <typename T, typename V = typename Lanes<T>::V>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename T, typename V>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}
// Pairwise sum of the lanes: the upper half added to the lower half until one lane is left
// (in registers: each halving is one extract and one add).
template <typename T, int Bytes>
struct VecOf {
  typedef T type __attribute__((vector_size(Bytes)));
};
template <typename T, int Bytes>
inline T hsum_bytes(typename VecOf<T, Bytes>::type v) {
  if constexpr (Bytes == static_cast<int>(sizeof(T))) {
    return v[0];
  } else {
    using H = typename VecOf<T, Bytes / 2>::type;
    H lo, hi;
    std::memcpy(&lo, &v, sizeof(H));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
    return hsum_bytes<T, Bytes / 2>(lo + hi);
  }
}
template <typename T, typename V>
inline T hsum(V v) {
  return hsum_bytes<T, static_cast<int>(sizeof(V))>(v);
}

// Calls f(std::integral_constant<int, DV>) with DV = Dv for the widths these kernels are
// instantiated for, else DV = 0 (the caller's generic run-time-width kernel).
template <typename F>
inline void with_row_width(int64_t Dv, F&& f) {
  switch (Dv) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

// One step of the delta rule on a row-major [Dk, DV] state (S may alias S_prev):
//   u = v - a k S_prev   (written to u_out: [DV]);   S = a S_prev + b kᵀ u
// and, when o is given, o = scale q S (o: [DV], q: [Dk]). k S_prev keeps two partial sums
// (even and odd rows) to halve its dependency chain.
template <typename T, int DV>
inline void step(const T* S_prev, T* S, const T* k, const T* v, T a, T b, T* u_out, int64_t Dk,
                 const T* q = nullptr, T scale = T(1), T* o = nullptr) {
  using V = typename Lanes<T>::V;
  constexpr int L = Lanes<T>::L, NV = DV / L;
  static_assert(DV % L == 0, "delta_rule_simd: width must be a multiple of the vector lanes");
  V u[NV], u2[NV];
  for (int c = 0; c < NV; ++c) u[c] = u2[c] = V{};
  int64_t i = 0;
  for (; i + 1 < Dk; i += 2) {
    const T* S0 = S_prev + i * DV;
    const T k0 = k[i], k1 = k[i + 1];
    for (int c = 0; c < NV; ++c) {
      u[c] += k0 * load<T>(S0 + c * L);
      u2[c] += k1 * load<T>(S0 + DV + c * L);
    }
  }
  for (; i < Dk; ++i)
    for (int c = 0; c < NV; ++c) u[c] += k[i] * load<T>(S_prev + i * DV + c * L);
  for (int c = 0; c < NV; ++c) {
    u[c] = load<T>(v + c * L) - a * (u[c] + u2[c]);
    store(u_out + c * L, u[c]);
  }
  V acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = V{};
  for (i = 0; i < Dk; ++i) {
    const T bk = b * k[i];
    const T* Pi = S_prev + i * DV;
    T* Si = S + i * DV;
    if (o) {
      const T sq = scale * q[i];
      for (int c = 0; c < NV; ++c) {
        const V s = a * load<T>(Pi + c * L) + bk * u[c];
        store(Si + c * L, s);
        acc[c] += sq * s;
      }
    } else {
      for (int c = 0; c < NV; ++c) store(Si + c * L, a * load<T>(Pi + c * L) + bk * u[c]);
    }
  }
  if (o)
    for (int c = 0; c < NV; ++c) store(o + c * L, acc[c]);
}

// The backward of one token (delta_rule_backward.cpp derives it): given S_{t-1} (Sp), u_t,
// do_t (null = zero) and dS = ∂L/∂S_t in place, writes dq_t, dk_t, dv_t, dβ_t, dlog_a_t (when
// dla is given) and leaves ∂L/∂S_{t-1} in dS. With S' = a S_{t-1} and S_t,i = S'_i + b k_i u,
// the row products with S_t are taken through S_{t-1} so S_t is never read:
//   g_i = dS_i + s q_i do;   dw = Σ_i k_i g_i;   du = b dw = dv;   dβ = dw · u
//   dq_i = s (a S_{t-1},i · do + b k_i (u · do));   dk_i = b g_i · u − a S_{t-1},i · du
//   g'_i = g_i − k_i du;   dlog_a = a Σ_i S_{t-1},i · g'_i;   dS_{t-1},i = a g'_i
template <typename T, int DV>
inline void backward_token(const T* Sp, const T* q, const T* k, const T* u, const T* dout, T a,
                           T b, T s, T* dS, T* dq, T* dk, T* dv, T* dbeta, T* dla, int64_t Dk) {
  using V = typename Lanes<T>::V;
  constexpr int L = Lanes<T>::L, NV = DV / L;
  static_assert(DV % L == 0, "delta_rule_simd: width must be a multiple of the vector lanes");
  V uu[NV], dO[NV], dw[NV];
  V udo_v = V{};
  for (int c = 0; c < NV; ++c) {
    uu[c] = load<T>(u + c * L);
    dO[c] = dout ? load<T>(dout + c * L) : V{};
    dw[c] = V{};
    udo_v += uu[c] * dO[c];
  }
  // pass 1, per row i: g_i = dS_i + s q_i do (into dS);  dw += k_i g_i
  for (int64_t i = 0; i < Dk; ++i) {
    T* dSi = dS + i * DV;
    const T sq = s * q[i], ki = k[i];
    for (int c = 0; c < NV; ++c) {
      const V g = load<T>(dSi + c * L) + sq * dO[c];
      store(dSi + c * L, g);
      dw[c] += ki * g;
    }
  }
  V l0 = V{}, du[NV], bu[NV], adu[NV];
  for (int c = 0; c < NV; ++c) {
    l0 += dw[c] * uu[c];
    du[c] = b * dw[c];
    bu[c] = b * uu[c];
    adu[c] = a * du[c];
    store(dv + c * L, du[c]);
  }
  *dbeta = hsum<T>(l0);
  const T bdo = b * hsum<T>(udo_v);  // b (u · do)
  // pass 2, per row i: dq_i, dk_i, dlog_a, and dS_i = a g'_i
  V lla = V{};
  for (int64_t i = 0; i < Dk; ++i) {
    T* dSi = dS + i * DV;
    const T* Spi = Sp + i * DV;
    const T ki = k[i];
    V lq = V{}, lk = V{};
    for (int c = 0; c < NV; ++c) {
      const V sp = load<T>(Spi + c * L), g = load<T>(dSi + c * L);
      lq += sp * dO[c];
      lk += g * bu[c] - sp * adu[c];
      const V g2 = g - ki * du[c];
      lla += sp * g2;
      store(dSi + c * L, a * g2);
    }
    dq[i] = s * (a * hsum<T>(lq) + ki * bdo);
    dk[i] = hsum<T>(lk);
  }
  if (dla) *dla = a * hsum<T>(lla);
}

}  // namespace skein::delta_rule_simd
