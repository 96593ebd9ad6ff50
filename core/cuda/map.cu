// map.cu — the CUDA map kernel: every elementwise op (kern::MapOp) over strided, broadcast
// operands. One thread per output element; operand offsets come from the element's multi-index
// (a flat index when every operand is contiguous). The math is core/kernels/map_math.h, shared
// with the CPU kernel.
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"
#include "core/kernels/map_math.h"

namespace skein::cuda {
namespace {

using kern::MapArgs;
using kern::MapOp;

template <int N>
struct Layout {
  int ndim;
  int64_t shape[kern::kMaxDims];
  int64_t strides[N][kern::kMaxDims];  // operand 0 is the output
  bool flat;                           // every operand contiguous over the same shape
};

template <int N>
Layout<N> layout_of(const MapArgs& a) {
  Layout<N> l{};
  l.ndim = a.ndim;
  for (int d = 0; d < a.ndim; ++d) l.shape[d] = a.shape[d];
  for (int d = 0; d < a.ndim; ++d) {
    l.strides[0][d] = a.out.strides[d];
    for (int k = 1; k < N; ++k) l.strides[k][d] = a.in[k - 1].strides[d];
  }
  l.flat = true;
  for (int k = 0; k < N && l.flat; ++k) {
    int64_t s = 1;
    for (int d = a.ndim - 1; d >= 0; --d) {
      if (l.shape[d] != 1 && l.strides[k][d] != s) { l.flat = false; break; }
      s *= l.shape[d];
    }
  }
  return l;
}

template <int N>
__device__ __forceinline__ void offsets(const Layout<N>& l, int64_t i, int64_t (&off)[N]) {
  if (l.flat) {
    for (int k = 0; k < N; ++k) off[k] = i;
    return;
  }
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t idx = i % l.shape[d];
    i /= l.shape[d];
    for (int k = 0; k < N; ++k) off[k] += idx * l.strides[k][d];
  }
}

template <typename T, typename F>
__global__ void unary_kernel(Layout<2> l, int64_t n, T* out, const T* x, F f) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  int64_t off[2];
  offsets(l, i, off);
  out[off[0]] = f(x[off[1]]);
}

template <typename T, typename F>
__global__ void binary_kernel(Layout<3> l, int64_t n, T* out, const T* x, const T* y, F f) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  int64_t off[3];
  offsets(l, i, off);
  out[off[0]] = f(x[off[1]], y[off[2]]);
}

template <typename T>
__global__ void where_kernel(Layout<4> l, int64_t n, T* out, const T* c, const T* x, const T* y) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  int64_t off[4];
  offsets(l, i, off);
  out[off[0]] = c[off[1]] != T(0) ? x[off[2]] : y[off[3]];
}

template <typename T>
__global__ void fill_kernel(Layout<1> l, int64_t n, T* out, T v) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  int64_t off[1];
  offsets(l, i, off);
  out[off[0]] = v;
}

// Conversions of the copy kernel: static_cast between arithmetic dtypes; bf16 (core/bf16.h)
// through f32 with round-to-nearest-even, bf16 -> bf16 as bits.
struct AsIs {
  template <typename D, typename S> __device__ static D of(S x) { return static_cast<D>(x); }
};
struct ToBf16 {
  template <typename D, typename S> __device__ static D of(S x) { return f32_to_bf16(static_cast<float>(x)); }
};
struct FromBf16 {
  template <typename D, typename S> __device__ static D of(S x) { return static_cast<D>(bf16_to_f32(x)); }
};

template <typename D, typename S, typename C>
__global__ void copy_kernel(Layout<2> l, int64_t n, D* out, const S* x) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  int64_t off[2];
  offsets(l, i, off);
  out[off[0]] = C::template of<D, S>(x[off[1]]);
}

int64_t numel_of(const MapArgs& a) {
  int64_t n = 1;
  for (int d = 0; d < a.ndim; ++d) n *= a.shape[d];
  return n;
}

template <typename T> T* ptr(const kern::Operand& o) { return static_cast<T*>(o.data); }

template <typename T, typename F>
void unary(const MapArgs& a, F f) {
  const int64_t n = numel_of(a);
  unary_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<2>(a), n, ptr<T>(a.out), ptr<T>(a.in[0]), f);
}

template <typename T, typename F>
void binary(const MapArgs& a, F f) {
  const int64_t n = numel_of(a);
  binary_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<3>(a), n, ptr<T>(a.out),
                                                              ptr<T>(a.in[0]), ptr<T>(a.in[1]), f);
}

