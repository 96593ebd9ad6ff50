// linear_attention.cpp — linear_attention (core/ops.h): chunkwise causal linear attention with
// no decay, a fixed per-head decay or GLA gates. Here: the per-chunk gate factors, the forward
// sweep over chunks and the op itself; the backward sweep is in linear_attention_backward.cpp.
// reference: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
// Training", 2024; Qin et al., "Lightning Attention-2", 2024; see linear_attention_impl.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/ops/composed.h"
#include "core/ops/op_util.h"
#include "core/ops/linear_attention_impl.h"
#include "core/threadpool.h"

namespace skein {
namespace linear_attention_impl {

template <typename T>
Chunk<T>::Chunk(const Dims& d) : d_(d) {
  const int64_t C = d.C, Dk = d.Dk;
  eq.resize(C * Dk);
  ek.resize(C * Dk);
  qd.resize(C * Dk);
  kd.resize(C * Dk);
  elast.resize(Dk);
  tmp_.resize(std::max(C * Dk, 2 * Dk));
  if (!d.vector_gate) {
    decay_.resize(C + 1);
    return;
  }
  const int64_t nsub = (C + kSubChunk - 1) / kSubChunk;
  G_.resize(C * Dk);
  a_.resize(C * Dk);
  qf_.resize(C * Dk);
  kf_.resize(kf_row_offset(nsub) * Dk);
  qt_.resize(kSubChunk * Dk);
  kt_.resize(C * Dk);
}

// Every exponent evaluated here is <= 0: the gates are <= 0, Γ restarts at each chunk, and the
// GLA intra block uses the first row of each sub-block as its reference point (below). Γ and
// the differences of Γ are formed in double (no cancellation in f32); exp() runs in T.
template <typename T>
void Chunk<T>::load(const Slice<T>& s, int64_t t0, int64_t len) {
  const int64_t Dk = d_.Dk;
  L = len;
  q = s.q + t0 * Dk;
  k = s.k + t0 * Dk;
  v = s.v + t0 * d_.Dv;
  if (!d_.vector_gate) {  // Γ[r] = (r + 1) · gamma for every key dim
    for (int64_t i = 0; i <= L; ++i) decay_[i] = static_cast<T>(std::exp(static_cast<double>(i) * s.gamma));
    for (int64_t r = 0; r < L; ++r) {
      const T fq = decay_[r + 1], fk = decay_[L - 1 - r];
      for (int64_t c = 0; c < Dk; ++c) {
        eq[r * Dk + c] = fq;
        ek[r * Dk + c] = fk;
        qd[r * Dk + c] = q[r * Dk + c] * fq;
        kd[r * Dk + c] = k[r * Dk + c] * fk;
      }
    }
    std::fill(elast.begin(), elast.end(), decay_[L]);
    return;
  }
  const T* g = s.g + t0 * Dk;
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < Dk; ++c) {
      G_[r * Dk + c] = (r ? G_[(r - 1) * Dk + c] : 0.0) + static_cast<double>(g[r * Dk + c]);
      a_[r * Dk + c] = std::exp(g[r * Dk + c]);
    }
  const double* Glast = G_.data() + (L - 1) * Dk;
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < Dk; ++c) {
      const int64_t i = r * Dk + c;
      eq[i] = std::exp(static_cast<T>(G_[i]));
      ek[i] = std::exp(static_cast<T>(Glast[c] - G_[i]));
      qd[i] = q[i] * eq[i];
      kd[i] = k[i] * ek[i];
    }
  for (int64_t c = 0; c < Dk; ++c) elast[c] = std::exp(static_cast<T>(Glast[c]));
  // Sub-block i >= 1 (rows [i0, i1)) meets the columns j < i0 through the reference point
  // Γ[i0]: exp(Γ[r] - Γ[j]) = exp(Γ[r] - Γ[i0]) · exp(Γ[i0] - Γ[j]), both factors <= 1.
  for (int64_t i = 1; i * kSubChunk < L; ++i) {
    const int64_t i0 = i * kSubChunk, i1 = std::min(L, i0 + kSubChunk);
    const double* Gi0 = G_.data() + i0 * Dk;
    for (int64_t r = i0; r < i1; ++r)
      for (int64_t c = 0; c < Dk; ++c) qf_[r * Dk + c] = std::exp(static_cast<T>(G_[r * Dk + c] - Gi0[c]));
    T* kf = kf_.data() + kf_row_offset(i) * Dk;
    for (int64_t j = 0; j < i0; ++j)
      for (int64_t c = 0; c < Dk; ++c) kf[j * Dk + c] = std::exp(static_cast<T>(Gi0[c] - G_[j * Dk + c]));
  }
}

