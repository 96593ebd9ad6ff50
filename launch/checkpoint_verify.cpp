// checkpoint_verify.cpp — metadata checksum, finiteness, config compatibility (see
// checkpoint_verify.h).
#include "launch/checkpoint_verify.h"
#include <cmath>
#include <set>
#include "configs/loader.h"
#include "configs/registry.h"
#include "core/error.h"
#include "launch/metrics.h"

namespace skein {

uint32_t meta_checksum(int64_t step, const std::string& config_yaml, const std::map<std::string, int64_t>& counters) {
  std::string text = "step=" + std::to_string(step) + "\n" + config_yaml + "\n";
  for (const auto& [name, v] : counters) text += name + "=" + std::to_string(v) + "\n";
  return crc32c(text.data(), text.size());
}

int64_t first_non_finite(const Tensor& in, double max_abs) {
  if (in.dtype() == DType::bf16) return first_non_finite(in.to(DType::f32), max_abs);  // widened exactly
  if (in.dtype() != DType::f32 && in.dtype() != DType::f64) return -1;
  const Tensor t = in.contiguous();
  const int64_t n = t.numel();
  if (t.dtype() == DType::f32) {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i]) || std::fabs(p[i]) > max_abs) return i;
  } else {
    const double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i]) || std::fabs(p[i]) > max_abs) return i;
  }
  return -1;
}

std::string non_finite_report(const std::string& group, const std::map<std::string, Tensor>& tensors,
                              double max_abs) {
  for (const auto& [name, t] : tensors) {
    const int64_t i = first_non_finite(t, max_abs);
    if (i < 0) continue;
    const Tensor c = t.contiguous();
    const double v = c.dtype() == DType::f32 ? c.data<float>()[i] : c.data<double>()[i];
    return detail::concat(group, " tensor '", name, "' ", shape_str(t.shape()), " holds ", v, " at element ", i,
                          std::isfinite(v) ? detail::concat(" (beyond ", max_abs, ")") : std::string());
  }
  return "";
}

void check_resume_config(const std::string& stored_yaml, const Config& now, const std::string& source) {
  static const std::set<std::string> kInitOnly = {"model.seed", "model.init_std", "model.scaled_residual_init",
                                                  "model.chunk_size"};
  const Config then = parse_config(stored_yaml, source);
  for (const auto& k : config_schema()) {
    if (k.name.rfind("model.", 0) != 0 || kInitOnly.count(k.name)) continue;
    const ConfigValue a = k.get(then), b = k.get(now);
    SKEIN_CHECK(a == b, "resume from ", source, ": ", k.name, " is ", format_config_value(a),
                " in the checkpoint but ", format_config_value(b),
                " now; it changes the function the weights compute (set it back, or start a new run)");
  }
}

}  // namespace skein