template <typename T>
void run_float(const MapArgs& a) {
  namespace m = kern::math;
  const T s0 = static_cast<T>(a.s0), s1 = static_cast<T>(a.s1);
  const int64_t n = numel_of(a);
  switch (a.op) {
    case MapOp::neg: return unary<T>(a, m::Neg<T>{});
    case MapOp::exp: return unary<T>(a, m::Exp<T>{});
    case MapOp::log: return unary<T>(a, m::Log<T>{});
    case MapOp::sqrt: return unary<T>(a, m::Sqrt<T>{});
    case MapOp::rsqrt: return unary<T>(a, m::Rsqrt<T>{});
    case MapOp::pow: return unary<T>(a, m::Pow<T>{s0});
    case MapOp::tanh: return unary<T>(a, m::Tanh<T>{});
    case MapOp::sigmoid: return unary<T>(a, m::Sigmoid<T>{});
    case MapOp::silu: return unary<T>(a, m::Silu<T>{});
    case MapOp::gelu: return unary<T>(a, m::Gelu<T>{});
    case MapOp::relu: return unary<T>(a, m::Relu<T>{});
    case MapOp::elu: return unary<T>(a, m::Elu<T>{});
    case MapOp::softplus: return unary<T>(a, m::Softplus<T>{});
    case MapOp::log_sigmoid: return unary<T>(a, m::LogSigmoid<T>{});
    case MapOp::add_scalar: return unary<T>(a, m::AddScalar<T>{s0});
    case MapOp::mul_scalar: return unary<T>(a, m::MulScalar<T>{s0});
    case MapOp::dropout_mask: return unary<T>(a, m::DropoutMask<T>{s0, s1});
    case MapOp::add: return binary<T>(a, m::Add<T>{});
    case MapOp::sub: return binary<T>(a, m::Sub<T>{});
    case MapOp::mul: return binary<T>(a, m::Mul<T>{});
    case MapOp::div: return binary<T>(a, m::Div<T>{});
    case MapOp::axpy: return binary<T>(a, m::Axpy<T>{s0});
    case MapOp::d_log: return binary<T>(a, m::DLog<T>{});
    case MapOp::d_sqrt: return binary<T>(a, m::DSqrt<T>{});
    case MapOp::d_rsqrt: return binary<T>(a, m::DRsqrt<T>{});
    case MapOp::d_pow: return binary<T>(a, m::DPow<T>{s0});
    case MapOp::d_tanh: return binary<T>(a, m::DTanh<T>{});
    case MapOp::d_sigmoid: return binary<T>(a, m::DSigmoid<T>{});
    case MapOp::d_silu: return binary<T>(a, m::DSilu<T>{});
    case MapOp::d_gelu: return binary<T>(a, m::DGelu<T>{});
    case MapOp::d_relu: return binary<T>(a, m::DRelu<T>{});
    case MapOp::d_elu: return binary<T>(a, m::DElu<T>{});
    case MapOp::d_softplus: return binary<T>(a, m::DSoftplus<T>{});
    case MapOp::d_log_sigmoid: return binary<T>(a, m::DLogSigmoid<T>{});
    case MapOp::where:
      where_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<4>(a), n, ptr<T>(a.out), ptr<T>(a.in[0]),
                                                               ptr<T>(a.in[1]), ptr<T>(a.in[2]));
      return;
    case MapOp::fill: case MapOp::copy: break;
  }
  SKEIN_ASSERT(false, "map (cuda): op ", kern::map_op_name(a.op), " reached the float switch");
}

}  // namespace

void map(const MapArgs& a) {
  const int64_t n = numel_of(a);
  if (n == 0) return;
  const char* name = kern::map_op_name(a.op);
  const bool bf_out = a.out.dtype == DType::bf16, bf_in = a.in[0].dtype == DType::bf16;
  if (a.op == MapOp::copy && bf_out && bf_in) {
    copy_kernel<bf16, bf16, AsIs><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<2>(a), n, ptr<bf16>(a.out),
                                                                            ptr<bf16>(a.in[0]));
  } else if (a.op == MapOp::copy && bf_out) {
    SKEIN_DISPATCH_ALL(a.in[0].dtype, "copy", [&] {
      copy_kernel<bf16, scalar_t, ToBf16><<<blocks_for(n), kThreads, 0, stream()>>>(
          layout_of<2>(a), n, ptr<bf16>(a.out), ptr<scalar_t>(a.in[0]));
    });
  } else if (a.op == MapOp::copy && bf_in) {
    SKEIN_DISPATCH_ALL(a.out.dtype, "copy", [&] {
      copy_kernel<scalar_t, bf16, FromBf16><<<blocks_for(n), kThreads, 0, stream()>>>(
          layout_of<2>(a), n, ptr<scalar_t>(a.out), ptr<bf16>(a.in[0]));
    });
  } else if (a.op == MapOp::copy) {
    SKEIN_DISPATCH_ALL(a.out.dtype, "copy", [&] {
      using dst_t = scalar_t;
      SKEIN_DISPATCH_ALL(a.in[0].dtype, "copy", [&] {
        copy_kernel<dst_t, scalar_t, AsIs><<<blocks_for(n), kThreads, 0, stream()>>>(
            layout_of<2>(a), n, ptr<dst_t>(a.out), ptr<scalar_t>(a.in[0]));
      });
    });
  } else if (a.op == MapOp::fill && bf_out) {
    fill_kernel<bf16><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<1>(a), n, ptr<bf16>(a.out),
                                                               f32_to_bf16(static_cast<float>(a.s0)));
  } else if (a.op == MapOp::fill) {
    SKEIN_DISPATCH_ALL(a.out.dtype, "fill", [&] {
      fill_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream()>>>(layout_of<1>(a), n, ptr<scalar_t>(a.out),
                                                                     static_cast<scalar_t>(a.s0));
    });
  } else {
    SKEIN_DISPATCH_FLOAT(a.out.dtype, name, [&] { run_float<scalar_t>(a); });
  }
  check_launch(name);
}

}  // namespace skein::cuda