// qt: [i1 - i0, Dk] = q[i0:i1] ⊙ qf;  kt: [i0, Dk] = k[0:i0] ⊙ kf (sub-block i's reference).
template <typename T>
void Chunk<T>::sub_block_operands(int64_t i, T* qt, T* kt) const {
  const int64_t Dk = d_.Dk, i0 = i * kSubChunk, i1 = std::min(L, i0 + kSubChunk);
  for (int64_t x = i0 * Dk; x < i1 * Dk; ++x) qt[x - i0 * Dk] = q[x] * qf_[x];
  const T* kf = kf_.data() + kf_row_offset(i) * Dk;
  for (int64_t x = 0; x < i0 * Dk; ++x) kt[x] = k[x] * kf[x];
}

template <typename T>
void Chunk<T>::intra(T* A) const {
  const int64_t Dk = d_.Dk;
  const T s = static_cast<T>(d_.scale);
  if (!d_.vector_gate) {  // A = s · (q k^T) ⊙ gamma^(r-j) on and below the diagonal
    cpu::gemm<T>(false, true, L, L, Dk, s, q, Dk, k, Dk, T(0), A, L);
    for (int64_t r = 0; r < L; ++r)
      for (int64_t j = 0; j < L; ++j) A[r * L + j] = j <= r ? A[r * L + j] * decay_[r - j] : T(0);
    return;
  }
  std::fill(A, A + L * L, T(0));
  for (int64_t i = 0; i * kSubChunk < L; ++i) {
    const int64_t i0 = i * kSubChunk, i1 = std::min(L, i0 + kSubChunk);
    if (i > 0) {  // below the diagonal sub-blocks: one GEMM through the reference point
      sub_block_operands(i, qt_.data(), kt_.data());
      cpu::gemm<T>(false, true, i1 - i0, i0, Dk, s, qt_.data(), Dk, kt_.data(), Dk, T(0), A + i0 * L, L);
    }
    // the diagonal sub-block elementwise; w = k[j] ⊙ Π_{j<i<=r} exp(g[i]) = k[j] ⊙ exp(Γ[r]-Γ[j])
    T* w = tmp_.data();
    for (int64_t j = i0; j < i1; ++j) {
      std::memcpy(w, k + j * Dk, sizeof(T) * Dk);
      for (int64_t r = j; r < i1; ++r) {
        if (r > j)
          for (int64_t c = 0; c < Dk; ++c) w[c] *= a_[r * Dk + c];
        T dot = 0;
        for (int64_t c = 0; c < Dk; ++c) dot += q[r * Dk + c] * w[c];
        A[r * L + j] = s * dot;
      }
    }
  }
}

