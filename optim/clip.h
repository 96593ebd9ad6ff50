// clip.h — global gradient-norm clipping.
// clip_grad_norm(params, max_norm) = the two halves below on one process:
//   norm = sqrt(grad_squared_norm(params));  clip_grads_to_norm(params, norm, max_norm)
// The seam for the grid-aware version (parallel/): each rank sums the squares of the
// gradients it is the owner of (a parameter replicated over tp or sp ranks counted on one
// of them only), the communicator all-reduces that sum, and every rank then scales all of
// its gradients with the global norm through clip_grads_to_norm.
#pragma once
#include <vector>
#include "core/tensor.h"
#include "optim/optimizer.h"

namespace skein {

// Σ g² over the gradients of `params`, accumulated in double (parameters without a grad
// count 0; a tensor listed twice counts once). The local half of a distributed norm.
// Deterministic: the same value for any thread count.
double grad_squared_norm(const std::vector<Tensor>& params);

// Scales every gradient by max_norm / (norm + 1e-6) when norm > max_norm; leaves them alone
// when norm <= max_norm or norm is NaN/Inf. Returns whether it scaled.
bool clip_grads_to_norm(const std::vector<Tensor>& params, double norm, double max_norm);

// Clips the global L2 norm of all gradients to max_norm (> 0) and returns the norm before
// clipping. A NaN or Inf norm is returned as is, with no scaling (the caller decides what
// to do: skip the step, stop the run).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
double clip_grad_norm(const NamedParams& params, double max_norm);

}  // namespace skein
