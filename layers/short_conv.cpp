// short_conv.cpp — short convolutions of the L and M layers (see short_conv.h).
#include "layers/short_conv.h"
#include <cmath>

namespace skein {

bool uses_short_conv(const ModelConfig& cfg, const std::string& variant, bool mom) {
  SKEIN_CHECK(cfg.short_conv == "auto" || cfg.short_conv == "true" || cfg.short_conv == "false",
              "model.short_conv: '", cfg.short_conv, "' must be auto, true or false");
  SKEIN_CHECK(cfg.conv_size >= 1, "model.conv_size must be >= 1, got ", cfg.conv_size);
  if (cfg.short_conv == "auto") return mom || variant == "delta" || variant == "gated_delta";
  return cfg.short_conv == "true";
}

Tensor short_conv_init(int64_t channels, int64_t K, Generator& gen, DType dtype) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(K));
  return uniform({channels, K}, gen, -bound, bound).to(dtype);
}

std::vector<Tensor> run_short_convs(const ModelParallel& par, const std::vector<Tensor>& xs,
                                    const std::vector<Tensor>& weights, std::vector<Tensor>* states) {
  SKEIN_ASSERT(xs.size() == weights.size() && !xs.empty(), "run_short_convs: streams and weights");
  const int64_t width = weights[0].size(1) - 1;
  std::vector<Tensor> prefixes;
  if (states) {
    if (states->size() != xs.size()) states->assign(xs.size(), Tensor());
    prefixes = *states;
  } else {
    prefixes = par.conv_prefixes(xs, width);
  }
  std::vector<Tensor> out;
  for (size_t i = 0; i < xs.size(); ++i) {
    out.push_back(short_conv(xs[i], weights[i], prefixes[i], true));
    if (states) (*states)[i] = short_conv_tail(xs[i].detach(), prefixes[i], width).detach();
  }
  return out;
}

}  // namespace skein
