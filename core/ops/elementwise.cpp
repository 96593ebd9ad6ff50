// elementwise.cpp — broadcasting binary ops, unary math, where / masked_fill, and the
// in-place helpers. Each op: shape rule, forward kernel, backward, side by side.
#include <cmath>
#include "core/backend.h"
#include "core/cpu/loops.h"
#include "core/ops.h"

namespace skein {
namespace {

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SKEIN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
                shape_str(b), " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void check_cpu(const Tensor& t, const char* op) {
  SKEIN_CHECK(t.defined(), op, ": undefined tensor");
  SKEIN_CHECK(t.device() == Device::cpu, op, ": tensor on ", device_name(t.device()),
              " but this op runs on cpu only so far");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  SKEIN_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", dtype_name(a.dtype()), " ",
              shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}

// out[i] = f(a[i], b[i]) with broadcasting; out has a's dtype.
template <typename F>
Tensor binary_map(const Tensor& a, const Tensor& b, const char* op, F f) {
  check_cpu(a, op);
  check_cpu(b, op);
  check_same_dtype(a, b, op);
  Shape shape = broadcast_shape(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(shape, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), op, [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    cpu::for_each_row<3>(shape, {out.strides(), cpu::broadcast_strides(a, shape),
                                 cpu::broadcast_strides(b, shape)}, cpu::kGrain,
                         [&](const std::array<int64_t, 3>& off, int64_t n,
                             const std::array<int64_t, 3>& st) {
      scalar_t* o = po + off[0];
      const scalar_t* x = pa + off[1];
      const scalar_t* y = pb + off[2];
      if (st[1] == 1 && st[2] == 1) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
      } else if (st[1] == 1 && st[2] == 0) {
        const scalar_t yv = *y;
        for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
      } else if (st[1] == 0 && st[2] == 1) {
        const scalar_t xv = *x;
        for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]], y[i * st[2]]);
      }
    });
  });
  return out;
}

template <typename F>
Tensor unary_map(const Tensor& a, const char* op, F f) {
  check_cpu(a, op);
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), op, [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t* pa = a.data<scalar_t>();
    cpu::for_each_row<2>(a.shape(), {out.strides(), a.strides()}, cpu::kGrain,
                         [&](const std::array<int64_t, 2>& off, int64_t n,
                             const std::array<int64_t, 2>& st) {
      scalar_t* o = po + off[0];
      const scalar_t* x = pa + off[1];
      if (st[1] == 1) {
        for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]]);
      }
    });
  });
  return out;
}

// A unary op y = f(x) whose backward is g * df(x) (computed from x by `df`).
template <typename F, typename DF>
Tensor unary_op(const char* op, const Tensor& a, F f, DF df) {
  Tensor out = unary_map(a, op, f);
  bool need = any_requires_grad({a});
  return record(op, out, {a}, need ? BackwardFn([a, df, op](const Tensor& g) {
    return std::vector<Tensor>{binary_map(g, a, op, [df](auto gv, auto xv) { return gv * df(xv); })};
  }) : BackwardFn());
}

}  // namespace

