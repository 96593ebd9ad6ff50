// swiglu.cpp — the SwiGLU down projection with its hidden recomputed in backward
// (core/ops.h): y = (silu(a) * b) w2ᵀ saves a and b only (not silu(a), not the product);
// backward forms silu(a) * b again elementwise — no GEMM is repeated.
// reference: Shazeer, "GLU Variants Improve Transformer", 2020 (SwiGLU).
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/threadpool.h"

namespace skein {
namespace {

template <typename T> T sigmoid_of(T x) { return T(1) / (T(1) + cpu::exp_of(-x)); }  // as ops/elementwise.cpp

// z = silu(a) * b over n contiguous entries.
template <typename T>
void glu_forward(const T* a, const T* b, T* z, int64_t n) {
  parallel_for(0, n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) z[i] = a[i] * sigmoid_of(a[i]) * b[i];
  });
}

// z = silu(a) * b recomputed into z (for dW2 first), then from dz: da into dz, db into z.
template <typename T>
void glu_backward(T* dz_da, T* z_db, const T* a, const T* b, int64_t n) {
  parallel_for(0, n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T s = sigmoid_of(a[i]), silu = a[i] * s, dz = dz_da[i];
      z_db[i] = dz * silu;
      dz_da[i] = dz * b[i] * (s * (T(1) + a[i] * (T(1) - s)));
    }
  });
}

}  // namespace

Tensor swiglu_down(const Tensor& a, const Tensor& b, const Tensor& w2) {
  const char* op = "swiglu_down";
  SKEIN_CHECK(a.dim() >= 1 && a.shape() == b.shape(), op, ": a ", shape_str(a.shape()), " and b ",
              shape_str(b.shape()), " must have the same shape [..., H]");
  SKEIN_CHECK(w2.dim() == 2 && w2.size(1) == a.shape().back(), op, ": w2 ", shape_str(w2.shape()),
              " must be [D, H] with H = ", a.shape().back());
  SKEIN_CHECK(a.dtype() == b.dtype() && a.dtype() == w2.dtype() && is_floating(a.dtype()), op,
              ": a, b and w2 must share a floating dtype");
  if (ops::common_device(op, {a, b, w2}) != Device::cpu)  // composed from the device's map and gemm kernels
    return matmul(mul(silu(a), b), w2.transpose(0, 1));  // (keeps the hidden; the fused CPU kernel does not)
  const int64_t H = a.shape().back(), D = w2.size(0), M = a.numel() / std::max<int64_t>(1, H);
  Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
  Tensor z = Tensor::empty({M, H}, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), op, [&] {
    glu_forward(ac.data<scalar_t>(), bc.data<scalar_t>(), z.data<scalar_t>(), M * H);
  });
  Shape out_shape = a.shape();
  out_shape.back() = D;
  Tensor y;
  {
    NoGradGuard no_grad;
    y = matmul(z, w2.detach().transpose(0, 1)).reshape(out_shape);
  }
  if (!any_requires_grad({a, b, w2})) return y;
  z = Tensor();  // the hidden is not kept
  Tensor w = w2.detach();
  return record(op, y, {a, b, w2}, [ac, bc, w, M, H, D](const Tensor& dy) {
    // Two [M, H] buffers at a time: z (then db) and dz (then da).
    Tensor dy2 = dy.contiguous().reshape({M, D});
    Tensor zb = Tensor::empty({M, H}, ac.dtype());
    SKEIN_DISPATCH_FLOAT(ac.dtype(), "swiglu_down backward", [&] {
      glu_forward(ac.data<scalar_t>(), bc.data<scalar_t>(), zb.data<scalar_t>(), M * H);
    });
    const Tensor dyg = ops::gemm_operand(dy2);                 // bf16-mixed: rounded once for both GEMMs
    Tensor dw = ops::matmul_data(dyg.transpose(0, 1), zb);    // [D, M] x [M, H]
    Tensor da = ops::matmul_data(dyg, w).contiguous();        // dz: [M, H], becomes da in place
    SKEIN_DISPATCH_FLOAT(ac.dtype(), "swiglu_down backward", [&] {
      glu_backward(da.data<scalar_t>(), zb.data<scalar_t>(), ac.data<scalar_t>(), bc.data<scalar_t>(), M * H);
    });
    return std::vector<Tensor>{da.reshape(ac.shape()), zb.reshape(ac.shape()), dw};
  });
}

}  // namespace skein
