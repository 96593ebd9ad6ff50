// delta_rule_backward.cpp — the backward of delta_rule: a reverse sweep over time that
// recomputes the states of one chunk at a time from the chunk-boundary checkpoints the
// forward saved, then walks that chunk backwards carrying dS = ∂L/∂S_t.
#include <algorithm>
#include <cmath>
#include <vector>
#include "core/ops.h"
#include "core/ops/delta_rule_impl.h"
#include "core/ops/delta_rule_simd.h"
#include "core/threadpool.h"

namespace skein::delta_rule_impl {
namespace {

// reference: Schlag et al., "Linear Transformers Are Secretly Fast Weight Programmers", 2021;
// Yang et al., "Gated Delta Networks", 2024. With S' = a S_{t-1}, u = v - k S',
// S_t = S' + b kᵀ u, o_t = s q S_t, and dS the gradient reaching S_t (incl. s qᵀ do):
//   dq = s do S_tᵀ        dw = k dS        db = dw · u        du = b dw       dv = du
//   dk = b dS uᵀ - S' duᵀ      dS' = dS - kᵀ du      dlog_a = Σ S' ⊙ dS'      dS_{t-1} = a dS'
// (fla-org/flash-linear-attention fla/ops/delta_rule/fused_recurrent.py, and the research
// brief's §1.8, which verified it numerically).
// q, k, v, dout, dq, dk, dv: a head's rows (Rows in delta_rule_impl.h).
// DV: the compile-time width of the vector kernels (delta_rule_simd.h), 0 = generic.
template <typename T, int DV>
void backward_one(const T* q, int64_t qs, const T* k, int64_t ks, const T* v, int64_t vs, const T* beta,
                  const T* log_alpha, const T* ckpt, const T* dout, int64_t dos, const T* dfinal, T* dq,
                  int64_t dqs, T* dk, int64_t dks, T* dv, int64_t dvs, T* dbeta, T* dlog_alpha, T* dinit,
                  int64_t Tlen, int64_t Dk, int64_t Dv, int64_t C, T s) {
  const int64_t DD = Dk * Dv, N = (Tlen + C - 1) / C;
  // The recomputed states of one chunk ((C + 1) Dk Dv values: 1 MB at C = 64, D = 64) live
  // in a per-thread buffer reused across calls: a fresh allocation this size is a fresh mmap,
  // and its page faults cost more than a chunk's backward.
  thread_local std::vector<T> states_buf;
  if (states_buf.size() < static_cast<size_t>((C + 1) * DD)) states_buf.resize(static_cast<size_t>((C + 1) * DD));
  T* states = states_buf.data();
  std::vector<T> us(C * Dv), dS(DD, T(0)), dw(Dv), du(Dv), acc(Dk), zero(Dv, T(0));
  if (dfinal)
    for (int64_t i = 0; i < DD; ++i) dS[i] = dfinal[i];
  for (int64_t n = N - 1; n >= 0; --n) {
    const int64_t t0 = n * C, len = std::min(C, Tlen - t0);
    // recompute S_{t0-1} .. S_{t0+len-1} into states[0 .. len]
    std::copy(ckpt + n * DD, ckpt + (n + 1) * DD, states);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t t = t0 + j;
      T* S = states + (j + 1) * DD;
      const T a = log_alpha ? std::exp(log_alpha[t]) : T(1);
      if constexpr (DV > 0)
        delta_rule_simd::step<T, DV>(S - DD, S, k + t * ks, v + t * vs, a, beta[t], us.data() + j * Dv, Dk);
      else
        step<T>(S - DD, S, k + t * ks, v + t * vs, a, beta[t], us.data() + j * Dv, Dk, Dv);
    }
    for (int64_t j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j;
      const T* St = states + (j + 1) * DD;
      const T* Sp = states + j * DD;  // S_{t-1}; S' = a Sp
      const T* qt = q + t * qs;
      const T* kt = k + t * ks;
      const T* u = us.data() + j * Dv;
      const T a = log_alpha ? std::exp(log_alpha[t]) : T(1), b = beta[t];
      if constexpr (DV > 0) {
        delta_rule_simd::backward_token<T, DV>(Sp, qt, kt, u, dout ? dout + t * dos : nullptr, a, b, s, dS.data(),
                                               dq + t * dqs, dk + t * dks, dv + t * dvs, dbeta + t,
                                               dlog_alpha ? dlog_alpha + t : nullptr, Dk);
        continue;
      }
      const T* dOt = dout ? dout + t * dos : zero.data();  // do_t
      // pass 1, per row i: dS_i += s q_i do;  dq_i = s S_t,i · do;  dw += k_i dS_i;  acc_i = b dS_i · u
      for (int64_t c = 0; c < Dv; ++c) dw[c] = 0;
      for (int64_t i = 0; i < Dk; ++i) {
        T* dSi = dS.data() + i * Dv;
        const T* Sti = St + i * Dv;
        const T sq = s * qt[i], ki = kt[i];
        T l1[kLanes] = {}, l2[kLanes] = {};
        for_lanes(Dv, [&](int64_t c, int64_t l) {
          const T g = dSi[c] + sq * dOt[c];
          dSi[c] = g;
          l1[l] += Sti[c] * dOt[c];
          dw[c] += ki * g;
          l2[l] += g * u[c];
        });
        dq[t * dqs + i] = s * lane_sum(l1);
        acc[i] = b * lane_sum(l2);
      }
      T l0[kLanes] = {};
      for_lanes(Dv, [&](int64_t c, int64_t l) {
        l0[l] += dw[c] * u[c];
        du[c] = b * dw[c];
        dv[t * dvs + c] = du[c];
      });
      dbeta[t] = lane_sum(l0);
      // pass 2, per row i: dk_i = acc_i - S'_i · du;  dS'_i = dS_i - k_i du;  dlog_a += S'_i · dS'_i;
      // dS_i = a dS'_i  (with S' = a S_{t-1})
      T dla = 0;
      for (int64_t i = 0; i < Dk; ++i) {
        T* dSi = dS.data() + i * Dv;
        const T* Spi = Sp + i * Dv;
        const T ki = kt[i];
        T l1[kLanes] = {}, l2[kLanes] = {};
        for_lanes(Dv, [&](int64_t c, int64_t l) {
          const T sp = Spi[c], g = dSi[c] - ki * du[c];
          l1[l] += sp * du[c];
          l2[l] += sp * g;
          dSi[c] = a * g;
        });
        dk[t * dks + i] = acc[i] - a * lane_sum(l1);
        dla += lane_sum(l2);
      }
      if (dlog_alpha) dlog_alpha[t] = a * dla;
    }
  }
  std::copy(dS.begin(), dS.end(), dinit);
}

}  // namespace