// ---- binary ----
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(a, b, "add", [](auto x, auto y) { return x + y; });
  return record("add", out, {a, b}, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(a, b, "sub", [](auto x, auto y) { return x - y; });
  bool need_b = any_requires_grad({b});
  return record("sub", out, {a, b}, [need_b](const Tensor& g) {
    return std::vector<Tensor>{g, need_b ? neg(g) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(a, b, "mul", [](auto x, auto y) { return x * y; });
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("mul", out, {a, b}, [a, b, need_a, need_b](const Tensor& g) {
    return std::vector<Tensor>{need_a ? mul(g, b) : Tensor(), need_b ? mul(g, a) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_map(a, b, "div", [](auto x, auto y) { return x / y; });
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
  return record("add_scalar", unary_map(a, "add_scalar", [s](auto x) { return x + static_cast<decltype(x)>(s); }),
                {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double s) {
  return record("mul_scalar", unary_map(a, "mul_scalar", [s](auto x) { return x * static_cast<decltype(x)>(s); }),
                {a}, [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor neg(const Tensor& a) {
  return record("neg", unary_map(a, "neg", [](auto x) { return -x; }), {a},
                [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

// ---- unary math ----
Tensor exp(const Tensor& a) {
  Tensor out = unary_map(a, "exp", [](auto x) { return cpu::exp_of(x); });
  return record("exp", out, {a}, [out](const Tensor& g) { return std::vector<Tensor>{mul(g, out.detach())}; });
}

Tensor log(const Tensor& a) {
  return unary_op("log", a, [](auto x) { return std::log(x); },
                  [](auto x) { return decltype(x)(1) / x; });
}

Tensor sqrt(const Tensor& a) {
  return unary_op("sqrt", a, [](auto x) { return std::sqrt(x); },
                  [](auto x) { return decltype(x)(0.5) / std::sqrt(x); });
}

Tensor rsqrt(const Tensor& a) {
  return unary_op("rsqrt", a, [](auto x) { return decltype(x)(1) / std::sqrt(x); },
                  [](auto x) { return decltype(x)(-0.5) / (x * std::sqrt(x)); });
}

Tensor pow(const Tensor& a, double p) {
  return unary_op("pow", a, [p](auto x) { return std::pow(x, static_cast<decltype(x)>(p)); },
                  [p](auto x) { using T = decltype(x); return static_cast<T>(p) * std::pow(x, static_cast<T>(p - 1)); });
}

Tensor tanh(const Tensor& a) {
  return unary_op("tanh", a, [](auto x) { return std::tanh(x); },
                  [](auto x) { auto t = std::tanh(x); return decltype(x)(1) - t * t; });
}

namespace {
template <typename T> T sigmoid_of(T x) { return T(1) / (T(1) + cpu::exp_of(-x)); }
}

Tensor sigmoid(const Tensor& a) {
  return unary_op("sigmoid", a, [](auto x) { return sigmoid_of(x); },
                  [](auto x) { auto s = sigmoid_of(x); return s * (decltype(x)(1) - s); });
}

Tensor silu(const Tensor& a) {
  return unary_op("silu", a, [](auto x) { return x * sigmoid_of(x); },
                  [](auto x) { using T = decltype(x); T s = sigmoid_of(x); return s * (T(1) + x * (T(1) - s)); });
}

Tensor gelu(const Tensor& a) {
  // gelu(x) = x * Phi(x); d/dx = Phi(x) + x * phi(x)
  return unary_op("gelu", a,
                  [](auto x) { using T = decltype(x); return x * T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2))); },
                  [](auto x) {
                    using T = decltype(x);
                    T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
                    T pdf = std::exp(T(-0.5) * x * x) * T(0.3989422804014327);
                    return cdf + x * pdf;
                  });
}

Tensor relu(const Tensor& a) {
  return unary_op("relu", a, [](auto x) { return x > 0 ? x : decltype(x)(0); },
                  [](auto x) { return x > 0 ? decltype(x)(1) : decltype(x)(0); });
}

Tensor elu(const Tensor& a) {
  return unary_op("elu", a, [](auto x) { return x > 0 ? x : std::expm1(x); },
                  [](auto x) { return x > 0 ? decltype(x)(1) : std::exp(x); });
}

// ---- where / masked_fill ----
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_cpu(cond, "where");
  Tensor c = cond.to(a.dtype());  // 0 / nonzero as the value type
  // out = b + c' * (a - b) would lose exactness; select instead.
  Shape shape = broadcast_shape(broadcast_shape(c.shape(), a.shape(), "where"), b.shape(), "where");
  check_same_dtype(a, b, "where");
  Tensor out = Tensor::empty(shape, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "where", [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t *pc = c.data<scalar_t>(), *pa = a.data<scalar_t>(), *pb = b.data<scalar_t>();
    cpu::for_each_row<4>(shape, {out.strides(), cpu::broadcast_strides(c, shape),
                                 cpu::broadcast_strides(a, shape), cpu::broadcast_strides(b, shape)},
                         cpu::kGrain, [&](const std::array<int64_t, 4>& off, int64_t n,
                                          const std::array<int64_t, 4>& st) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i] = pc[off[1] + i * st[1]] != 0 ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
    });
  });
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("where", out, {a, b}, [c, need_a, need_b](const Tensor& g) {
    Tensor z = zeros({}, g.dtype());
    return std::vector<Tensor>{need_a ? where(c, g, z) : Tensor(), need_b ? where(c, z, g) : Tensor()};
  });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  return where(mask, full({}, value, a.dtype()), a);
}

// ---- in place (no autograd) ----
void fill_(Tensor& t, double value) {
  SKEIN_DISPATCH_ALL(t.dtype(), "fill_", [&] {
    if (t.device() != Device::cpu) {
      SKEIN_CHECK(t.dtype() == DType::f32 && t.is_contiguous(), "fill_: cuda supports contiguous f32 only");
      backend(t.device()).fill_f32(static_cast<float*>(t.raw_data()), static_cast<float>(value), t.numel());
      return;
    }
    scalar_t* p = t.data<scalar_t>();
    const scalar_t v = static_cast<scalar_t>(value);
    cpu::for_each_row<1>(t.shape(), {t.strides()}, cpu::kGrain,
                         [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
      if (st[0] == 1) std::fill(p + off[0], p + off[0] + n, v);
      else for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
    });
  });
}

void copy_(Tensor& dst, const Tensor& src) {
  check_cpu(dst, "copy_");
  check_cpu(src, "copy_");
  Shape bs = broadcast_shape(dst.shape(), src.shape(), "copy_");
  SKEIN_CHECK(bs == dst.shape(), "copy_: source ", shape_str(src.shape()),
              " does not broadcast to destination ", shape_str(dst.shape()));
  SKEIN_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using dst_t = scalar_t;
    dst_t* pd = dst.data<dst_t>();
    SKEIN_DISPATCH_ALL(src.dtype(), "copy_", [&] {
      const scalar_t* ps = src.data<scalar_t>();
      cpu::for_each_row<2>(dst.shape(), {dst.strides(), cpu::broadcast_strides(src, dst.shape())},
                           cpu::kGrain, [&](const std::array<int64_t, 2>& off, int64_t n,
                                            const std::array<int64_t, 2>& st) {
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) pd[off[0] + i] = static_cast<dst_t>(ps[off[1] + i]);
        } else {
          for (int64_t i = 0; i < n; ++i) pd[off[0] + i * st[0]] = static_cast<dst_t>(ps[off[1] + i * st[1]]);
        }
      });
    });
  });
}

void add_(Tensor dst, const Tensor& src, double alpha) {
  check_cpu(dst, "add_");
  check_same_dtype(dst, src, "add_");
  SKEIN_CHECK(broadcast_shape(dst.shape(), src.shape(), "add_") == dst.shape(), "add_: source ",
              shape_str(src.shape()), " does not broadcast to destination ", shape_str(dst.shape()));
  SKEIN_DISPATCH_FLOAT(dst.dtype(), "add_", [&] {
    scalar_t* pd = dst.data<scalar_t>();
    const scalar_t* ps = src.data<scalar_t>();
    const scalar_t al = static_cast<scalar_t>(alpha);
    cpu::for_each_row<2>(dst.shape(), {dst.strides(), cpu::broadcast_strides(src, dst.shape())},
                         cpu::kGrain, [&](const std::array<int64_t, 2>& off, int64_t n,
                                          const std::array<int64_t, 2>& st) {
      if (st[0] == 1 && st[1] == 1) {
        for (int64_t i = 0; i < n; ++i) pd[off[0] + i] += al * ps[off[1] + i];
      } else {
        for (int64_t i = 0; i < n; ++i) pd[off[0] + i * st[0]] += al * ps[off[1] + i * st[1]];
      }
    });
  });
}

void mul_(Tensor dst, double s) {
  check_cpu(dst, "mul_");
  SKEIN_DISPATCH_FLOAT(dst.dtype(), "mul_", [&] {
    scalar_t* pd = dst.data<scalar_t>();
    const scalar_t sv = static_cast<scalar_t>(s);
    cpu::for_each_row<1>(dst.shape(), {dst.strides()}, cpu::kGrain,
                         [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
      if (st[0] == 1) {
        for (int64_t i = 0; i < n; ++i) pd[off[0] + i] *= sv;
      } else {
        for (int64_t i = 0; i < n; ++i) pd[off[0] + i * st[0]] *= sv;
      }
    });
  });
}

}  // namespace skein
