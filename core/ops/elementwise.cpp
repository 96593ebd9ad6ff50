// elementwise.cpp — broadcasting binary ops, unary math, where / masked_fill, and the in-place
// helpers. Each op: shape rule, the map kernel of its device (kern::MapOp), backward, side by side.
#include <cmath>
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {
namespace {

using kern::MapOp;
using ops::broadcast_shape;
using ops::launch_map;

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  SKEIN_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", dtype_name(a.dtype()), " ",
              shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}

void check_floating(const Tensor& a, const char* op) {
  SKEIN_CHECK(is_floating(a.dtype()), op, ": dtype ", dtype_name(a.dtype()),
              " is not supported (need f32 or f64)");
}

// out = op(a, b) with broadcasting; out has a's dtype, on their (common) device.
Tensor binary_map(MapOp op, const Tensor& a, const Tensor& b, const char* name, double s0 = 0) {
  Device dev = ops::common_device(name, {a, b});
  check_same_dtype(a, b, name);
  check_floating(a, name);
  Tensor out = Tensor::empty(broadcast_shape(a.shape(), b.shape(), name), a.dtype(), dev);
  launch_map(op, out, {a, b}, s0);
  return out;
}

Tensor unary_map(MapOp op, const Tensor& a, const char* name, double s0 = 0, double s1 = 0) {
  SKEIN_CHECK(a.defined(), name, ": undefined tensor");
  check_floating(a, name);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  launch_map(op, out, {a}, s0, s1);
  return out;
}

// A unary op y = f(x) whose backward is the map `dop`(g, x) = g * f'(x).
Tensor unary_op(MapOp op, MapOp dop, const char* name, const Tensor& a, double s0 = 0) {
  Tensor out = unary_map(op, a, name, s0);
  if (!any_requires_grad({a})) return out;
  return record(name, out, {a}, [a, dop, name, s0](const Tensor& g) {
    return std::vector<Tensor>{binary_map(dop, g, a.detach(), name, s0)};
  });
}

}  // namespace

