// map_math.h — the scalar math of the elementwise ops, shared by the CPU and CUDA map kernels
// (host and device functions under nvcc): one functor per MapOp, with its derivative beside it.
// The CPU evaluates exp in float with the vectorisable polynomial of core/cpu/loops.h; CUDA uses
// the device's expf. Both are within 2 ulp of exact, so the devices agree to f32 rounding.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SKEIN_HD __host__ __device__ __forceinline__
#else
#define SKEIN_HD inline
#include "core/cpu/loops.h"
#endif

namespace skein::kern::math {

template <typename T> SKEIN_HD T exp_(T x) {
#if defined(__CUDACC__)
  return std::exp(x);
#else
  return cpu::exp_of(x);
#endif
}
template <typename T> SKEIN_HD T sigmoid_fast(T x) { return T(1) / (T(1) + exp_(-x)); }
// The stable forms used by the gates (log σ never overflows, softplus never loses its tail).
template <typename T> SKEIN_HD T sigmoid_stable(T x) {
  return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}
template <typename T> SKEIN_HD T softplus_(T x) {
  return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
}
template <typename T> SKEIN_HD T gelu_cdf(T x) { return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))); }

// out = f(a) for unary ops, f(a, b) for binary, with s0 / s1 the op's scalars.
template <typename T> struct Neg { SKEIN_HD T operator()(T x) const { return -x; } };
template <typename T> struct Exp { SKEIN_HD T operator()(T x) const { return exp_(x); } };
template <typename T> struct Log { SKEIN_HD T operator()(T x) const { return std::log(x); } };
template <typename T> struct Sqrt { SKEIN_HD T operator()(T x) const { return std::sqrt(x); } };
template <typename T> struct Rsqrt { SKEIN_HD T operator()(T x) const { return T(1) / std::sqrt(x); } };
template <typename T> struct Pow { T p; SKEIN_HD T operator()(T x) const { return std::pow(x, p); } };
template <typename T> struct Tanh { SKEIN_HD T operator()(T x) const { return std::tanh(x); } };
template <typename T> struct Sigmoid { SKEIN_HD T operator()(T x) const { return sigmoid_fast(x); } };
template <typename T> struct Silu { SKEIN_HD T operator()(T x) const { return x * sigmoid_fast(x); } };
template <typename T> struct Gelu { SKEIN_HD T operator()(T x) const { return x * gelu_cdf(x); } };
template <typename T> struct Relu { SKEIN_HD T operator()(T x) const { return x > 0 ? x : T(0); } };
template <typename T> struct Elu { SKEIN_HD T operator()(T x) const { return x > 0 ? x : std::expm1(x); } };
template <typename T> struct Softplus { SKEIN_HD T operator()(T x) const { return softplus_(x); } };
template <typename T> struct LogSigmoid { SKEIN_HD T operator()(T x) const { return -softplus_(-x); } };
template <typename T> struct AddScalar { T s; SKEIN_HD T operator()(T x) const { return x + s; } };
template <typename T> struct MulScalar { T s; SKEIN_HD T operator()(T x) const { return x * s; } };
template <typename T> struct DropoutMask {
  T p, keep;
  SKEIN_HD T operator()(T u) const { return u >= p ? keep : T(0); }
};

template <typename T> struct Add { SKEIN_HD T operator()(T a, T b) const { return a + b; } };
template <typename T> struct Sub { SKEIN_HD T operator()(T a, T b) const { return a - b; } };
template <typename T> struct Mul { SKEIN_HD T operator()(T a, T b) const { return a * b; } };
template <typename T> struct Div { SKEIN_HD T operator()(T a, T b) const { return a / b; } };
template <typename T> struct Axpy { T s; SKEIN_HD T operator()(T a, T b) const { return a + s * b; } };

// Backward of the unary ops: (g, x) -> g * f'(x).
template <typename T> struct DLog { SKEIN_HD T operator()(T g, T x) const { return g * (T(1) / x); } };
template <typename T> struct DSqrt { SKEIN_HD T operator()(T g, T x) const { return g * (T(0.5) / std::sqrt(x)); } };
template <typename T> struct DRsqrt {
  SKEIN_HD T operator()(T g, T x) const { return g * (T(-0.5) / (x * std::sqrt(x))); }
};
template <typename T> struct DPow { T p; SKEIN_HD T operator()(T g, T x) const { return g * (p * std::pow(x, p - T(1))); } };
template <typename T> struct DTanh {
  SKEIN_HD T operator()(T g, T x) const { T t = std::tanh(x); return g * (T(1) - t * t); }
};
template <typename T> struct DSigmoid {
  SKEIN_HD T operator()(T g, T x) const { T s = sigmoid_fast(x); return g * (s * (T(1) - s)); }
};
template <typename T> struct DSilu {
  SKEIN_HD T operator()(T g, T x) const { T s = sigmoid_fast(x); return g * (s * (T(1) + x * (T(1) - s))); }
};
template <typename T> struct DGelu {
  SKEIN_HD T operator()(T g, T x) const {
    T pdf = std::exp(T(-0.5) * x * x) * T(0.3989422804014327);
    return g * (gelu_cdf(x) + x * pdf);
  }
};
template <typename T> struct DRelu { SKEIN_HD T operator()(T g, T x) const { return g * (x > 0 ? T(1) : T(0)); } };
template <typename T> struct DElu { SKEIN_HD T operator()(T g, T x) const { return g * (x > 0 ? T(1) : std::exp(x)); } };
template <typename T> struct DSoftplus { SKEIN_HD T operator()(T g, T x) const { return g * sigmoid_stable(x); } };
template <typename T> struct DLogSigmoid { SKEIN_HD T operator()(T g, T x) const { return g * sigmoid_stable(-x); } };

}  // namespace skein::kern::math
