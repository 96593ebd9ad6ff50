// autograd.h — the dynamic tape. An op that needs grad records a Node holding its
// backward closure (which owns the saved tensors) and an Edge per input; the engine
// walks nodes in reverse topological order and frees each closure after it runs.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace skein {

// Where the gradient of one input goes: another node, or a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> fn;            // set when the input was made by an op
  int output_nr = 0;                   // which output of fn the input is
  std::shared_ptr<TensorImpl> leaf;    // set when the input is a leaf that requires grad
  Shape shape;                         // the input's shape and dtype, to check the gradient
  DType dtype = DType::f32;
  bool active() const { return fn || leaf; }
};

// Returns one gradient per input (an undefined Tensor where an input needs none).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
// For ops with several outputs: one gradient per output in (undefined where an output
// received none: treat it as zero), one per input out.
using MultiBackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

struct Node {
  const char* name = "";
  std::vector<Edge> inputs;
  int num_outputs = 1;
  MultiBackwardFn backward;  // reset after it runs unless the graph is retained
};

// Records `out` as made by op `name` from `inputs` when grad mode is on and any input
// requires grad. `fn` maps d(out) to d(inputs), in input order. Returns `out`.
Tensor record(const char* name, Tensor out, std::initializer_list<Tensor> inputs, BackwardFn fn);
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);
// The same for an op with several outputs (e.g. attention output and final state).
std::vector<Tensor> record_multi(const char* name, std::vector<Tensor> outs,
                                 const std::vector<Tensor>& inputs, MultiBackwardFn fn);

// True when any tensor would make an op record a node (grad mode on and requires_grad).
bool any_requires_grad(std::initializer_list<Tensor> ts);

// THE one place where gradients are summed. `slot` receives `g`; g may carry broadcast
// dimensions of `shape`, which are summed away. Checks dtype and shape compatibility.
void accumulate_grad(std::shared_ptr<TensorImpl>& slot, const Tensor& g, const Shape& shape,
                     DType dtype, const char* op, bool owned_slot);

// Runs backward from `root` (seeded with `grad`, default ones for a scalar).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Gradient-ready hook (data-parallel overlap, parallel/data_parallel.h): while a
// GradReadyHookGuard lives, the OUTERMOST run_backward of this thread calls hook(leaf) once
// per leaf of its graph as soon as every node with an edge to that leaf has run, i.e. when
// nothing later in this backward can add to leaf->grad (which may still be undefined if no
// node produced a gradient). Leaves reached only inside a nested backward (activation
// recomputation re-runs a block inside the outer one) are not reported: the outer graph
// cannot tell when they are final. Guards do not nest.
using GradReadyHook = std::function<void(TensorImpl* leaf)>;
class GradReadyHookGuard {
 public:
  explicit GradReadyHookGuard(GradReadyHook hook);
  ~GradReadyHookGuard();
  GradReadyHookGuard(const GradReadyHookGuard&) = delete;
  GradReadyHookGuard& operator=(const GradReadyHookGuard&) = delete;
};

bool grad_mode_enabled();
// Disables recording in this thread for its lifetime (evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};
// Enables recording in this thread for its lifetime: the re-run of a checkpointed function
// inside backward (core/ops/checkpoint.cpp), which the engine runs under no-grad.
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;
 private:
  bool prev_;
};

}  // namespace skein
