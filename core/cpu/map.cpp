// map.cpp — the CPU map kernel: every elementwise op (kern::MapOp) over strided, broadcast
// operands, on cpu::for_each_row (contiguous and broadcast inner runs get tight loops that
// vectorise). The math is core/kernels/map_math.h, shared with the CUDA kernel. fill and copy
// also take bf16 (copy converts with core/bf16.h's round-to-nearest-even).
#include <algorithm>
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/loops.h"
#include "core/kernels/map_math.h"

namespace skein::cpu {
namespace {

using kern::MapArgs;
using kern::MapOp;

Shape shape_of(const MapArgs& a) { return Shape(a.shape, a.shape + a.ndim); }
Shape strides_of(const kern::Operand& o, int ndim) { return Shape(o.strides, o.strides + ndim); }

template <typename T> T* at(const kern::Operand& o) { return static_cast<T*>(o.data); }

template <typename T, typename F>
void run_unary(const MapArgs& a, F f) {
  T* po = at<T>(a.out);
  const T* pa = at<T>(a.in[0]);
  for_each_row<2>(shape_of(a), {strides_of(a.out, a.ndim), strides_of(a.in[0], a.ndim)}, kGrain,
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]]);
    }
  });
}

template <typename T, typename F>
void run_binary(const MapArgs& a, F f) {
  T* po = at<T>(a.out);
  const T* pa = at<T>(a.in[0]);
  const T* pb = at<T>(a.in[1]);
  for_each_row<3>(shape_of(a), {strides_of(a.out, a.ndim), strides_of(a.in[0], a.ndim),
                                strides_of(a.in[1], a.ndim)}, kGrain,
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
    }
  });
}

template <typename T>
void run_fill(const MapArgs& a, const T v) {
  T* p = at<T>(a.out);
  for_each_row<1>(shape_of(a), {strides_of(a.out, a.ndim)}, kGrain,
                  [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
    if (st[0] == 1) std::fill(p + off[0], p + off[0] + n, v);
    else for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
  });
}

// out = convert(in0) elementwise; convert: S -> D.
template <typename D, typename S, typename F>
void run_copy(const MapArgs& a, F convert) {
  D* pd = at<D>(a.out);
  const S* ps = at<S>(a.in[0]);
  for_each_row<2>(shape_of(a), {strides_of(a.out, a.ndim), strides_of(a.in[0], a.ndim)}, kGrain,
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) pd[off[0] + i] = convert(ps[off[1] + i]);
    } else {
      for (int64_t i = 0; i < n; ++i) pd[off[0] + i * st[0]] = convert(ps[off[1] + i * st[1]]);
    }
  });
}

// A copy with bf16 on either side: other dtypes pass through f32 (f64 -> bf16 rounds twice,
// as PyTorch's does); bf16 -> bf16 moves bits.
void run_copy_bf16(const MapArgs& a) {
  const DType dst = a.out.dtype, src = a.in[0].dtype;
  if (dst == DType::bf16 && src == DType::bf16) return run_copy<bf16, bf16>(a, [](bf16 x) { return x; });
  if (dst == DType::bf16) {
    SKEIN_DISPATCH_ALL(src, "copy", [&] {
      run_copy<bf16, scalar_t>(a, [](scalar_t x) { return f32_to_bf16(static_cast<float>(x)); });
    });
    return;
  }
  SKEIN_DISPATCH_ALL(dst, "copy", [&] {
    run_copy<scalar_t, bf16>(a, [](bf16 x) { return static_cast<scalar_t>(bf16_to_f32(x)); });
  });
}

template <typename T>
void run_where(const MapArgs& a) {
  T* po = at<T>(a.out);
  const T *pc = at<T>(a.in[0]), *pa = at<T>(a.in[1]), *pb = at<T>(a.in[2]);
  for_each_row<4>(shape_of(a), {strides_of(a.out, a.ndim), strides_of(a.in[0], a.ndim),
                                strides_of(a.in[1], a.ndim), strides_of(a.in[2], a.ndim)}, kGrain,
                  [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
    for (int64_t i = 0; i < n; ++i)
      po[off[0] + i * st[0]] = pc[off[1] + i * st[1]] != 0 ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
  });
}

