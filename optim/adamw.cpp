// adamw.cpp — AdamW: hyper-parameter checks and the per-parameter decisions; the fused update
// (one pass over p, g, m, v) is the kernel of the parameter's device (core/cpu/adamw.cpp, core/cuda/).
// reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
#include "optim/adamw.h"
#include <cmath>
#include "core/kernels/kernels.h"

namespace skein {

AdamW::AdamW(NamedParams params, AdamWOptions options)
    : Optimizer(std::move(params), options.lr, "AdamW"), opt_(std::move(options)) {
  SKEIN_CHECK(opt_.beta1 >= 0 && opt_.beta1 < 1 && opt_.beta2 >= 0 && opt_.beta2 < 1,
              "AdamW: betas must lie in [0, 1), got (", opt_.beta1, ", ", opt_.beta2, ")");
  SKEIN_CHECK(opt_.eps >= 0 && std::isfinite(opt_.eps), "AdamW: eps must be finite and >= 0, got ", opt_.eps);
  SKEIN_CHECK(opt_.weight_decay >= 0 && std::isfinite(opt_.weight_decay),
              "AdamW: weight_decay must be finite and >= 0, got ", opt_.weight_decay);
  SKEIN_CHECK(opt_.decay != nullptr, "AdamW: the decay filter is empty");
  for (const auto& [name, p] : this->params()) decay_.push_back(opt_.weight_decay > 0 && opt_.decay(name, p));
  exp_avg_ = add_buffer("exp_avg");
  exp_avg_sq_ = add_buffer("exp_avg_sq");
  steps_ = add_counter("step");
}

void AdamW::update(size_t i, const Tensor& param, const Tensor& grad) {
  const int64_t t = ++counter(steps_, i);
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(t));
  const double decay_mul = decay_[i] ? 1.0 - lr() * opt_.weight_decay : 1.0;
  const Tensor& m = buffer(exp_avg_, i);
  const Tensor& v = buffer(exp_avg_sq_, i);
  SKEIN_CHECK(grad.device() == param.device() && m.device() == param.device(), "AdamW.step: parameter ",
              i, " is on ", device_name(param.device()), " but its gradient or state is on ",
              device_name(grad.device()), "/", device_name(m.device()));
  kern::kernels(param.device()).adamw(param.dtype(), param.raw_data(), grad.raw_data(), m.raw_data(),
                                      v.raw_data(), param.numel(), opt_.beta1, opt_.beta2, opt_.eps,
                                      lr() / bc1, std::sqrt(bc2), decay_mul);
}

}  // namespace skein
