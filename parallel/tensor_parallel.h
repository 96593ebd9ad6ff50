// tensor_parallel.h — tensor-parallel helpers outside the model: the gradient norm and
// clipping of a model whose parameters are partly sharded over tp ranks (each sharded
// gradient is a disjoint piece and counts on its rank; a replicated one is the same full
// gradient on every tp rank and counts once), and, from layers/basic.h, tp_shard / tp_join to
// cut a one-process tensor into a rank's shard and join the shards back (checkpoints, tests).
// The layout of each parameter is Module::tp_splits() (layers/module.h).
#pragma once
#include <map>
#include <string>
#include <vector>
#include "layers/basic.h"
#include "parallel/communicator.h"

namespace skein {

// The parameters whose gradients this tp rank counts in the global norm: every sharded one,
// and the replicated ones on tp rank 0 only. A name missing from `splits` is an error.
std::vector<Tensor> tp_owned_params(const NamedTensors& params, const std::map<std::string, TpSplit>& splits,
                                    int tp_rank);

// Clips the global L2 norm of the gradients of a tensor-parallel model (every rank of `tp`
// calls it with its own shard's parameters) to max_norm (> 0) and returns the norm before
// clipping — the one-process model's norm. A NaN or Inf norm is returned as is, with no
// scaling (as optim/clip.h). One all-reduce of one double over `tp`.
double clip_grad_norm_tp(const NamedTensors& params, const std::map<std::string, TpSplit>& splits,
                         Communicator& tp, double max_norm);

}  // namespace skein
