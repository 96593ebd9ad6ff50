// adamw.h — AdamW: Adam with decoupled weight decay, one fused pass per parameter.
// reference: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019;
// reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
// Per parameter p with gradient g, at its t-th update (t counts only steps where p had a grad):
//   p -= lr * wd * p                       (only where the decay filter says so)
//   m  = b1 m + (1 - b1) g
//   v  = b2 v + (1 - b2) g²
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// State dict: "exp_avg.<name>", "exp_avg_sq.<name>" (shaped like the parameter),
// "step.<name>" (0-d i64, t above) and the global "step".
#pragma once
#include "optim/optimizer.h"

namespace skein {

struct AdamWOptions {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  DecayFilter decay = decay_by_dim;  // default: matrices decay, 1-D and 0-d parameters never
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(NamedParams params, AdamWOptions options = {});
  const AdamWOptions& options() const { return opt_; }
  // Whether params()[i] receives weight decay (decided once, at construction).
  bool decays(size_t i) const { return decay_[i]; }

 protected:
  void update(size_t i, const Tensor& param, const Tensor& grad) override;

 private:
  AdamWOptions opt_;
  std::vector<bool> decay_;
  int exp_avg_, exp_avg_sq_, steps_;
};

}  // namespace skein
