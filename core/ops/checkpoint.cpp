// checkpoint.cpp — activation recomputation (core/ops.h): run a function without keeping its
// intermediates, and re-run it with grad inside backward.
// reference: Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016 (the
// re-entrant form of torch.utils.checkpoint).
#include <utility>
#include "core/ops.h"

namespace skein {
namespace {

using RngStates = std::vector<std::pair<uint64_t, uint64_t>>;  // (seed, offset) per generator

RngStates save_rngs(const std::vector<Generator*>& rngs) {
  RngStates s;
  for (const Generator* g : rngs) s.emplace_back(g->seed(), g->offset());
  return s;
}

void load_rngs(const std::vector<Generator*>& rngs, const RngStates& s) {
  for (size_t i = 0; i < rngs.size(); ++i) rngs[i]->set_state(s[i].first, s[i].second);
}

}  // namespace

Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& rngs) {
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!grad_mode_enabled() || !any) return fn(inputs);
  for (const Generator* g : rngs) SKEIN_CHECK(g, "checkpoint: a null generator was given");
  const RngStates before = save_rngs(rngs);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  SKEIN_CHECK(out.defined() && is_floating(out.dtype()), "checkpoint: the function must return a floating tensor");
  const RngStates after = save_rngs(rngs);
  // The saved inputs without their history (the node's edges hold that).
  std::vector<Tensor> saved;
  std::vector<bool> wants;
  for (const Tensor& t : inputs) {
    saved.push_back(t.defined() ? t.detach() : t);
    wants.push_back(t.defined() && t.requires_grad());
  }
  return record("checkpoint", out, inputs, [fn, saved, wants, rngs, before, after](const Tensor& g) {
    std::vector<Tensor> xs;
    for (size_t i = 0; i < saved.size(); ++i) {
      Tensor x = saved[i].defined() ? saved[i].detach() : saved[i];
      if (wants[i]) x.requires_grad_(true);
      xs.push_back(x);
    }
    Tensor y;
    load_rngs(rngs, before);
    {
      EnableGradGuard grad_on;
      y = fn(xs);
    }
    load_rngs(rngs, after);
    SKEIN_CHECK(y.shape() == g.shape(), "checkpoint: the re-run returned ", shape_str(y.shape()),
                " but the forward returned ", shape_str(g.shape()), " (the function must be deterministic)");
    // The parameters fn reads are leaves: their gradients accumulate into .grad here, as
    // they would in the outer backward.
    if (y.requires_grad()) run_backward(y, g, /*retain_graph=*/false);
    std::vector<Tensor> grads;
    for (size_t i = 0; i < xs.size(); ++i) grads.push_back(wants[i] ? xs[i].grad() : Tensor());
    return grads;
  });
}

}  // namespace skein
