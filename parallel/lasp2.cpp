// lasp2.cpp — lasp2_segments, and lasp2_linear_attention / lasp2_delta_rule as one segment
// of it (parallel/lasp2.h). Every segment follows the same three steps; only the state
// transition differs between the kinds:
//   linear attention  S_end = diag(M) S_in + S_loc,  M = exp(Σ_t g_t) per key dim  (a vector)
//   delta rule        S_end = A S_in + S_loc,        A = Π_t a_t (I − b_t k_tᵀ k_t)  (Dk × Dk)
// (1) the piece's S_loc (its state from a zero state) and M or A (an empty piece: S_loc = 0,
// M = 1, A = I). Linear attention has the closed form
//   S_loc = Σ_t diag(exp(Σ_{s>t} g_s)) k_tᵀ v_t = (k ⊙ exp(Γ_t − g_t))ᵀ v,  Γ_t = Σ_{s>=t} g_s
// (the reverse cumulative sum of the gates; every exponent <= 0): one batched GEMM per head
// plus elementwise work, no chunkwise pass. The delta rule's full transition needs one
// sequential pass from [0 | I];
// (2) ONE all_gather_op of every segment's [S_loc | M or A], flattened and concatenated;
// (3) per segment, S_in of rank r = the chain S ← T_j S + S_loc_j over j < r, the global
// final state the same chain over every rank; one local pass from S_in gives this rank's
// output (the only chunkwise pass of a linear-attention piece).
// Everything is differentiable ops, so the backward is exact. Their GEMMs (the chain, kᵀv, the
// incoming term) are matmul_f32: under bf16-mixed the states stay f32, as they do in the
// one-process kernels (core/precision.h), so sp ranks compute what one process computes.
// reference: Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its
// Hybrid", 2025, Algorithm 1 (each rank computes only its memory state M_t = K_tᵀ V_t, one
// all-gather of the states, then a prefix over ranks).
#include "parallel/lasp2.h"
#include <chrono>
#include <string>
#include <vector>
#include "core/autograd.h"
#include "parallel/collective_ops.h"

