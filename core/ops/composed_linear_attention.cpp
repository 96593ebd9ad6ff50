// composed_linear_attention.cpp — linear_attention on a GPU until its fused CUDA kernel lands
// (issue "fast fused CUDA mixers"): the same chunkwise algorithm as the CPU kernel, composed of
// device ops (cuBLAS matmuls, map, cumsum), so autograd gives the backward and every
// intermediate stays on the device. Called by linear_attention (linear_attention.cpp) after
// its shape checks, for inputs that are not on the CPU.
//
// With G the within-chunk inclusive cumsum of the log gates (every exponent below is <= 0):
//   intra:  o_i += Σ_{j<=i} (Σ_d q_id k_jd e^{G_id - G_jd}) v_j
//   inter:  o_i += (q_i ⊙ e^{G_i}) S_n,   S_{n+1} = e^{G_last} ⊙ S_n + Σ_j (k_j ⊙ e^{G_last - G_j})ᵀ v_j
// Scalar gates (none, or a fixed decay per head) form the intra term as (q kᵀ ⊙ M) v with
// M_ij = e^{(i-j)γ}; GLA's per-dimension gates form [C, C, Dk] products on chunks of 16.
// reference: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
// Training", 2024 (the chunkwise form); Qin et al., "Lightning Attention-2", 2024.
#include <algorithm>
#include <limits>
#include <vector>
#include "core/ops.h"
#include "core/ops/composed.h"

namespace skein {
namespace {

// Pads dim 2 (time) of x: [B, H, T, D] with zeros to Tp rows.
Tensor pad_time(const Tensor& x, int64_t Tp) {
  const int64_t T = x.size(2);
  if (Tp == T) return x;
  return cat({x, zeros({x.size(0), x.size(1), Tp - T, x.size(3)}, x.dtype(), x.device())}, 2);
}

// [C, C] on `dev`: (i - j) where j <= i (the lag), 0 above the diagonal.
Tensor lag_matrix(int64_t C, DType dt, Device dev) {
  std::vector<double> m(static_cast<size_t>(C * C));
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) m[static_cast<size_t>(i * C + j)] = j <= i ? static_cast<double>(i - j) : 0.0;
  return from_vector(m, {C, C}, dt).to(dev);
}

// [C, C] on `dev`: 1 above the diagonal (j > i: key after query, masked), 0 elsewhere.
Tensor future_mask(int64_t C, DType dt, Device dev) {
  std::vector<double> m(static_cast<size_t>(C * C));
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) m[static_cast<size_t>(i * C + j)] = j > i ? 1.0 : 0.0;
  return from_vector(m, {C, C}, dt).to(dev);
}

// Gates <= 0 and finite, read back with two reductions (the fused kernel checks on the device).
void check_gates_on_device(const Tensor& g) {
  const Tensor flat = g.reshape({-1});
  const double hi = max(flat, 0).item(), lo = -max(neg(flat), 0).item();
  SKEIN_CHECK(hi <= 0 && lo > -std::numeric_limits<double>::infinity(), "linear_attention: log_gate ",
              shape_str(g.shape()), " entries must be finite and <= 0 (gates in (0, 1]); found values in [", lo,
              ", ", hi, "] on ", device_name(g.device()));
}

}  // namespace

