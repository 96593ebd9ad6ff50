// linear_attention_backward.cpp — the hand-written chunkwise backward of linear_attention for
// one (batch, head) slice: a reverse sweep over chunks carrying dS = ∂L/∂(state), reading the
// chunk-entry states the forward stored. Notation as in linear_attention_impl.h.
// reference: fla-org/flash-linear-attention fla/ops/gla/chunk.py (chunk_gla_bwd),
// fla/ops/common/chunk_h.py (chunk_bwd_kernel_dh); ../shared/research/linear_attention.md §1.5.
//
// Per chunk, with h the state entering it and D1 = ∂L/∂(state leaving it):
//   P    = s · tril(dO v^T)                          (∂L/∂A, scaled: A carries s)
//   dv   = A^T dO + (k ⊙ ek) D1
//   dq   = s · (dO h^T) ⊙ eq   + intra(P)
//   dk   = (v D1^T) ⊙ ek       + intra^T(P)
//   ∂L/∂h = diag(elast) D1 + s · (q ⊙ eq)^T dO       (carried to the previous chunk)
// Gate: every path through Γ[r] gives b[r] = q[r] ⊙ dq[r] - k[r] ⊙ dk[r]; Γ_last also
// enters elast and ek, adding extra = elast ⊙ rowsum(h ⊙ D1) + Σ_j k[j] ⊙ dk_inter[j]. With
// Γ[r] = Σ_{i<=r} g[i]:  dg[r] = Σ_{r'>=r} b[r'] + extra.  For the scalar decay Γ[r] = (r+1)·gamma,
// so d(gamma) = Σ_r Σ_c dg[r, c] = Σ_r (r+1) Σ_c b[r, c] + L · Σ_c extra[c].
#include <algorithm>
#include <cstring>
#include "core/cpu/gemm.h"
#include "core/ops/linear_attention_impl.h"

namespace skein::linear_attention_impl {

template <typename T>
void backward_slice(const Dims& d, const Slice<T>& s, const T* states, const T* dout,
                    const T* dfinal, const SliceGrads<T>& g) {
  const int64_t Dk = d.Dk, Dv = d.Dv, C = d.C, T_len = d.T;
  const T scale = static_cast<T>(d.scale);
  const bool gate_grad = g.dg || g.dgamma;
  std::vector<T> D(Dk * Dv), D1(Dk * Dv), A(C * C), P(C * C);
  std::vector<double> extra(Dk), run(Dk);
  if (dfinal) std::memcpy(D.data(), dfinal, sizeof(T) * Dk * Dv);
  Chunk<T> ch(d);
  const int64_t N = (T_len + C - 1) / C;
  for (int64_t n = N - 1; n >= 0; --n) {
    const int64_t t0 = n * C, L = std::min(C, T_len - t0);
    const T* h = states + n * Dk * Dv;
    D1.swap(D);  // D1 = ∂L/∂(state leaving chunk n); D is rebuilt below
    ch.load(s, t0, L);
    T *dq = g.dq + t0 * Dk, *dk = g.dk + t0 * Dk, *dv = g.dv + t0 * Dv;
    const T* dO = dout ? dout + t0 * Dv : nullptr;
    if (dO) {
      ch.intra(A.data());
      cpu::gemm<T>(false, true, L, L, Dv, scale, dO, Dv, ch.v, Dv, T(0), P.data(), L);
      for (int64_t r = 0; r < L; ++r) std::fill(P.data() + r * L + r + 1, P.data() + (r + 1) * L, T(0));
      cpu::gemm<T>(true, false, L, Dv, L, T(1), A.data(), L, dO, Dv, T(0), dv, Dv);
      cpu::gemm<T>(false, true, L, Dk, Dv, scale, dO, Dv, h, Dv, T(0), dq, Dk);
      for (int64_t x = 0; x < L * Dk; ++x) dq[x] *= ch.eq[x];
    } else {
      std::fill(dv, dv + L * Dv, T(0));
      std::fill(dq, dq + L * Dk, T(0));
    }
    cpu::gemm<T>(false, false, L, Dv, Dk, T(1), ch.kd.data(), Dk, D1.data(), Dv, T(1), dv, Dv);
    cpu::gemm<T>(false, true, L, Dk, Dv, T(1), ch.v, Dv, D1.data(), Dv, T(0), dk, Dk);
    for (int64_t x = 0; x < L * Dk; ++x) dk[x] *= ch.ek[x];  // dk holds dk_inter for now
    if (gate_grad) {
      for (int64_t c = 0; c < Dk; ++c) {
        double hd = 0, kk = 0;
        for (int64_t j = 0; j < Dv; ++j) hd += static_cast<double>(h[c * Dv + j]) * D1[c * Dv + j];
        for (int64_t r = 0; r < L; ++r) kk += static_cast<double>(ch.k[r * Dk + c]) * dk[r * Dk + c];
        extra[c] = static_cast<double>(ch.elast[c]) * hd + kk;
      }
    }
    if (dO) ch.intra_backward(P.data(), dq, dk);
    if (g.dg) {  // reverse cumulative sum of b within the chunk, plus extra on every row
      T* dg = g.dg + t0 * Dk;
      run = extra;
      for (int64_t r = L - 1; r >= 0; --r)
        for (int64_t c = 0; c < Dk; ++c) {
          const int64_t x = r * Dk + c;
          run[c] += static_cast<double>(ch.q[x]) * dq[x] - static_cast<double>(ch.k[x]) * dk[x];
          dg[x] = static_cast<T>(run[c]);
        }
    } else if (g.dgamma) {
      double acc = 0;
      for (int64_t c = 0; c < Dk; ++c) acc += static_cast<double>(L) * extra[c];
      for (int64_t r = 0; r < L; ++r) {
        double b = 0;
        for (int64_t c = 0; c < Dk; ++c) {
          const int64_t x = r * Dk + c;
          b += static_cast<double>(ch.q[x]) * dq[x] - static_cast<double>(ch.k[x]) * dk[x];
        }
        acc += static_cast<double>(r + 1) * b;
      }
      *g.dgamma += acc;
    }
    for (int64_t c = 0; c < Dk; ++c)
      for (int64_t j = 0; j < Dv; ++j) D[c * Dv + j] = ch.elast[c] * D1[c * Dv + j];
    if (dO) cpu::gemm<T>(true, false, Dk, Dv, L, scale, ch.qd.data(), Dk, dO, Dv, T(1), D.data(), Dv);
  }
  std::memcpy(g.ds0, D.data(), sizeof(T) * Dk * Dv);
}

template void backward_slice<float>(const Dims&, const Slice<float>&, const float*, const float*,
                                    const float*, const SliceGrads<float>&);
template void backward_slice<double>(const Dims&, const Slice<double>&, const double*, const double*,
                                     const double*, const SliceGrads<double>&);

}  // namespace skein::linear_attention_impl