template <typename T>
void run_float(const MapArgs& a) {
  namespace m = kern::math;
  const T s0 = static_cast<T>(a.s0), s1 = static_cast<T>(a.s1);
  switch (a.op) {
    case MapOp::fill: return run_fill<T>(a, s0);
    case MapOp::neg: return run_unary<T>(a, m::Neg<T>{});
    case MapOp::exp: return run_unary<T>(a, m::Exp<T>{});
    case MapOp::log: return run_unary<T>(a, m::Log<T>{});
    case MapOp::sqrt: return run_unary<T>(a, m::Sqrt<T>{});
    case MapOp::rsqrt: return run_unary<T>(a, m::Rsqrt<T>{});
    case MapOp::pow: return run_unary<T>(a, m::Pow<T>{s0});
    case MapOp::tanh: return run_unary<T>(a, m::Tanh<T>{});
    case MapOp::sigmoid: return run_unary<T>(a, m::Sigmoid<T>{});
    case MapOp::silu: return run_unary<T>(a, m::Silu<T>{});
    case MapOp::gelu: return run_unary<T>(a, m::Gelu<T>{});
    case MapOp::relu: return run_unary<T>(a, m::Relu<T>{});
    case MapOp::elu: return run_unary<T>(a, m::Elu<T>{});
    case MapOp::softplus: return run_unary<T>(a, m::Softplus<T>{});
    case MapOp::log_sigmoid: return run_unary<T>(a, m::LogSigmoid<T>{});
    case MapOp::add_scalar: return run_unary<T>(a, m::AddScalar<T>{s0});
    case MapOp::mul_scalar: return run_unary<T>(a, m::MulScalar<T>{s0});
    case MapOp::dropout_mask: return run_unary<T>(a, m::DropoutMask<T>{s0, s1});
    case MapOp::add: return run_binary<T>(a, m::Add<T>{});
    case MapOp::sub: return run_binary<T>(a, m::Sub<T>{});
    case MapOp::mul: return run_binary<T>(a, m::Mul<T>{});
    case MapOp::div: return run_binary<T>(a, m::Div<T>{});
    case MapOp::axpy: return run_binary<T>(a, m::Axpy<T>{s0});
    case MapOp::d_log: return run_binary<T>(a, m::DLog<T>{});
    case MapOp::d_sqrt: return run_binary<T>(a, m::DSqrt<T>{});
    case MapOp::d_rsqrt: return run_binary<T>(a, m::DRsqrt<T>{});
    case MapOp::d_pow: return run_binary<T>(a, m::DPow<T>{s0});
    case MapOp::d_tanh: return run_binary<T>(a, m::DTanh<T>{});
    case MapOp::d_sigmoid: return run_binary<T>(a, m::DSigmoid<T>{});
    case MapOp::d_silu: return run_binary<T>(a, m::DSilu<T>{});
    case MapOp::d_gelu: return run_binary<T>(a, m::DGelu<T>{});
    case MapOp::d_relu: return run_binary<T>(a, m::DRelu<T>{});
    case MapOp::d_elu: return run_binary<T>(a, m::DElu<T>{});
    case MapOp::d_softplus: return run_binary<T>(a, m::DSoftplus<T>{});
    case MapOp::d_log_sigmoid: return run_binary<T>(a, m::DLogSigmoid<T>{});
    case MapOp::where: return run_where<T>(a);
    case MapOp::copy: break;
  }
  SKEIN_ASSERT(false, "map: op ", kern::map_op_name(a.op), " reached the float switch");
}

}  // namespace

void map(const MapArgs& a) {
  if (a.op == MapOp::copy) {
    if (a.out.dtype == DType::bf16 || a.in[0].dtype == DType::bf16) return run_copy_bf16(a);
    SKEIN_DISPATCH_ALL(a.out.dtype, "copy", [&] {
      using dst_t = scalar_t;
      SKEIN_DISPATCH_ALL(a.in[0].dtype, "copy", [&] {
        run_copy<dst_t, scalar_t>(a, [](scalar_t x) { return static_cast<dst_t>(x); });
      });
    });
    return;
  }
  if (a.op == MapOp::fill) {
    if (a.out.dtype == DType::bf16) return run_fill<bf16>(a, f32_to_bf16(static_cast<float>(a.s0)));
    SKEIN_DISPATCH_ALL(a.out.dtype, "fill", [&] { run_fill<scalar_t>(a, static_cast<scalar_t>(a.s0)); });
    return;
  }
  SKEIN_DISPATCH_FLOAT(a.out.dtype, kern::map_op_name(a.op), [&] { run_float<scalar_t>(a); });
}

}  // namespace skein::cpu
