// lasp2.cpp — lasp2_linear_attention and lasp2_delta_rule (parallel/lasp2.h). Both follow the
// same three steps; only the state transition differs:
//   linear attention  S_end = diag(M) S_in + S_loc,  M = exp(Σ_t g_t) per key dim  (a vector)
//   delta rule        S_end = A S_in + S_loc,        A = Π_t a_t (I − b_t k_tᵀ k_t)  (Dk × Dk)
// (1) a local pass from a zero state gives S_loc; (2) ONE all_gather_op of [S_loc | M or A];
// (3) S_in of rank r = the chain S ← T_j S + S_loc_j over j < r, the global final state the
// same chain over every rank; a second local pass from S_in gives this rank's output.
// Everything after the gather is differentiable ops, so the backward is exact.
// reference: Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its
// Hybrid", 2025, Algorithm 1 (one all-gather of the memory states, then a prefix over ranks).
#include "parallel/lasp2.h"
#include <vector>
#include "parallel/collective_ops.h"

namespace skein {

namespace {

// The incoming state of this rank and the state after the whole sequence, from the gathered
// packs. gathered: [W, B, H, Dk, Dv + P] with P = 1 (diagonal transition, a column holding
// M) or P = Dk (full transition A, applied on the key side: A @ S).
struct ChainedStates {
  Tensor incoming;     // [B, H, Dk, Dv]: the state this rank's slice starts from
  Tensor final_state;  // [B, H, Dk, Dv]: the state after the last rank's slice
};

ChainedStates chain_states(Communicator& sp, const Tensor& gathered, int64_t Dv, bool diagonal) {
  const int W = sp.size(), r = sp.rank();
  const Shape& gs = gathered.shape();
  const Shape pack_shape{gs[1], gs[2], gs[3], gs[4]};
  const int64_t P = gs[4] - Dv;
  Tensor S, S_in;  // S: the running state after ranks 0..j
  for (int j = 0; j < W; ++j) {
    Tensor pack = gathered.narrow(0, j, 1).reshape(pack_shape);  // [B, H, Dk, Dv + P]
    Tensor S_loc = pack.narrow(3, 0, Dv);                      // [B, H, Dk, Dv]
    Tensor trans = pack.narrow(3, Dv, P);                      // [B, H, Dk, 1] or [B, H, Dk, Dk]
    // Rank 0's incoming state is zero; it is still taken from the gathered tensor (times 0)
    // so that rank 0's backward reaches the all-gather and joins its reduce-scatter.
    if (j == 0 && r == 0) S_in = mul(S_loc, 0.0).contiguous();
    if (j == r && r > 0) S_in = S.contiguous();
    if (j == 0) S = S_loc;
    else S = add(diagonal ? mul(trans, S) : matmul(trans.contiguous(), S.contiguous()), S_loc);
  }
  return {S_in, S.contiguous()};
}

// [B, H, D, D]: one identity matrix per (batch, head).
Tensor identity_states(int64_t B, int64_t H, int64_t D, DType dt) {
  std::vector<double> eye(static_cast<size_t>(B * H * D * D), 0.0);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < D; ++i) eye[static_cast<size_t>((bh * D + i) * D + i)] = 1.0;
  return from_vector(eye, {B, H, D, D}, dt);
}

}  // namespace

LinearAttentionResult lasp2_linear_attention(Communicator& sp, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& log_gate, double scale,
                                             int64_t chunk) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 4 && v.dim() == 4,
              "lasp2_linear_attention: q, k, v must be defined and 4-D, got q ",
              q.defined() ? shape_str(q.shape()) : "undefined", ", v ",
              v.defined() ? shape_str(v.shape()) : "undefined");
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
  // (1) local pass from zero; its output is not needed (q only shapes the pass: detached).
  Tensor S_loc = linear_attention(q.detach(), k, v, log_gate, Tensor(), scale, chunk).final_state;
  Tensor M;  // [B, H, Dk, 1]: the slice's total decay per key dim
  if (!log_gate.defined()) {
    M = ones({B, H, Dk, 1}, q.dtype());
  } else if (log_gate.dim() == 1) {
    SKEIN_CHECK(log_gate.size(0) == H, "lasp2_linear_attention: log_gate ", shape_str(log_gate.shape()),
                " must be [H] = [", H, "], [B, H, T, Dk] or undefined");
    M = mul(ones({B, H, Dk, 1}, q.dtype()), exp(mul(log_gate, static_cast<double>(T))).view({1, H, 1, 1}));
  } else {
    SKEIN_CHECK(log_gate.shape() == q.shape(), "lasp2_linear_attention: log_gate ",
                shape_str(log_gate.shape()), " must be [H], [B, H, T, Dk] = ", shape_str(q.shape()),
                " or undefined");
    M = exp(sum(log_gate, {2})).view({B, H, Dk, 1});
  }
  // (2) one collective: [W, B, H, Dk, Dv + 1].
  Tensor gathered = all_gather_op(sp, cat({S_loc, M}, 3));
  // (3) incoming state, global final state, and this slice's output from its incoming state.
  const ChainedStates states = chain_states(sp, gathered, Dv, /*diagonal=*/true);
  Tensor out = linear_attention(q, k, v, log_gate, states.incoming, scale, chunk).out;
  return {out, states.final_state};
}

LinearAttentionResult lasp2_delta_rule(Communicator& sp, const Tensor& q, const Tensor& k,
                                       const Tensor& v, const Tensor& beta, const Tensor& log_alpha,
                                       double scale, int64_t chunk) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 4 && v.dim() == 4,
              "lasp2_delta_rule: q, k, v must be defined and 4-D, got q ",
              q.defined() ? shape_str(q.shape()) : "undefined", ", v ",
              v.defined() ? shape_str(v.shape()) : "undefined");
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
  // (1) The columns of the state evolve independently, so ONE local pass over the values
  // [v | 0] from the state [0 | I] ends in [S_loc | A]: S_loc = the slice's contribution from
  // zero, A = Π_t a_t (I − b_t k_tᵀ k_t) its transition (the identity carried through).
  Tensor v_ext = cat({v, zeros({B, H, T, Dk}, v.dtype())}, 3);
  Tensor init = cat({zeros({B, H, Dk, Dv}, v.dtype()), identity_states(B, H, Dk, v.dtype())}, 3);
  Tensor pack = delta_rule(q.detach(), k, v_ext, beta, log_alpha, init, scale, chunk).final_state;
  // (2) one collective: [W, B, H, Dk, Dv + Dk].
  Tensor gathered = all_gather_op(sp, pack);
  // (3) as for linear attention, with the transition applied by a matrix product.
  const ChainedStates states = chain_states(sp, gathered, Dv, /*diagonal=*/false);
  Tensor out = delta_rule(q, k, v, beta, log_alpha, states.incoming, scale, chunk).out;
  return {out, states.final_state};
}

}  // namespace skein
