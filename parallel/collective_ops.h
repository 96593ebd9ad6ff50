// collective_ops.h — collectives as autograd ops, each with the conjugate collective as its
// backward: all_gather_op (backward reduce-scatter), all_reduce_op (Megatron's "g": sum
// forward, identity backward) and identity_allreduce_backward_op (Megatron's "f": identity
// forward, all-reduce backward); and all_gather_last_dim_op (concatenate along the last dim,
// backward: this rank's slice), for a result every rank then uses alike (whole logits).
// Sequence parallelism (parallel/lasp2.h) and tensor parallelism build on them.
// reference: Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models
// Using Model Parallelism", 2019, §3 (the f / g conjugate operators).
//
// Rules (the same as for the Communicator's collectives): every rank of `comm` calls the op
// in the same order, and — because each backward is itself a collective — every rank must
// also run backward through it, in the same order. A rank whose loss does not depend on the
// op's output would skip the backward collective and hang the others; give it a zero-weight
// dependency instead (lasp2.cpp does this for rank 0). `comm` must outlive the backward pass.
#pragma once
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace skein {

// x: [...] -> [W, ...] (rank r's x at index r). Backward: the incoming gradient [W, ...] is
// reduce-scattered (summed over ranks), and rank r receives the sum of every rank's row r.
Tensor all_gather_op(Communicator& comm, const Tensor& x);

// all_gather_op in two halves, so that work can run while the gather is on the wire:
// start_all_gather_op launches the non-blocking all-gather of x now; finish() waits and
// returns the [W, ...] tensor with the same backward as all_gather_op (recorded with x as its
// input). finish() exactly once, on every rank. skip_comm (benchmark only): no
// communication, every row of the result is this rank's x.
class PendingGather {
 public:
  Tensor finish();

 private:
  friend PendingGather start_all_gather_op(Communicator& comm, const Tensor& x, bool skip_comm);
  Communicator* comm_ = nullptr;
  Tensor x_, out_;
  Request req_;
};
PendingGather start_all_gather_op(Communicator& comm, const Tensor& x, bool skip_comm = false);

// x: [...] -> [...], the sum of every rank's x. Backward: identity (each rank's gradient
// goes to its own x; the caller's loss is the sum over ranks of each rank's loss).
Tensor all_reduce_op(Communicator& comm, const Tensor& x);

// x: [...] -> x (no copy). Backward: the gradient is all-reduced (summed over ranks).
Tensor identity_allreduce_backward_op(Communicator& comm, const Tensor& x);

// x: [..., n] -> [..., W * n], every rank's x concatenated along the last dim in rank order
// (the same tensor on every rank). Backward: this rank's n columns of the incoming gradient,
// no communication: every rank must compute the same loss from the result (Megatron's
// gather_from_tensor_model_parallel_region), so that column block is x's whole gradient.
Tensor all_gather_last_dim_op(Communicator& comm, const Tensor& x);

}  // namespace skein
