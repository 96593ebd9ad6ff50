// conv_halo.h — the halo exchange of short convolutions under sequence parallelism: each sp
// rank needs the last K-1 inputs before its piece of every stream (q, k, v of each layer;
// each MoM memory's token list), which the earlier ranks hold. ONE all-gather of every
// rank's last min(T_r, K-1) rows of every stream (plus the piece lengths) lets each rank build
// them even where earlier pieces are shorter than K-1 (or empty); the backward is the
// all-gather's reduce-scatter, which sends each rank the gradient of the rows it lent.
#pragma once
#include <vector>
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace skein {

// xs[i]: [B_i, T_i, C_i], this rank's piece of stream i (streams cut over the ranks of comm
// in rank order; T_i may differ between ranks and be 0; B_i, C_i and the dtype the same on
// every rank) -> per stream [B_i, width, C_i], the `width` rows before this piece in the whole
// stream (zeros before its start). Differentiable in xs (through all_gather_op).
std::vector<Tensor> conv_halo(Communicator& comm, const std::vector<Tensor>& xs, int64_t width);

}  // namespace skein
