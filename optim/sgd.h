// sgd.h — stochastic gradient descent with momentum, PyTorch semantics.
// reference: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html (dampening 0)
// Per parameter p with gradient g:
//   g   = g + wd * p                       (only where the decay filter says so)
//   buf = mu * buf + g                     (buf starts at 0, so the first buf is g)
//   d   = nesterov ? g + mu * buf : buf    (d = g when mu == 0)
//   p  -= lr * d
// State dict: "momentum.<name>" (shaped like the parameter; only when mu > 0) and "step".
#pragma once
#include "optim/optimizer.h"

namespace skein {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;             // needs momentum > 0
  DecayFilter decay = decay_by_dim;  // which parameters weight_decay applies to
};

class SGD : public Optimizer {
 public:
  explicit SGD(NamedParams params, SGDOptions options = {});
  const SGDOptions& options() const { return opt_; }
  bool decays(size_t i) const { return decay_[i]; }

 protected:
  void update(size_t i, const Tensor& param, const Tensor& grad) override;

 private:
  SGDOptions opt_;
  std::vector<bool> decay_;
  int momentum_ = -1;  // buffer slot, -1 when momentum == 0
};

}  // namespace skein