template <typename T>
void Chunk<T>::intra_backward(T* P, T* dq, T* dk) const {
  const int64_t Dk = d_.Dk;
  if (!d_.vector_gate) {
    for (int64_t r = 0; r < L; ++r)
      for (int64_t j = 0; j < L; ++j) P[r * L + j] = j <= r ? P[r * L + j] * decay_[r - j] : T(0);
    cpu::gemm<T>(false, false, L, Dk, L, T(1), P, L, k, Dk, T(1), dq, Dk);
    cpu::gemm<T>(true, false, L, Dk, L, T(1), P, L, q, Dk, T(1), dk, Dk);
    return;
  }
  for (int64_t i = 0; i * kSubChunk < L; ++i) {
    const int64_t i0 = i * kSubChunk, i1 = std::min(L, i0 + kSubChunk), bl = i1 - i0;
    if (i > 0) {
      sub_block_operands(i, qt_.data(), kt_.data());
      T* tmp = tmp_.data();
      cpu::gemm<T>(false, false, bl, Dk, i0, T(1), P + i0 * L, L, kt_.data(), Dk, T(0), tmp, Dk);
      for (int64_t x = i0 * Dk; x < i1 * Dk; ++x) dq[x] += tmp[x - i0 * Dk] * qf_[x];
      cpu::gemm<T>(true, false, i0, Dk, bl, T(1), P + i0 * L, L, qt_.data(), Dk, T(0), tmp, Dk);
      const T* kf = kf_.data() + kf_row_offset(i) * Dk;
      for (int64_t x = 0; x < i0 * Dk; ++x) dk[x] += tmp[x] * kf[x];
    }
    T *e = tmp_.data(), *acc = tmp_.data() + Dk;  // e = exp(Γ[r] - Γ[j]) as a running product
    for (int64_t j = i0; j < i1; ++j) {
      std::fill(e, e + Dk, T(1));
      std::fill(acc, acc + Dk, T(0));
      for (int64_t r = j; r < i1; ++r) {
        if (r > j)
          for (int64_t c = 0; c < Dk; ++c) e[c] *= a_[r * Dk + c];
        const T p = P[r * L + j];
        for (int64_t c = 0; c < Dk; ++c) {
          dq[r * Dk + c] += p * k[j * Dk + c] * e[c];
          acc[c] += p * q[r * Dk + c] * e[c];
        }
      }
      for (int64_t c = 0; c < Dk; ++c) dk[j * Dk + c] += acc[c];
    }
  }
}

template <typename T>
void forward_slice(const Dims& d, const Slice<T>& s, const T* s0, T* out, T* S, T* states) {
  const int64_t Dk = d.Dk, Dv = d.Dv, C = d.C;
  const T scale = static_cast<T>(d.scale);
  if (s0) std::memcpy(S, s0, sizeof(T) * Dk * Dv);
  else std::fill(S, S + Dk * Dv, T(0));
  Chunk<T> ch(d);
  std::vector<T> A(C * C);
  for (int64_t n = 0, t0 = 0; t0 < d.T; ++n, t0 += C) {
    const int64_t L = std::min(C, d.T - t0);
    if (states) std::memcpy(states + n * Dk * Dv, S, sizeof(T) * Dk * Dv);
    ch.load(s, t0, L);
    ch.intra(A.data());
    T* o = out + t0 * Dv;
    cpu::gemm<T>(false, false, L, Dv, Dk, scale, ch.qd.data(), Dk, S, Dv, T(0), o, Dv);  // inter
    cpu::gemm<T>(false, false, L, Dv, L, T(1), A.data(), L, ch.v, Dv, T(1), o, Dv);        // intra
    for (int64_t c = 0; c < Dk; ++c)
      for (int64_t j = 0; j < Dv; ++j) S[c * Dv + j] *= ch.elast[c];
    cpu::gemm<T>(true, false, Dk, Dv, L, T(1), ch.kd.data(), Dk, ch.v, Dv, T(1), S, Dv);  // state
  }
}

template class Chunk<float>;
template class Chunk<double>;
template void forward_slice<float>(const Dims&, const Slice<float>&, const float*, float*, float*, float*);
template void forward_slice<double>(const Dims&, const Slice<double>&, const double*, double*, double*,
                                    double*);

}  // namespace linear_attention_impl

