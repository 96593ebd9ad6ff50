// autograd.cpp — the engine: record, accumulate_grad, run_backward, grad mode.
#include "core/autograd.h"
#include <unordered_map>
#include <unordered_set>
#include "core/ops.h"

namespace skein {
namespace {
thread_local bool t_grad_enabled = true;
thread_local GradReadyHook* t_grad_ready = nullptr;  // GradReadyHookGuard's hook
thread_local int t_backward_depth = 0;               // nesting of run_backward (recompute)

struct DepthGuard {
  DepthGuard() { ++t_backward_depth; }
  ~DepthGuard() { --t_backward_depth; }
};
}  // namespace

GradReadyHookGuard::GradReadyHookGuard(GradReadyHook hook) {
  SKEIN_ASSERT(t_grad_ready == nullptr, "GradReadyHookGuard: guards do not nest");
  t_grad_ready = new GradReadyHook(std::move(hook));
}
GradReadyHookGuard::~GradReadyHookGuard() {
  delete t_grad_ready;
  t_grad_ready = nullptr;
}

bool grad_mode_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { t_grad_enabled = prev_; }

bool any_requires_grad(std::initializer_list<Tensor> ts) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : ts)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::vector<Tensor> record_multi(const char* name, std::vector<Tensor> outs,
                                 const std::vector<Tensor>& inputs, MultiBackwardFn fn) {
  if (!t_grad_enabled) return outs;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return outs;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->num_outputs = static_cast<int>(outs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn()) {
        e.fn = t.grad_fn();
        e.output_nr = t.impl()->output_nr;
      } else {
        e.leaf = t.impl_ptr();
      }
      e.shape = t.shape();
      e.dtype = t.dtype();
    }
    node->inputs.push_back(std::move(e));
  }
  node->backward = std::move(fn);
  // Each result is a fresh handle on the same storage: the closure may have captured the
  // outputs themselves, and a handle that owned the node which owns it would be a cycle.
  for (size_t i = 0; i < outs.size(); ++i) {
    auto impl = std::make_shared<TensorImpl>(*outs[i].impl());
    impl->requires_grad = is_floating(impl->dtype);
    impl->grad_fn = impl->requires_grad ? node : nullptr;
    impl->output_nr = static_cast<int>(i);
    outs[i] = Tensor(std::move(impl));
  }
  return outs;
}

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!fn) return out;
  return record_multi(name, {std::move(out)}, inputs,
                      [fn = std::move(fn)](const std::vector<Tensor>& g) { return fn(g[0]); })[0];
}

Tensor record(const char* name, Tensor out, std::initializer_list<Tensor> inputs, BackwardFn fn) {
  return record(name, std::move(out), std::vector<Tensor>(inputs), std::move(fn));
}

void accumulate_grad(std::shared_ptr<TensorImpl>& slot, const Tensor& g_in, const Shape& shape,
                     DType dtype, const char* op, bool owned_slot) {
  SKEIN_ASSERT(g_in.dtype() == dtype, op, ": gradient dtype ", dtype_name(g_in.dtype()),
               " differs from input dtype ", dtype_name(dtype));
  Tensor g = g_in;
  if (g.shape() != shape) {
    // Sum away the dimensions that broadcasting added or stretched.
    const Shape& gs = g.shape();
    SKEIN_ASSERT(gs.size() >= shape.size(), op, ": gradient ", shape_str(gs),
                 " cannot reduce to input ", shape_str(shape));
    size_t lead = gs.size() - shape.size();
    Shape dims;
    for (size_t i = 0; i < gs.size(); ++i) {
      if (i < lead) { dims.push_back(static_cast<int64_t>(i)); continue; }
      int64_t want = shape[i - lead];
      SKEIN_ASSERT(want == gs[i] || want == 1, op, ": gradient ", shape_str(gs),
                   " does not broadcast from input ", shape_str(shape));
      if (want == 1 && gs[i] != 1) dims.push_back(static_cast<int64_t>(i));
    }
    g = dims.empty() ? g : sum(g, dims, /*keepdim=*/true);
    g = g.reshape(shape);
  }
  if (!slot) {
    // Owned slots (leaf .grad) get a private copy: later in-place updates (clipping,
    // accumulation) must never write through to a tensor that someone else holds.
    slot = owned_slot ? g.clone().impl_ptr() : g.impl_ptr();
  } else if (owned_slot) {
    add_(Tensor(slot), g);
  } else {
    slot = add(Tensor(slot), g).impl_ptr();
  }
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  SKEIN_CHECK(root.requires_grad(), "backward: the tensor does not require grad");
  Tensor seed = grad;
  if (!seed.defined()) {
    SKEIN_CHECK(root.numel() == 1, "backward: the gradient may be omitted only for a one-element "
                "tensor, this one has shape ", shape_str(root.shape()));
    seed = ones(root.shape(), root.dtype(), root.device());
  }
  SKEIN_CHECK(seed.shape() == root.shape(), "backward: gradient shape ", shape_str(seed.shape()),
              " differs from tensor shape ", shape_str(root.shape()));
  NoGradGuard no_grad;
  DepthGuard depth;
  GradReadyHook* ready = t_backward_depth == 1 ? t_grad_ready : nullptr;
  if (!root.grad_fn()) {  // a leaf
    accumulate_grad(root.impl()->grad, seed, root.shape(), root.dtype(), "backward", true);
    if (ready) (*ready)(root.impl());
    return;
  }
  // Reverse topological order by an iterative depth-first post-order walk.
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root.grad_fn().get(), 0}};
  seen.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node* child = node->inputs[next++].fn.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  // Gradients waiting for each node, one slot per output.
  std::unordered_map<Node*, std::vector<std::shared_ptr<TensorImpl>>> pending;
  auto slots = [&](Node* n) -> std::vector<std::shared_ptr<TensorImpl>>& {
    auto& v = pending[n];
    v.resize(n->num_outputs);
    return v;
  };
  slots(root.grad_fn().get())[root.impl()->output_nr] = seed.impl_ptr();
  // With a ready hook: how many edges of not-yet-run nodes still lead to each leaf.
  std::unordered_map<TensorImpl*, int> leaf_edges;
  if (ready)
    for (Node* n : order)
      for (const Edge& e : n->inputs)
        if (e.leaf) ++leaf_edges[e.leaf.get()];
  auto leaves_done = [&](Node* node) {  // node has run (or was skipped): report final leaves
    if (!ready) return;
    for (const Edge& e : node->inputs)
      if (e.leaf && --leaf_edges[e.leaf.get()] == 0) (*ready)(e.leaf.get());
  };
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) {
      leaves_done(node);
      continue;
    }
    std::vector<Tensor> g;
    for (auto& impl : found->second) g.emplace_back(impl);
    pending.erase(found);
    SKEIN_CHECK(node->backward, "backward: trying to go through the graph of '", node->name,
                "' a second time; its saved tensors were freed (use retain_graph=true)");
    std::vector<Tensor> grads = node->backward(g);
    if (!retain_graph) node->backward = nullptr;  // frees the saved tensors now
    SKEIN_ASSERT(grads.size() == node->inputs.size(), node->name, ": backward returned ",
                 grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& e = node->inputs[i];
      if (!e.active() || !grads[i].defined()) continue;
      if (e.fn) accumulate_grad(slots(e.fn.get())[e.output_nr], grads[i], e.shape, e.dtype, node->name, false);
      else accumulate_grad(e.leaf->grad, grads[i], e.shape, e.dtype, node->name, true);
    }
    leaves_done(node);
  }
}

}  // namespace skein