namespace skein {

namespace {

double g_gather_wait = 0;  // lasp2_gather_wait_seconds (ranks are single-threaded in MPI)

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
    else S = add(diagonal ? mul(trans, S) : matmul_f32(trans.contiguous(), S.contiguous()), S_loc);
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

// Checks one segment's inputs; `op` names the caller (and the segment) in the message.
void check_segment(const Recurrence& r, const std::string& op) {
  const Tensor &q = r.q, &v = r.v;
  SKEIN_CHECK(q.defined() && r.k.defined() && v.defined() && q.dim() == 4 && v.dim() == 4, op,
              ": q, k, v must be defined and 4-D, got q ", q.defined() ? shape_str(q.shape()) : "undefined",
              ", v ", v.defined() ? shape_str(v.shape()) : "undefined");
  SKEIN_CHECK(!r.init.defined(), op, ": an initial state is not supported (the state comes from the "
              "earlier ranks)");
  if (r.beta.defined() || !r.gate.defined()) return;
  const Tensor& g = r.gate;
  SKEIN_CHECK((g.dim() == 1 && g.size(0) == q.size(1)) || g.shape() == q.shape(), op, ": log_gate ",
              shape_str(g.shape()), " must be [H] = [", q.size(1), "], [B, H, T, Dk] = ", shape_str(q.shape()),
              " or undefined");
}

// kᵀ v per (batch, head): k: [B, H, T, Dk], v: [B, H, T, Dv] -> [B, H, Dk, Dv]. The backward
// forms dk = v dSᵀ and dv = k dS in k's and v's own [T, D] layout (matmul on the transposed
// view of k would return dk as a transposed view, and a strided copy of it costs about as
// much as the GEMMs).
Tensor keys_times_values(const Tensor& k, const Tensor& v) {
  Tensor out = matmul_f32(k.detach().transpose(2, 3), v.detach());
  const bool need_k = k.requires_grad(), need_v = v.requires_grad();
  return record("lasp2_keys_times_values", out, {k, v},
                [sk = k.detach(), sv = v.detach(), need_k, need_v](const Tensor& g) {
    return std::vector<Tensor>{need_k ? matmul_f32(sv, g.transpose(2, 3)) : Tensor(),
                               need_v ? matmul_f32(sk, g) : Tensor()};
  });
}

// The state a linear-attention piece reaches from a zero state, in closed form:
// S_loc = (k ⊙ w)ᵀ v with w_t = exp(Σ_{s>t} g_s) per key dim (w = 1 without decay).
// k: [B, H, T, Dk], v: [B, H, T, Dv], g: undefined | [H] | [B, H, T, Dk]. Returns [B, H, Dk, Dv].
Tensor linear_contribution(const Tensor& k, const Tensor& v, const Tensor& g) {
  const int64_t H = k.size(1), T = k.size(2);
  Tensor kw = k;  // [B, H, T, Dk]
  if (g.defined() && g.dim() == 4) {  // Σ_{s>t} g_s = Σ_{s>=t} g_s − g_t <= 0
    kw = mul(k, exp(sub(cumsum(g, 2, true), g)));
  } else if (g.defined()) {           // fixed decay: w_t = exp(g_h (T − 1 − t))
    std::vector<double> steps(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) steps[static_cast<size_t>(t)] = static_cast<double>(T - 1 - t);
    Tensor w = exp(mul(g.reshape({H, 1}), from_vector(steps, {1, T}, g.dtype())));  // [H, T]
    kw = mul(k, w.view({1, H, T, 1}));
  }
  return keys_times_values(kw, v);
}

// Step (1): the piece's [S_loc | M] (linear attention, [B, H, Dk, Dv + 1]) or [S_loc | A]
// (delta rule, [B, H, Dk, Dv + Dk]). q only shapes the delta rule's pass: detached.
// An empty piece (T = 0) gives S_loc = 0, M = 1, A = I; its S_loc is still the (empty)
// product kᵀ v, so that when its inputs need grad this rank joins the backward reduce-scatter.
Tensor local_pack(const Recurrence& r, double scale, int64_t chunk) {
  const Tensor &q = r.q, &k = r.k, &v = r.v, &g = r.gate;
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), Dk = q.size(3), Dv = v.size(3);
  const DType dt = v.dtype();
  if (r.beta.defined()) {
    if (T == 0) return cat({keys_times_values(k, v), identity_states(B, H, Dk, dt)}, 3);
    // The columns of the state evolve independently, so ONE pass over the values [v | 0] from
    // the state [0 | I] ends in [S_loc | A]: S_loc = the piece's contribution from zero,
    // A = Π_t a_t (I − b_t k_tᵀ k_t) its transition (the identity carried through).
    Tensor v_ext = cat({v, zeros({B, H, T, Dk}, dt)}, 3);
    Tensor init = cat({zeros({B, H, Dk, Dv}, dt), identity_states(B, H, Dk, dt)}, 3);
    return delta_rule(q.detach(), k, v_ext, r.beta, g, init, scale, chunk).final_state;
  }
  Tensor M;  // [B, H, Dk, 1]: the piece's total decay per key dim
  if (!g.defined()) M = ones({B, H, Dk, 1}, dt);
  else if (g.dim() == 1) M = mul(ones({B, H, Dk, 1}, dt), exp(mul(g, static_cast<double>(T))).view({1, H, 1, 1}));
  else M = exp(sum(g, {2})).view({B, H, Dk, 1});
  return cat({linear_contribution(k, v, g), M}, 3);
}

// The contribution of an incoming state to a linear-attention piece's output:
// scale (q ⊙ Λ) S_in with Λ_t = exp(Σ_{s<=t} g_s) per key dim (1 without gates).
// q: [B, H, T, Dk], g: undefined | [H] | [B, H, T, Dk], S_in: [B, H, Dk, Dv] -> [B, H, T, Dv].
Tensor incoming_term(const Tensor& q, const Tensor& g, const Tensor& S_in, double scale) {
  const int64_t H = q.size(1), T = q.size(2);
  Tensor qd = q;
  if (g.defined() && g.dim() == 4) {
    qd = mul(q, exp(cumsum(g, 2)));
  } else if (g.defined()) {  // fixed decay: Λ_t = exp(g_h (t + 1))
    std::vector<double> steps(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) steps[static_cast<size_t>(t)] = static_cast<double>(t + 1);
    Tensor w = exp(mul(g.reshape({H, 1}), from_vector(steps, {1, T}, g.dtype())));  // [H, T]
    qd = mul(q, w.view({1, H, T, 1}));
  }
  Tensor o = matmul_f32(qd.contiguous(), S_in);
  return scale == 1.0 ? o : mul(o, scale);
}

}  // namespace

