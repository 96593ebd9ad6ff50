// lasp2.h — exact sequence parallelism for linear attention and the (gated) delta rule
// (LASP-2): each rank of `sp` holds one contiguous slice of the sequence, computes its slice's
// state contribution and state transition, exchanges them in ONE all-gather per call (size
// independent of the sequence length), folds the earlier ranks' contributions into its
// incoming state and runs its slice from that state. For linear attention the contribution is
// state-only: (k ⊙ decay weights)ᵀ v, one GEMM per head, so the slice gets ONE chunkwise pass;
// the delta rule's transition takes one extra sequential pass over the slice. Forward and
// backward are exact: the backward is autograd through the single-process ops and
// all_gather_op, whose reduce-scatter carries the state gradients back to earlier ranks.
// reference: Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its
// Hybrid", 2025 (arXiv 2502.07563), Algorithm 1; ../shared/research/linear_attention.md §2.4
// (the exact version with decay and gates, and fla's context-parallel delta rule).
//
// Rank r of sp holds rows [start_r, start_r + T_r) of the sequence, ranks in order (slices
// may differ in length; usually T_r = T_global / sp.size()). Every rank calls the function
// (it is a collective) and every rank must run backward through its result (the backward is
// a collective too). `sp` must outlive the backward pass.
// Gradient convention: the total gradient is the sum over ranks of each rank's loss. final_state
// is the same on every rank, so a loss term on it belongs on one rank (or is divided by W).
// Communication per call: one all_gather of [B, H, Dk, Dv + 1] (linear attention) or
// [B, H, Dk, Dv + Dk] (delta rule) in the inputs' dtype; backward one reduce_scatter of it.
// lasp2_segments does the same for several independent recurrences with ONE all_gather of
// all their packs together.
#pragma once
#include <cstdint>
#include <vector>
#include "core/ops.h"
#include "layers/parallel.h"
#include "parallel/communicator.h"

namespace skein {

// How the one all-gather of a call runs (launch/parallel_options.h sets them from the config).
struct Lasp2Options {
  // true: the all-gather is launched right after the state-only pass and each linear-attention
  // piece's intra-slice output (its pass from a zero state) is computed while it is on the
  // wire; the earlier ranks' state then enters as one term, o += scale (q ⊙ Λ_t) S_in with
  // Λ_t = exp(Σ_{s<=t} g_s) (the decay from the slice start; 1 without gates). The same
  // function (linearity of the recurrence in its initial state), summed in another order.
  // Delta-rule pieces still run their one pass after the gather (their state enters through
  // the WY transforms, not as one additive term).
  bool overlap = false;
  // Benchmark only: no communication; every rank "gathers" W copies of its own pack (wrong
  // results, same shapes and arithmetic).
  bool skip_comm = false;
};

// linear_attention (core/ops.h) over a sequence split across `sp`:
// q, k: [B, H, T, Dk], v: [B, H, T, Dv] — this rank's slice (T = its length);
// log_gate: undefined (plain) | [H] (fixed decay, the same tensor on every rank) |
//   [B, H, T, Dk] (GLA gates of this slice).
// Returns out: [B, H, T, Dv], this rank's slice of the output; final_state: [B, H, Dk, Dv],
// the state after the whole sequence (identical on every rank).
LinearAttentionResult lasp2_linear_attention(Communicator& sp, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& log_gate,
                                             double scale = 1.0, int64_t chunk = 64,
                                             const Lasp2Options& options = {});

// delta_rule (core/ops.h) over a sequence split across `sp`:
// q, k: [B, H, T, Dk] (k L2-normalised), v: [B, H, T, Dv], beta: [B, H, T],
// log_alpha: undefined | [B, H, T] — this rank's slice.
// Returns out: [B, H, T, Dv] (this rank's slice), final_state: [B, H, Dk, Dv] (whole sequence).
LinearAttentionResult lasp2_delta_rule(Communicator& sp, const Tensor& q, const Tensor& k,
                                       const Tensor& v, const Tensor& beta, const Tensor& log_alpha,
                                       double scale = 1.0, int64_t chunk = 64,
                                       const Lasp2Options& options = {});

// Several independent recurrences (layers/parallel.h Recurrence: linear attention or the
// delta rule, each with its own gates) over token lists split across `sp`: segment i's list
// is the concatenation in rank order of every rank's segments[i], which may be EMPTY (T = 0)
// on some ranks. Every rank passes the same number of segments with the same B, H, Dk, Dv and
// kind; init must be undefined. Each segment's [state | transition] pack goes into ONE
// all_gather_op (so the bytes are Σ_i B_i H_i Dk_i (Dv_i + P_i) per rank, independent of the
// lengths). Returns per segment out: [B, H, T, Dv] (this rank's piece) and final_state:
// [B, H, Dk, Dv] (after the whole segment, identical on every rank).
// Every rank's loss must depend on the output of one of its non-empty segments or on a final
// state, so that it joins the backward reduce-scatter.
std::vector<LinearAttentionResult> lasp2_segments(Communicator& sp, const std::vector<Recurrence>& segments,
                                                  double scale = 1.0, int64_t chunk = 64,
                                                  const Lasp2Options& options = {});

}  // namespace skein
