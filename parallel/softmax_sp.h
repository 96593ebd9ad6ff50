// softmax_sp.h — exact sequence parallelism for causal softmax attention, in the layout the
// hybrid model uses for every layer: rank r of `sp` holds the CONTIGUOUS slice of tokens
// [r T, (r + 1) T) of every sequence (the layout LASP-2 needs, parallel/lasp2.h). Two ways:
//  * lasp2h_attention: ONE all-gather of K and V (the softmax half of LASP-2H); each rank runs
//    its local queries against the keys up to its slice's end. Backward: a reduce-scatter of
//    dK, dV (all_gather_op's conjugate).
//  * ring_attention: K/V blocks travel around the ring with non-blocking point-to-point
//    messages while the blocks already here are computed; partial results merge through
//    their log-sum-exp. Backward: a second ring, in the opposite direction, carries K/V and
//    the dK/dV accumulators back to their owners. zigzag = true re-lays the slices out so that
//    rank r owns chunks r and 2W-1-r of 2W (equal causal work on every rank), runs the ring
//    there and brings the output (and in backward the gradients) back to the contiguous slice.
// Both are exact (forward and backward) against softmax_attention on the whole sequence.
// reference: Sun et al., "LASP-2: Rethinking Sequence Parallelism for Linear Attention and Its
//            Hybrid", 2025 (LASP-2H: all-gather of K, V for the softmax layers);
//            Liu et al., "Ring Attention with Blockwise Transformers for Near-Infinite
//            Context", 2023; zhuzilin/ring-flash-attention (zigzag split, dK/dV accumulators);
//            ../shared/research/parallel_distill.md §1, linear_attention.md §3.
//
// Rules: every rank of `sp` calls the op with the same shapes (same T) and the same arguments,
// in the same order, and every rank runs backward through the result (the backward is itself
// collective: give a rank whose loss ignores the output a zero-weight dependency). `sp` must
// outlive the backward pass. Attention is causal; window > 0 additionally hides keys window or
// more positions back (as in softmax_attention).
// Communication per call (e bytes per element, W = sp.size(), Dkv = D + Dv), per rank:
//   lasp2h   forward one all_gather of [B, Hkv, T, Dkv]: (W-1) B Hkv T Dkv e sent;
//            backward one reduce_scatter of the same size.
//   ring     forward W-1 sends ("send"/"recv" kinds) of a [B, Hkv, T, Dkv] block: the same
//            bytes as lasp2h; backward 2 (W-1) sends of that size (K/V and dK/dV).
//   zigzag   in addition, the re-layout through "sendrecv" (see docs/SEQUENCE_PARALLEL.md):
//            n_r (T/2) B (H D + Hkv Dkv + H Dv) e each way in forward and again in backward,
//            n_r in {0, 1, 2} the number of rank r's halves that change owner.
#pragma once
#include <cstdint>
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace skein {

// Causal softmax attention over a sequence split across `sp`, by all-gathering K and V.
// q: [B, H, T, D], k: [B, Hkv, T, D], v: [B, Hkv, T, Dv] — this rank's slice (global positions
// [r T, (r + 1) T)); H % Hkv == 0. Returns this rank's slice of the output, [B, H, T, Dv].
Tensor lasp2h_attention(Communicator& sp, const Tensor& q, const Tensor& k, const Tensor& v,
                        double scale, int64_t window = 0);

// The same attention by Ring Attention: same arguments and result; zigzag = true balances
// the causal work (T must be even).
Tensor ring_attention(Communicator& sp, const Tensor& q, const Tensor& k, const Tensor& v,
                      double scale, int64_t window = 0, bool zigzag = true);

}  // namespace skein