double lasp2_gather_wait_seconds() { return g_gather_wait; }
void reset_lasp2_gather_wait_seconds() { g_gather_wait = 0; }

std::vector<LinearAttentionResult> lasp2_segments(Communicator& sp, const std::vector<Recurrence>& segments,
                                                  double scale, int64_t chunk, const Lasp2Options& options) {
  SKEIN_CHECK(!segments.empty(), "lasp2_segments: no segments");
  std::vector<Tensor> packs;
  for (size_t i = 0; i < segments.size(); ++i) {
    check_segment(segments[i], detail::concat("lasp2_segments: segment ", i));
    packs.push_back(local_pack(segments[i], scale, chunk).reshape({-1}));
  }
  // (2) one collective for every segment: [W, Σ_i B H Dk (Dv + P_i)], launched now; with
  // overlap the linear-attention pieces' passes from a zero state run while it is in flight.
  PendingGather pending = start_all_gather_op(sp, packs.size() == 1 ? packs[0] : cat(packs, 0), options.skip_comm);
  std::vector<Tensor> intra(segments.size());
  if (options.overlap)
    for (size_t i = 0; i < segments.size(); ++i) {
      const Recurrence& r = segments[i];
      if (!r.beta.defined() && r.q.size(2) > 0)
        intra[i] = linear_attention(r.q, r.k, r.v, r.gate, Tensor(), scale, chunk).out;
    }
  const double t0 = now_seconds();
  Tensor gathered = pending.finish();
  g_gather_wait += now_seconds() - t0;
  // (3) per segment: incoming state, final state, and the piece's output from its incoming state.
  std::vector<LinearAttentionResult> out;
  int64_t offset = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const Recurrence& r = segments[i];
    const int64_t B = r.q.size(0), H = r.q.size(1), T = r.q.size(2), Dk = r.q.size(3), Dv = r.v.size(3);
    const bool diagonal = !r.beta.defined();
    const int64_t width = Dv + (diagonal ? 1 : Dk), n = B * H * Dk * width;
    Tensor mine = gathered.narrow(1, offset, n).reshape({sp.size(), B, H, Dk, width});
    offset += n;
    const ChainedStates states = chain_states(sp, mine, Dv, diagonal);
    Tensor o;
    if (T == 0) o = zeros({B, H, 0, Dv}, r.v.dtype());
    else if (intra[i].defined()) o = add(intra[i], incoming_term(r.q, r.gate, states.incoming, scale));
    else if (diagonal) o = linear_attention(r.q, r.k, r.v, r.gate, states.incoming, scale, chunk).out;
    else o = delta_rule(r.q, r.k, r.v, r.beta, r.gate, states.incoming, scale, chunk).out;
    out.push_back({o, states.final_state});
  }
  return out;
}

LinearAttentionResult lasp2_linear_attention(Communicator& sp, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& log_gate, double scale,
                                             int64_t chunk, const Lasp2Options& options) {
  const Recurrence r{q, k, v, Tensor(), log_gate, Tensor()};
  check_segment(r, "lasp2_linear_attention");
  return lasp2_segments(sp, {r}, scale, chunk, options)[0];
}

LinearAttentionResult lasp2_delta_rule(Communicator& sp, const Tensor& q, const Tensor& k,
                                       const Tensor& v, const Tensor& beta, const Tensor& log_alpha,
                                       double scale, int64_t chunk, const Lasp2Options& options) {
  SKEIN_CHECK(beta.defined(), "lasp2_delta_rule: beta is undefined");
  const Recurrence r{q, k, v, beta, log_alpha, Tensor()};
  check_segment(r, "lasp2_delta_rule");
  return lasp2_segments(sp, {r}, scale, chunk, options)[0];
}

}  // namespace skein
