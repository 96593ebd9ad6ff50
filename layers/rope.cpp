// rope.cpp — RoPE scaling types (see rope.h); each function mirrors its transformers twin in
// modeling_rope_utils.py (_compute_linear_scaling_rope_parameters, _compute_dynamic_ntk_parameters,
// _compute_llama3_parameters, _compute_yarn_parameters).
#include "layers/rope.h"
#include <algorithm>
#include <cmath>
#include <numbers>

namespace skein {
namespace {

constexpr double kPi = std::numbers::pi;

RopeFreqs linear_freqs(const ModelConfig& c, int64_t dim) {
  RopeFreqs f = RopeFreqs::plain(dim, c.rope_theta);
  for (double& v : f.inv_freq) v /= c.rope_factor;
  return f;
}

// The base grows as base * (factor * L / L0 - (factor - 1))^(dim / (dim - 2)) once L > L0.
RopeFreqs dynamic_freqs(const ModelConfig& c, int64_t dim, int64_t seq_len) {
  const double L0 = static_cast<double>(c.rope_original_max_positions);
  const double L = std::max(static_cast<double>(seq_len), L0);
  const double base = c.rope_theta * std::pow(c.rope_factor * L / L0 - (c.rope_factor - 1.0),
                                              static_cast<double>(dim) / static_cast<double>(dim - 2));
  return RopeFreqs::plain(dim, base);
}

// Wavelengths above L0 / low_freq_factor are divided by factor, below L0 / high_freq_factor kept,
// and in between interpolated smoothly.
RopeFreqs llama3_freqs(const ModelConfig& c, int64_t dim) {
  RopeFreqs f = RopeFreqs::plain(dim, c.rope_theta);
  const double L0 = static_cast<double>(c.rope_original_max_positions);
  const double low_wavelen = L0 / c.rope_low_freq_factor, high_wavelen = L0 / c.rope_high_freq_factor;
  for (double& v : f.inv_freq) {
    const double wavelen = 2 * kPi / v;
    const double scaled = wavelen > low_wavelen ? v / c.rope_factor : v;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    if (medium) {
      const double smooth = (L0 / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
      v = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
    } else {
      v = scaled;
    }
  }
  return f;
}

// Dimensions that turn fewer than beta_slow times over L0 are interpolated (divided by factor),
// more than beta_fast times extrapolated (kept), with a linear ramp in between; cos/sin scaled.
RopeFreqs yarn_freqs(const ModelConfig& c, int64_t dim) {
  const double base = c.rope_theta, L0 = static_cast<double>(c.rope_original_max_positions);
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(dim) * std::log(L0 / (rotations * 2 * kPi)) / (2 * std::log(base));
  };
  double low = correction_dim(c.rope_beta_fast), high = correction_dim(c.rope_beta_slow);
  if (c.rope_truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // transformers: "prevent singularity"
  RopeFreqs f = RopeFreqs::plain(dim, base);
  for (size_t i = 0; i < f.inv_freq.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1 - ramp;  // the share of the unscaled frequency
    const double v = f.inv_freq[i];
    f.inv_freq[i] = v / c.rope_factor * (1 - extrapolation) + v * extrapolation;
  }
  f.attention_factor = c.rope_attention_factor > 0 ? c.rope_attention_factor : yarn_attention_factor(c.rope_factor);
  return f;
}

}  // namespace

bool is_rope_type(const std::string& t) {
  return t == "default" || t == "linear" || t == "dynamic" || t == "llama3" || t == "yarn";
}

double yarn_attention_factor(double factor, double mscale, double mscale_all_dim) {
  auto get = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
  if (mscale != 0 && mscale_all_dim != 0) return get(factor, mscale) / get(factor, mscale_all_dim);
  return get(factor, 1.0);
}

void validate_rope(const ModelConfig& c) {
  SKEIN_CHECK(is_rope_type(c.rope_type), "model.rope_type: '", c.rope_type,
              "' is not one of default, linear, dynamic, llama3, yarn");
  if (c.rope_type == "default") return;
  SKEIN_CHECK(std::isfinite(c.rope_factor) && c.rope_factor >= 1, "model.rope_factor must be >= 1 for rope_type ",
              c.rope_type, ", got ", c.rope_factor);
  if (c.rope_type == "dynamic" || c.rope_type == "llama3" || c.rope_type == "yarn")
    SKEIN_CHECK(c.rope_original_max_positions >= 1, "model.rope_original_max_positions must be >= 1 for rope_type ",
                c.rope_type, ", got ", c.rope_original_max_positions);
  if (c.rope_type == "llama3")
    SKEIN_CHECK(c.rope_low_freq_factor > 0 && c.rope_high_freq_factor > c.rope_low_freq_factor,
                "model.rope_low_freq_factor (", c.rope_low_freq_factor, ") must be > 0 and below model.rope_high_freq_factor (",
                c.rope_high_freq_factor, ")");
  if (c.rope_type == "yarn")
    SKEIN_CHECK(c.rope_beta_fast > 0 && c.rope_beta_slow > 0 && c.rope_attention_factor >= 0,
                "model.rope_beta_fast / rope_beta_slow must be > 0 and model.rope_attention_factor >= 0, got ",
                c.rope_beta_fast, " / ", c.rope_beta_slow, " / ", c.rope_attention_factor);
}

RopeFreqs rope_freqs(const ModelConfig& c, int64_t head_dim, int64_t seq_len) {
  if (c.rope_type == "linear") return linear_freqs(c, head_dim);
  if (c.rope_type == "dynamic") return dynamic_freqs(c, head_dim, seq_len);
  if (c.rope_type == "llama3") return llama3_freqs(c, head_dim);
  if (c.rope_type == "yarn") return yarn_freqs(c, head_dim);
  SKEIN_CHECK(c.rope_type == "default", "model.rope_type: '", c.rope_type, "' is not implemented");
  return RopeFreqs::plain(head_dim, c.rope_theta);
}

}  // namespace skein