// ---- binary ----
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(MapOp::add, a, b, "add");
  return record("add", out, {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(MapOp::sub, a, b, "sub");
  bool need_b = any_requires_grad({b});
  return record("sub", out, {a, b}, [need_b](const Tensor& g) {
    return std::vector<Tensor>{g, need_b ? neg(g) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(MapOp::mul, a, b, "mul");
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("mul", out, {a, b}, [a, b, need_a, need_b](const Tensor& g) {
    return std::vector<Tensor>{need_a ? mul(g, b) : Tensor(), need_b ? mul(g, a) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(MapOp::div, a, b, "div");
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("div", out, {a, b}, [b, out, need_a, need_b](const Tensor& g) {
    Tensor ga = need_a ? div(g, b) : Tensor();
    // d(a/b)/db = -out / b
    Tensor gb = need_b ? neg(div(mul(g, out.detach()), b)) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor add(const Tensor& a, double s) {
  return record("add_scalar", unary_map(MapOp::add_scalar, a, "add_scalar", s), {a},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double s) {
  return record("mul_scalar", unary_map(MapOp::mul_scalar, a, "mul_scalar", s), {a},
                [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor neg(const Tensor& a) {
  return record("neg", unary_map(MapOp::neg, a, "neg"), {a},
                [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

// ---- unary math (the derivatives sit beside each function in core/kernels/map_math.h) ----
Tensor exp(const Tensor& a) {
  Tensor out = unary_map(MapOp::exp, a, "exp");
  return record("exp", out, {a}, [out](const Tensor& g) { return std::vector<Tensor>{mul(g, out.detach())}; });
}
Tensor log(const Tensor& a) { return unary_op(MapOp::log, MapOp::d_log, "log", a); }
Tensor sqrt(const Tensor& a) { return unary_op(MapOp::sqrt, MapOp::d_sqrt, "sqrt", a); }
Tensor rsqrt(const Tensor& a) { return unary_op(MapOp::rsqrt, MapOp::d_rsqrt, "rsqrt", a); }
Tensor pow(const Tensor& a, double p) { return unary_op(MapOp::pow, MapOp::d_pow, "pow", a, p); }
Tensor tanh(const Tensor& a) { return unary_op(MapOp::tanh, MapOp::d_tanh, "tanh", a); }
Tensor sigmoid(const Tensor& a) { return unary_op(MapOp::sigmoid, MapOp::d_sigmoid, "sigmoid", a); }
Tensor silu(const Tensor& a) { return unary_op(MapOp::silu, MapOp::d_silu, "silu", a); }
Tensor gelu(const Tensor& a) { return unary_op(MapOp::gelu, MapOp::d_gelu, "gelu", a); }  // x * Phi(x)
Tensor relu(const Tensor& a) { return unary_op(MapOp::relu, MapOp::d_relu, "relu", a); }
Tensor elu(const Tensor& a) { return unary_op(MapOp::elu, MapOp::d_elu, "elu", a); }
// softplus(x) = max(x, 0) + log1p(e^-|x|); d/dx = σ(x). log σ(x) = -softplus(-x); d/dx = σ(-x).
Tensor softplus(const Tensor& a) { return unary_op(MapOp::softplus, MapOp::d_softplus, "softplus", a); }
Tensor log_sigmoid(const Tensor& a) {
  return unary_op(MapOp::log_sigmoid, MapOp::d_log_sigmoid, "log_sigmoid", a);
}

// ---- where / masked_fill ----
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Device dev = ops::common_device("where", {cond, a, b});
  check_same_dtype(a, b, "where");
  check_floating(a, "where");
  Tensor c = cond.to(a.dtype());  // 0 / nonzero as the value type; a select keeps a and b exact
  Shape shape = broadcast_shape(broadcast_shape(c.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), dev);
  launch_map(MapOp::where, out, {c, a, b});
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("where", out, {a, b}, [c, need_a, need_b](const Tensor& g) {
    Tensor z = zeros({}, g.dtype(), g.device());
    return std::vector<Tensor>{need_a ? where(c, g, z) : Tensor(), need_b ? where(c, z, g) : Tensor()};
  });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  return where(mask, full({}, value, a.dtype(), a.device()), a);
}

// ---- in place (no autograd) ----
void fill_(Tensor& t, double value) {
  SKEIN_CHECK(t.defined(), "fill_: undefined tensor");
  launch_map(MapOp::fill, t, {}, value);
}

void copy_(Tensor& dst, const Tensor& src) {
  SKEIN_CHECK(dst.defined() && src.defined(), "copy_: undefined tensor");
  Shape bs = broadcast_shape(dst.shape(), src.shape(), "copy_");
  SKEIN_CHECK(bs == dst.shape(), "copy_: source ", shape_str(src.shape()),
              " does not broadcast to destination ", shape_str(dst.shape()));
  if (src.device() == dst.device()) {
    launch_map(MapOp::copy, dst, {src});
    return;
  }
  // Across devices: the bytes travel contiguous, in the destination's dtype.
  launch_map(MapOp::copy, dst, {src.detach().to(dst.dtype()).contiguous().to(dst.device())});
}

void add_(Tensor dst, const Tensor& src, double alpha) {
  ops::common_device("add_", {dst, src});
  check_same_dtype(dst, src, "add_");
  check_floating(dst, "add_");
  SKEIN_CHECK(broadcast_shape(dst.shape(), src.shape(), "add_") == dst.shape(), "add_: source ",
              shape_str(src.shape()), " does not broadcast to destination ", shape_str(dst.shape()));
  launch_map(MapOp::axpy, dst, {dst, src}, alpha);
}

void mul_(Tensor dst, double s) {
  SKEIN_CHECK(dst.defined(), "mul_: undefined tensor");
  check_floating(dst, "mul_");
  launch_map(MapOp::mul_scalar, dst, {dst}, s);
}

}  // namespace skein
