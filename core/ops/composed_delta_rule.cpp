// composed_delta_rule.cpp — delta_rule on a GPU until its fused CUDA kernel lands (issue "fast
// fused CUDA mixers"): the chunkwise WY form composed of device ops (batched cuBLAS matmuls over
// every chunk at once, then a loop over chunks for the state), so autograd gives the backward.
// Called by delta_rule (delta_rule.cpp) after its shape checks, for inputs not on the CPU.
//
// Within a chunk (rows r, state S entering it, γ_r = Σ_{s<=r} log a_s, Γ = e^γ <= 1) the rule
// S_r = a_r S_{r-1} + k_rᵀ u_r with u_r = β_r (v_r - a_r k_r S_{r-1}) unrolls to
//   (I + diag(β) L) U = diag(β) V - diag(βΓ) K S,  L_rs = (Γ_r / Γ_s) k_r·k_s for s < r
//   U = U0 - W S,  U0 = T (β ⊙ V),  W = T ((βΓ) ⊙ K),  T = (I + diag(β) L)⁻¹
//   O = scale [(Γ ⊙ Q) S + (Q Kᵀ ⊙ M) U],  M_rs = Γ_r / Γ_s for s <= r
//   S' = Γ_last S + (K ⊙ Γ_last / Γ)ᵀ U
// T comes from the nilpotent series: with N = diag(β) L (strictly lower, N^C = 0),
// (I + N)⁻¹ = (I - N)(I + N²)(I + N⁴)···, log2(C) batched matmuls.
// reference: Yang et al., "Parallelizing Linear Transformers with the Delta Rule over Sequence
// Length", 2024 (WY / UT form); Yang et al., "Gated Delta Networks", 2025.
#include <algorithm>
#include <limits>
#include <vector>
#include "core/ops.h"
#include "core/ops/composed.h"

namespace skein {
namespace {

// [C, C] on `dev`: 1 where (strict ? s < r : s <= r), else 0.
Tensor lower_mask(int64_t C, bool strict, DType dt, Device dev) {
  std::vector<double> m(static_cast<size_t>(C * C));
  for (int64_t r = 0; r < C; ++r)
    for (int64_t s = 0; s < C; ++s) m[static_cast<size_t>(r * C + s)] = (strict ? s < r : s <= r) ? 1.0 : 0.0;
  return from_vector(m, {C, C}, dt).to(dev);
}

// Pads dim 2 (time) of x: [B, H, T, ...] with zeros to Tp rows.
Tensor pad_time(const Tensor& x, int64_t Tp) {
  const int64_t T = x.size(2);
  if (Tp == T) return x;
  Shape s = x.shape();
  s[2] = Tp - T;
  return cat({x, zeros(s, x.dtype(), x.device())}, 2);
}

}  // namespace

// q, k: [B, H, T, Dk], v: [B, H, T, Dv], beta: [B, H, T], log_alpha: undefined | [B, H, T],
// initial_state: undefined | [B, H, Dk, Dv] -> {out [B, H, T, Dv], final_state [B, H, Dk, Dv]}
LinearAttentionResult delta_rule_composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                          const Tensor& log_alpha, const Tensor& initial_state, double scale,
                                          int64_t chunk) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
  const DType dt = q.dtype();
  const Device dev = q.device();
  const int64_t C = std::min<int64_t>(chunk, 32), N = (T + C - 1) / C, Tp = N * C;
  // padded rows: k = v = 0, β = 0, log a = 0 — they change nothing
  const Tensor Q = pad_time(q, Tp).reshape({B, H, N, C, Dk});
  const Tensor K = pad_time(k, Tp).reshape({B, H, N, C, Dk});
  const Tensor V = pad_time(v, Tp).reshape({B, H, N, C, Dv});
  const Tensor beta_c = pad_time(beta.reshape({B, H, T, 1}), Tp).reshape({B, H, N, C, 1});

  // γ: [B, H, N, C, 1]; ratio[r, s] = e^{γ_r - γ_s} on and below the diagonal (0 above)
  Tensor gam = log_alpha.defined() ? cumsum(pad_time(log_alpha.reshape({B, H, T, 1}), Tp).reshape({B, H, N, C, 1}), 3)
                                   : zeros({1, 1, 1, C, 1}, dt, dev);
  const double ninf = -std::numeric_limits<double>::infinity();
  Tensor upper = sub(ones({C, C}, dt, dev), lower_mask(C, false, dt, dev));
  Tensor ratio = exp(masked_fill(sub(gam, gam.transpose(-1, -2)), upper, ninf));  // [.., C, C]
  Tensor Gam = exp(gam), gam_last = gam.narrow(3, C - 1, 1);                      // [.., C, 1], [.., 1, 1]

  Tensor Nmat = mul(mul(matmul(K, K.transpose(-1, -2)), ratio), mul(beta_c, lower_mask(C, true, dt, dev)));
  // T = (I + N)⁻¹ = (I - N)(I + N²)(I + N⁴)···
  Tensor eye = lower_mask(C, false, dt, dev);
  eye = sub(eye, lower_mask(C, true, dt, dev));  // identity [C, C]
  Tensor Tinv = sub(eye, Nmat), P = Nmat;
  for (int64_t span = 2; span < C; span *= 2) {
    P = matmul(P, P);
    Tinv = matmul(Tinv, add(eye, P));
  }
  Tensor U0 = matmul(Tinv, mul(V, beta_c));                                       // [B, H, N, C, Dv]
  Tensor W = matmul(Tinv, mul(K, mul(beta_c, Gam)));                              // [B, H, N, C, Dk]
  Tensor QG = mul(Q, Gam);
  Tensor QKM = mul(matmul(Q, K.transpose(-1, -2)), ratio);                        // [B, H, N, C, C]
  Tensor KG = mul(K, exp(sub(gam_last, gam)));                                    // K ⊙ Γ_last / Γ
  Tensor decay_last = exp(gam_last);                                              // [B|1, H|1, N|1, 1, 1]

  Tensor S = initial_state.defined() ? initial_state : zeros({B, H, Dk, Dv}, dt, dev);
  std::vector<Tensor> outs;
  outs.reserve(static_cast<size_t>(N));
  const auto at = [&](const Tensor& t, int64_t n, int64_t cols) {
    return t.narrow(2, n, 1).reshape({t.size(0), t.size(1), t.size(3), cols});
  };
  for (int64_t n = 0; n < N; ++n) {
    Tensor U = sub(at(U0, n, Dv), matmul(at(W, n, Dk), S));                      // [B, H, C, Dv]
    outs.push_back(add(matmul(at(QG, n, Dk), S), matmul(at(QKM, n, C), U)));
    const int64_t nd = decay_last.size(2) == 1 ? 0 : n;
    Tensor dl = decay_last.narrow(2, nd, 1).reshape({decay_last.size(0), decay_last.size(1), 1, 1});
    S = add(mul(S, dl), matmul(at(KG, n, Dk).transpose(-1, -2), U));
  }
  Tensor out = mul(stack(outs, 2), scale).reshape({B, H, Tp, Dv});
  if (Tp != T) out = out.narrow(2, 0, T);
  return {out, S};
}

}  // namespace skein
