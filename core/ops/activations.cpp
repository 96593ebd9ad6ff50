// activations.cpp — l2_normalize, the key norm of the linear-attention mixers, with its fused
// backward (softplus and log_sigmoid, the stable gate functions, are map ops in elementwise.cpp).
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {

// y = x / sqrt(Σ x² + eps) over the last dim. Backward: dx = (g - y (g·y)) / n.
Tensor l2_normalize(const Tensor& a, double eps) {
  SKEIN_CHECK(a.defined() && a.dim() >= 1 && is_floating(a.dtype()), "l2_normalize: need a floating "
              "tensor with a last dim, got ", a.defined() ? shape_str(a.shape()) : "undefined", " ",
              a.defined() ? dtype_name(a.dtype()) : "");
  const int64_t D = a.shape().back(), rows = D ? a.numel() / D : 0;
  const Device dev = a.device();
  // A head-split view is normalised in its memory order (no copy); y keeps a's layout.
  const Shape order = ops::row_op_order(a), inv = ops::inverse_order(order);
  Tensor x = order.empty() ? ops::contiguous_data(a) : a.detach().permute(order);  // contiguous
  Tensor y_mem = Tensor::empty(x.shape(), a.dtype(), dev);
  Tensor norm = Tensor::empty({rows}, a.dtype(), dev);
  kern::kernels(dev).l2_normalize_fwd(a.dtype(), x.raw_data(), y_mem.raw_data(), norm.raw_data(), rows, D, eps);
  Tensor y = order.empty() ? y_mem : y_mem.permute(inv);
  return record("l2_normalize", y, {a}, [y_mem, norm, D, rows, order, inv](const Tensor& g_in) {
    Tensor g = (order.empty() ? g_in : g_in.permute(order)).contiguous();  // no copy in y's layout
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    ops::kernels_for("l2_normalize backward", {g, y_mem}).l2_normalize_bwd(
        g.dtype(), g.raw_data(), y_mem.raw_data(), norm.raw_data(), dx.raw_data(), rows, D);
    return std::vector<Tensor>{order.empty() ? dx : dx.permute(inv)};
  });
}

}  // namespace skein