namespace {
namespace la = linear_attention_impl;

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_gate,
                  const Tensor& initial_state, int64_t chunk) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined(), "linear_attention: q, k and v must be defined");
  SKEIN_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "linear_attention: q, k, v must be 4-D "
              "[B, H, T, D], got q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
              shape_str(v.shape()));
  SKEIN_CHECK(k.shape() == q.shape(), "linear_attention: k ", shape_str(k.shape()), " must match q ",
              shape_str(q.shape()), " [B, H, T, Dk]");
  SKEIN_CHECK(std::equal(q.shape().begin(), q.shape().begin() + 3, v.shape().begin()),
              "linear_attention: v ", shape_str(v.shape()), " must be [B, H, T, Dv] with B, H, T of q ",
              shape_str(q.shape()));
  SKEIN_CHECK(q.shape()[3] > 0 && v.shape()[3] > 0, "linear_attention: head dims must be positive, got q ",
              shape_str(q.shape()), ", v ", shape_str(v.shape()));
  SKEIN_CHECK(chunk >= 1, "linear_attention: chunk must be >= 1, got ", chunk);
  SKEIN_CHECK(is_floating(q.dtype()), "linear_attention: q must be f32 or f64, got ", dtype_name(q.dtype()));
  for (const Tensor* t : {&k, &v, &log_gate, &initial_state}) {
    if (!t->defined()) continue;
    SKEIN_CHECK(t->dtype() == q.dtype(), "linear_attention: dtypes differ: q is ", dtype_name(q.dtype()),
                ", another input is ", dtype_name(t->dtype()));
    ops::common_device("linear_attention", {q, *t});
  }
  const int64_t B = q.shape()[0], H = q.shape()[1], Dk = q.shape()[3], Dv = v.shape()[3];
  const Shape per_head{H}, state_shape{B, H, Dk, Dv};
  SKEIN_CHECK(!log_gate.defined() || log_gate.shape() == per_head || log_gate.shape() == q.shape(),
              "linear_attention: log_gate must be undefined, [H] = [", H, "] or [B, H, T, Dk] = ",
              shape_str(q.shape()), ", got ", shape_str(log_gate.shape()));
  SKEIN_CHECK(!initial_state.defined() || initial_state.shape() == state_shape,
              "linear_attention: initial_state must be [B, H, Dk, Dv] = ", shape_str(state_shape),
              ", got ", shape_str(initial_state.shape()));
}

// Gates must lie in (0, 1]: every log gate finite and <= 0 (this also rejects NaN).
void check_gate_values(const Tensor& g) {
  SKEIN_DISPATCH_FLOAT(g.dtype(), "linear_attention", [&] {
    const scalar_t* p = g.data<scalar_t>();
    for (int64_t i = 0, n = g.numel(); i < n; ++i)
      SKEIN_CHECK(p[i] <= 0 && std::isfinite(p[i]), "linear_attention: log_gate ", shape_str(g.shape()),
                  " entries must be finite and <= 0 (gates in (0, 1]); found ", p[i], " at flat index ", i);
  });
}

// Slice i = b * H + h of contiguous q, k, v: [B, H, T, D] and the gate (undefined, [H] or
// [B, H, T, Dk]).
template <typename T>
la::Slice<T> slice_at(const la::Dims& d, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& g, int64_t i) {
  la::Slice<T> s{q.data<T>() + i * d.T * d.Dk, k.data<T>() + i * d.T * d.Dk, v.data<T>() + i * d.T * d.Dv,
                 nullptr, 0.0};
  if (d.vector_gate) s.g = g.data<T>() + i * d.T * d.Dk;
  else if (g.defined()) s.gamma = static_cast<double>(g.data<T>()[i % g.numel()]);
  return s;
}

}  // namespace

