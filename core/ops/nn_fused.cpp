// nn_fused.cpp — rms_norm and rope: one pass forward, one pass backward each (the kernels are
// core/cpu/norm_rope.cpp and core/cuda/rows.cu).
#include <cmath>
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {

// reference: Zhang & Sennrich, "Root Mean Square Layer Normalization", 2019.
// y = x * r * g with r = rsqrt(mean(x^2) + eps). Backward, with xh = x * r:
//   dg = Σ_rows dy * xh;   dx = r * (dy*g - xh * mean(dy*g*xh))
Tensor rms_norm(const Tensor& x_in, const Tensor& gain_in, double eps) {
  SKEIN_CHECK(x_in.dim() >= 1 && gain_in.dim() == 1 && gain_in.shape()[0] == x_in.shape().back(),
              "rms_norm: gain ", shape_str(gain_in.shape()), " does not match the last dim of x ",
              shape_str(x_in.shape()));
  SKEIN_CHECK(x_in.dtype() == gain_in.dtype(), "rms_norm: dtypes differ: x ", dtype_name(x_in.dtype()),
              ", gain ", dtype_name(gain_in.dtype()));
  const Device dev = ops::common_device("rms_norm", {x_in, gain_in});
  SKEIN_CHECK(is_floating(x_in.dtype()), "rms_norm: x must be f32 or f64, got ", dtype_name(x_in.dtype()));
  const int64_t D = x_in.shape().back(), rows = D ? x_in.numel() / D : 0;
  Tensor x = ops::contiguous_data(x_in), gain = ops::contiguous_data(gain_in);
  Tensor y = Tensor::empty(x_in.shape(), x_in.dtype(), dev);
  Tensor rstd = Tensor::empty({rows}, x_in.dtype(), dev);
  kern::kernels(dev).rms_norm_fwd(x.dtype(), x.raw_data(), gain.raw_data(), y.raw_data(), rstd.raw_data(),
                                  rows, D, eps);
  if (!any_requires_grad({x_in, gain_in})) return y;
  bool need_x = x_in.requires_grad(), need_g = gain_in.requires_grad();
  return record("rms_norm", y, {x_in, gain_in}, [x, gain, rstd, D, rows, need_x, need_g](const Tensor& g_in) {
    Tensor dy = g_in.contiguous();
    const Device dev = x.device();
    const auto& k = ops::kernels_for("rms_norm backward", {dy, x});
    Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype(), dev) : Tensor();
    Tensor dg = need_g ? Tensor::empty({D}, x.dtype(), dev) : Tensor();
    const size_t ws_bytes = need_g ? k.rms_norm_bwd_workspace(x.dtype(), rows, D) : 0;
    Tensor ws = Tensor::empty({static_cast<int64_t>((ws_bytes + 7) / 8)}, DType::f64, dev);
    k.rms_norm_bwd(x.dtype(), x.raw_data(), gain.raw_data(), rstd.raw_data(), dy.raw_data(),
                   need_x ? dx.raw_data() : nullptr, need_g ? dg.raw_data() : nullptr, ws.raw_data(), rows, D);
    return std::vector<Tensor>{dx, dg};
  });
}

namespace {
// Rotates x: [rows = outer*T, D] by angle(t, i) = (pos_offset + t) * inv_freq[i], scaled by
// `scale`; sign = -1 rotates back (the transpose: rope's backward). inv_freq: [D/2] f64 on x's device.
Tensor rope_apply(const Tensor& x_in, const Tensor& inv_freq, double scale, int64_t pos_offset, double sign) {
  const int64_t D = x_in.shape().back(), T = x_in.shape()[x_in.dim() - 2];
  const int64_t rows = D ? x_in.numel() / D : 0;
  Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  kern::kernels(x.device()).rope(x.dtype(), x.raw_data(), y.raw_data(), rows, T, D,
                                 static_cast<const double*>(inv_freq.raw_data()), scale, pos_offset, sign);
  return y;
}
}  // namespace

RopeFreqs RopeFreqs::plain(int64_t D, double theta) {
  RopeFreqs f;
  f.inv_freq.resize(static_cast<size_t>(D / 2));
  for (int64_t i = 0; i < D / 2; ++i)
    f.inv_freq[static_cast<size_t>(i)] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
  return f;
}

// reference: Su et al., "RoFormer", 2021; half-split pairing as in GPT-NeoX / HF Llama.
// y = a R(θ) x with R a rotation per pair, so the backward is a R(θ)ᵀ g = a R(-θ) g.
Tensor rope(const Tensor& x, const RopeFreqs& freqs, int64_t pos_offset) {
  SKEIN_CHECK(x.dim() >= 2 && x.shape().back() % 2 == 0, "rope: x must be [..., T, D] with even D, got ",
              shape_str(x.shape()));
  SKEIN_CHECK(is_floating(x.dtype()), "rope: x must be floating, got ", dtype_name(x.dtype()));
  const int64_t D = x.shape().back();
  SKEIN_CHECK(static_cast<int64_t>(freqs.inv_freq.size()) == D / 2, "rope: ", freqs.inv_freq.size(),
              " frequencies for x ", shape_str(x.shape()), " (needs D/2 = ", D / 2, ")");
  Tensor inv_freq = from_vector(freqs.inv_freq, {D / 2}, DType::f64);
  if (x.device() != inv_freq.device()) inv_freq = inv_freq.to(x.device());
  const double scale = freqs.attention_factor;
  Tensor y = rope_apply(x.detach(), inv_freq, scale, pos_offset, 1.0);
  return record("rope", y, {x}, [inv_freq, scale, pos_offset](const Tensor& g) {
    return std::vector<Tensor>{rope_apply(g, inv_freq, scale, pos_offset, -1.0)};
  });
}

Tensor rope(const Tensor& x, double theta, int64_t pos_offset) {
  SKEIN_CHECK(x.dim() >= 2, "rope: x must be [..., T, D] with even D, got ", shape_str(x.shape()));
  return rope(x, RopeFreqs::plain(x.shape().back(), theta), pos_offset);
}

}  // namespace skein