// q, k: [B, H, T, Dk], v: [B, H, T, Dv], log_gate: undefined | [H] | [B, H, T, Dk],
// initial_state: undefined | [B, H, Dk, Dv] (checked by the caller) -> {out, final_state}.
LinearAttentionResult linear_attention_composed(const Tensor& q, const Tensor& k, const Tensor& v,
                                                const Tensor& log_gate, const Tensor& initial_state,
                                                double scale, int64_t chunk) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
  const DType dt = q.dtype();
  const Device dev = q.device();
  const bool gla = log_gate.defined() && log_gate.dim() == 4;
  if (log_gate.defined()) check_gates_on_device(log_gate);
  const int64_t C = gla ? std::min<int64_t>(chunk, 16) : chunk;
  const int64_t N = (T + C - 1) / C, Tp = N * C;
  const Tensor qc = pad_time(q, Tp).reshape({B, H, N, C, Dk});
  const Tensor kc = pad_time(k, Tp).reshape({B, H, N, C, Dk});
  const Tensor vc = pad_time(v, Tp).reshape({B, H, N, C, Dv});

  Tensor qg = qc, kg = kc, A, decay_last;  // decay_last: e^{G_last}, broadcastable to [B, H, N, Dk, 1]
  const double ninf = -std::numeric_limits<double>::infinity();
  if (!gla) {
    // γ per head (0 without a gate): G_r = (r + 1) γ, M_ij = e^{(i - j) γ} (0 above the diagonal)
    // (the padded rows of the last chunk add no step: G stops at the chunk's last real row)
    Tensor gamma = log_gate.defined() ? log_gate.reshape({1, H, 1, 1, 1}) : zeros({1, H, 1, 1, 1}, dt, dev);
    std::vector<double> st(static_cast<size_t>(N * C));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < C; ++r) st[static_cast<size_t>(n * C + r)] = static_cast<double>(std::min(r + 1, T - n * C));
    Tensor G = mul(from_vector(st, {1, 1, N, C, 1}, dt).to(dev), gamma);  // [1, H, N, C, 1]
    Tensor G_last = G.narrow(3, C - 1, 1);                               // [1, H, N, 1, 1]
    qg = mul(qc, exp(G));
    kg = mul(kc, exp(sub(G_last, G)));
    Tensor lag = mul(lag_matrix(C, dt, dev).reshape({1, 1, 1, C, C}), gamma);
    Tensor M = exp(masked_fill(lag, future_mask(C, dt, dev).reshape({1, 1, 1, C, C}), ninf));
    A = mul(matmul(qc, kc.transpose(-1, -2)), M);                        // [B, H, N, C, C]
    decay_last = exp(G_last);
  } else {
    Tensor G = cumsum(pad_time(log_gate, Tp).reshape({B, H, N, C, Dk}), 3);  // [B, H, N, C, Dk]
    Tensor G_last = G.narrow(3, C - 1, 1);                               // [B, H, N, 1, Dk]
    qg = mul(qc, exp(G));
    kg = mul(kc, exp(sub(G_last, G)));
    Tensor diff = sub(G.reshape({B, H, N, C, 1, Dk}), G.reshape({B, H, N, 1, C, Dk}));
    Tensor E = exp(masked_fill(diff, future_mask(C, dt, dev).reshape({C, C, 1}), ninf));                       // [B, H, N, C, C, Dk]
    A = sum(mul(mul(qc.reshape({B, H, N, C, 1, Dk}), kc.reshape({B, H, N, 1, C, Dk})), E), {5});
    decay_last = exp(G_last).transpose(-1, -2);                          // [B, H, N, Dk, 1]
  }
  Tensor intra = matmul(A, vc);                                          // [B, H, N, C, Dv]

  Tensor S = initial_state.defined() ? initial_state : zeros({B, H, Dk, Dv}, dt, dev);
  std::vector<Tensor> inter;
  inter.reserve(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    Tensor qn = qg.narrow(2, n, 1).reshape({B, H, C, Dk});
    Tensor kn = kg.narrow(2, n, 1).reshape({B, H, C, Dk});
    Tensor vn = vc.narrow(2, n, 1).reshape({B, H, C, Dv});
    inter.push_back(matmul(qn, S));                                      // [B, H, C, Dv]
    Tensor dl = decay_last.narrow(2, n, 1).reshape({gla ? B : 1, H, gla ? Dk : 1, 1});
    S = add(mul(S, dl), matmul(kn.transpose(-1, -2), vn));
  }
  Tensor out = mul(add(intra, stack(inter, 2)), scale).reshape({B, H, Tp, Dv});
  if (Tp != T) out = out.narrow(2, 0, T);
  return {out, S};
}

}  // namespace skein