LinearAttentionResult linear_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                       const Tensor& gate_in, const Tensor& s0_in, double scale,
                                       int64_t chunk) {
  check_inputs(q_in, k_in, v_in, gate_in, s0_in, chunk);
  if (q_in.device() != Device::cpu)  // composed of device ops until the fused CUDA kernel lands
    return linear_attention_composed(q_in, k_in, v_in, gate_in, s0_in, scale, chunk);
  const int64_t B = q_in.shape()[0], H = q_in.shape()[1], T = q_in.shape()[2];
  const int64_t BH = B * H, N = (T + chunk - 1) / chunk;
  la::Dims d;
  d.T = T;
  d.Dk = q_in.shape()[3];
  d.Dv = v_in.shape()[3];
  d.C = chunk;
  d.scale = scale;
  d.vector_gate = gate_in.defined() && gate_in.dim() == 4;
  const bool has_gate = gate_in.defined(), has_s0 = s0_in.defined();
  Tensor q = q_in.detach().contiguous(), k = k_in.detach().contiguous(), v = v_in.detach().contiguous();
  Tensor g = has_gate ? gate_in.detach().contiguous() : Tensor();
  Tensor s0 = has_s0 ? s0_in.detach().contiguous() : Tensor();
  if (has_gate) check_gate_values(g);
  const bool need_grad = any_requires_grad({q_in, k_in, v_in, gate_in, s0_in});
  Tensor out = Tensor::empty({B, H, T, d.Dv}, q.dtype());
  Tensor fin = Tensor::empty({B, H, d.Dk, d.Dv}, q.dtype());
  // States entering each chunk, kept for the backward: O(T / chunk · Dk · Dv) per slice.
  Tensor states = need_grad ? Tensor::empty({BH, N, d.Dk, d.Dv}, q.dtype()) : Tensor();
  SKEIN_DISPATCH_FLOAT(q.dtype(), "linear_attention", [&] {
    cpu::SingleThreadedBlas single;
    parallel_for(0, BH, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        la::forward_slice(d, slice_at<scalar_t>(d, q, k, v, g, i), has_s0 ? s0.data<scalar_t>() + i * d.Dk * d.Dv : nullptr,
                          out.data<scalar_t>() + i * T * d.Dv, fin.data<scalar_t>() + i * d.Dk * d.Dv,
                          need_grad ? states.data<scalar_t>() + i * N * d.Dk * d.Dv : nullptr);
      }
    });
  });
  if (!need_grad) return {out, fin};
  const bool need_gate_grad = has_gate && gate_in.requires_grad();
  auto outs = record_multi(
      "linear_attention", {out, fin}, {q_in, k_in, v_in, gate_in, s0_in},
      [q, k, v, g, states, d, B, H, has_s0, need_gate_grad](const std::vector<Tensor>& go) {
        const int64_t BH = B * H, T = d.T, N = (T + d.C - 1) / d.C;
        Tensor dout = go[0].defined() ? go[0].contiguous() : Tensor();
        Tensor dfin = go[1].defined() ? go[1].contiguous() : Tensor();
        Tensor dq = Tensor::empty(q.shape(), q.dtype()), dk = Tensor::empty(k.shape(), k.dtype());
        Tensor dv = Tensor::empty(v.shape(), v.dtype());
        Tensor ds0 = Tensor::empty({B, H, d.Dk, d.Dv}, q.dtype());
        Tensor dg = need_gate_grad && d.vector_gate ? Tensor::empty(g.shape(), g.dtype()) : Tensor();
        std::vector<double> dgamma(BH, 0.0);
        const bool want_dgamma = need_gate_grad && !d.vector_gate;
        SKEIN_DISPATCH_FLOAT(q.dtype(), "linear_attention backward", [&] {
          cpu::SingleThreadedBlas single;
          parallel_for(0, BH, 1, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) {
              la::SliceGrads<scalar_t> gr;
              gr.dq = dq.data<scalar_t>() + i * T * d.Dk;
              gr.dk = dk.data<scalar_t>() + i * T * d.Dk;
              gr.dv = dv.data<scalar_t>() + i * T * d.Dv;
              gr.dg = dg.defined() ? dg.data<scalar_t>() + i * T * d.Dk : nullptr;
              gr.dgamma = want_dgamma ? &dgamma[i] : nullptr;
              gr.ds0 = ds0.data<scalar_t>() + i * d.Dk * d.Dv;
              la::backward_slice(d, slice_at<scalar_t>(d, q, k, v, g, i), states.data<scalar_t>() + i * N * d.Dk * d.Dv,
                                 dout.defined() ? dout.data<scalar_t>() + i * T * d.Dv : nullptr,
                                 dfin.defined() ? dfin.data<scalar_t>() + i * d.Dk * d.Dv : nullptr, gr);
            }
          });
        });
        if (want_dgamma) {  // the fixed decay is shared by every batch row and step: reduce
          std::vector<double> per_head(H, 0.0);
          for (int64_t i = 0; i < BH; ++i) per_head[i % H] += dgamma[i];
          dg = from_vector(per_head, {H}, q.dtype());
        }
        return std::vector<Tensor>{dq, dk, dv, dg, has_s0 ? ds0 : Tensor()};
      });
  return {outs[0], outs[1]};
}

}  // namespace skein