Grads backward(const Saved& sv, const Tensor& dout_in, const Tensor& dfinal_in) {
  const int64_t B = sv.q.size(0), H = sv.q.size(1), Tlen = sv.q.size(2), Dk = sv.q.size(3),
                Dv = sv.v.size(3), N = sv.checkpoints.size(2);
  const DType dt = sv.q.dtype();
  Tensor dout = rows_readable(dout_in);  // read in place (Rows)
  Tensor dfinal = dfinal_in.defined() ? dfinal_in.contiguous() : Tensor();
  Grads g;  // dq, dk, dv in the layouts of q, k, v
  g.q = empty_rows_like(sv.q, Dk);
  g.k = empty_rows_like(sv.k, Dk);
  g.v = empty_rows_like(sv.v, Dv);
  g.beta = Tensor::empty(sv.beta.shape(), dt);
  if (sv.log_alpha.defined()) g.log_alpha = Tensor::empty(sv.log_alpha.shape(), dt);
  g.initial_state = Tensor::empty({B, H, Dk, Dv}, dt);
  SKEIN_DISPATCH_FLOAT(dt, "delta_rule backward", [&] {
    const scalar_t* la = sv.log_alpha.defined() ? sv.log_alpha.data<scalar_t>() : nullptr;
    const scalar_t* pdf = dfinal.defined() ? dfinal.data<scalar_t>() : nullptr;
    scalar_t* pdla = g.log_alpha.defined() ? g.log_alpha.data<scalar_t>() : nullptr;
    const auto rq = rows_of<scalar_t>(sv.q), rk = rows_of<scalar_t>(sv.k), rv = rows_of<scalar_t>(sv.v),
               rdo = rows_of<scalar_t>(dout), rdq = rows_of<scalar_t>(g.q), rdk = rows_of<scalar_t>(g.k),
               rdv = rows_of<scalar_t>(g.v);
    delta_rule_simd::with_row_width(Dv, [&](auto W) {
      parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t bh = lo; bh < hi; ++bh) {
          const int64_t b = bh / H, h = bh % H;
          backward_one<scalar_t, decltype(W)::value>(
              rq.head(b, h), rq.st, rk.head(b, h), rk.st, rv.head(b, h), rv.st,
              sv.beta.data<scalar_t>() + bh * Tlen, la ? la + bh * Tlen : nullptr,
              sv.checkpoints.data<scalar_t>() + bh * N * Dk * Dv, rdo.head(b, h), rdo.st,
              pdf ? pdf + bh * Dk * Dv : nullptr, rdq.head(b, h), rdq.st, rdk.head(b, h), rdk.st,
              rdv.head(b, h), rdv.st, g.beta.data<scalar_t>() + bh * Tlen,
              pdla ? pdla + bh * Tlen : nullptr, g.initial_state.data<scalar_t>() + bh * Dk * Dv,
              Tlen, Dk, Dv, sv.chunk, static_cast<scalar_t>(sv.scale));
        }
      });
    });
  });
  return g;
}

}  // namespace skein::delta_rule_impl
