// matmul.cpp — matmul and batched matmul over the gemm kernel of the operands' device (BLAS or
// cuBLAS). Operands whose last two dims are row- or column-major go as they are (a transposed view
// becomes a transpose flag); anything else is made contiguous first. The precision policy
// (core/precision.h) picks the GEMM's operand dtype: under bf16-mixed, f32 operands are rounded
// to bf16 (weights once per step, from its cache) and the GEMM accumulates and writes f32.
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/precision.h"

namespace skein {
namespace {

// How one operand's last two dims [rows, cols] reach BLAS.
struct BlasOperand {
  Tensor t;        // the tensor actually read (maybe a contiguous copy)
  bool trans = false;
  int64_t ld = 0;
};

BlasOperand as_blas(const Tensor& x) {
  const int64_t nd = x.dim();
  const int64_t rows = x.shape()[nd - 2], cols = x.shape()[nd - 1];
  const int64_t sr = x.strides()[nd - 2], sc = x.strides()[nd - 1];
  if ((sc == 1 || cols == 1) && sr >= std::max<int64_t>(1, cols)) return {x, false, sr};
  if ((sr == 1 || rows == 1) && sc >= std::max<int64_t>(1, rows)) return {x, true, sc};
  Tensor c = x.detach().contiguous();
  return {c, false, std::max<int64_t>(1, cols)};
}

// The operand rounded to bf16 with its memory layout kept (a transposed operand stays
// transposed, so the rounding pass reads rows): the policy rounds the stored matrix, or finds
// it in its weight cache.
BlasOperand bf16_operand(const BlasOperand& x) {
  if (x.t.dtype() == DType::bf16) return x;  // rounded by the caller (gemm_operand)
  PrecisionPolicy& policy = PrecisionPolicy::current();
  if (!x.trans) {
    Tensor b = policy.bf16_copy(x.t);
    return {b, false, std::max<int64_t>(1, b.size(-1))};
  }
  Tensor b = policy.bf16_copy(x.t.transpose(-1, -2));
  return {b.transpose(-1, -2), true, std::max<int64_t>(1, b.size(-1))};
}

// The one stride that steps through every batch matrix of x (its dims before the last two), or
// -1 when the batch dims do not collapse into one.
int64_t batch_stride(const Tensor& x) {
  const int64_t nb = x.dim() - 2;
  int64_t stride = -1, expect = -1;
  for (int64_t d = nb - 1; d >= 0; --d) {
    if (x.shape()[d] == 1) continue;
    if (expect >= 0 && x.strides()[d] != expect) return -1;
    if (stride < 0) stride = x.strides()[d];
    expect = x.strides()[d] * x.shape()[d];
  }
  return stride < 0 ? 0 : stride;
}

// out[..., M, N] = a[..., M, K] · b[..., K, N] (b may be 2-D); no autograd. One batched GEMM of
// the operands' device. An operand already bf16 (gemm_operand) makes a bf16 GEMM with f32 out.
// mixed: the precision policy picks the operand dtype; false: the operands' own (matmul_f32).
Tensor matmul_forward(const Tensor& a, const Tensor& b, bool mixed = true) {
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], N = b.shape()[b.dim() - 1];
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(M);
  out_shape.push_back(N);
  const bool pre_rounded = a.dtype() == DType::bf16 || b.dtype() == DType::bf16;
  const DType out_dtype = pre_rounded ? DType::f32 : a.dtype();
  Tensor out = Tensor::empty(out_shape, out_dtype, a.device());
  const int64_t batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  if (out.numel() == 0) return out;
  if (K == 0) { fill_(out, 0.0); return out; }
  kern::GemmArgs g;
  const DType policy_dtype = mixed ? PrecisionPolicy::current().gemm_dtype(a.dtype(), a.device()) : a.dtype();
  g.dtype = pre_rounded ? DType::bf16 : policy_dtype;
  const bool bf16 = g.dtype == DType::bf16;  // bf16 operands; C stays f32
  g.K = K;
  g.N = N;
  g.C = out.raw_data();
  g.ldc = N;
  BlasOperand A, B;
  if (b.dim() == 2 && a.dim() > 2) {
    // one big GEMM: fold the batch into M
    A = as_blas(a.detach().reshape({batch * M, K}));
    B = as_blas(b);
    if (bf16) A = bf16_operand(A), B = bf16_operand(B);
    g.M = batch * M;
  } else {
    A = as_blas(a);
    B = as_blas(b);
    if (batch_stride(A.t) < 0) A = as_blas(A.t.contiguous());
    if (B.t.dim() > 2 && batch_stride(B.t) < 0) B = as_blas(B.t.contiguous());
    if (bf16) A = bf16_operand(A), B = bf16_operand(B);
    g.M = M;
    g.batch = batch;
    g.stride_a = batch_stride(A.t);
    g.stride_b = B.t.dim() == 2 ? 0 : batch_stride(B.t);
    g.stride_c = M * N;
  }
  g.trans_a = A.trans; g.A = A.t.raw_data(); g.lda = A.ld;
  g.trans_b = B.trans; g.B = B.t.raw_data(); g.ldb = B.ld;
  kern::kernels(a.device()).gemm(g);
  return out;
}

}  // namespace

namespace ops {

Tensor gemm_operand(const Tensor& x) {
  PrecisionPolicy& policy = PrecisionPolicy::current();
  if (x.dim() < 2 || policy.gemm_dtype(x.dtype(), x.device()) != DType::bf16) return x;
  return policy.bf16_copy(x);
}

Tensor matmul_data(const Tensor& a, const Tensor& b) {
  SKEIN_CHECK(a.dim() >= 2 && b.dim() >= 2 && a.shape().back() == b.shape()[b.dim() - 2], "matmul_data: shapes ",
              shape_str(a.shape()), " and ", shape_str(b.shape()), " do not match");
  SKEIN_CHECK(a.device() == b.device(), "matmul_data: operands on ", device_name(a.device()), " and ",
              device_name(b.device()));
  return matmul_forward(a, b);
}

}  // namespace ops

namespace {

// matmul and matmul_f32: the same checks and backward; `mixed` as for matmul_forward.
Tensor matmul_impl(const Tensor& a, const Tensor& b, bool mixed) {
  ops::common_device("matmul", {a, b});
  SKEIN_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: need at least 2-D operands, got ",
              shape_str(a.shape()), " and ", shape_str(b.shape()));
  SKEIN_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ: ", dtype_name(a.dtype()), " and ",
              dtype_name(b.dtype()));
  SKEIN_CHECK(is_floating(a.dtype()), "matmul: dtype ", dtype_name(a.dtype()), " is not supported (need f32 or f64)");
  const int64_t K = a.shape()[a.dim() - 1], Kb = b.shape()[b.dim() - 2];
  SKEIN_CHECK(K == Kb, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " do not match (", K, " vs ", Kb, ")");
  SKEIN_CHECK(b.dim() == 2 || (b.dim() == a.dim() &&
              std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin())),
              "matmul: batch dims of ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " differ (b must be 2-D or have a's batch dims)");
  Tensor out = matmul_forward(a, b, mixed);
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  Tensor sa = a.detach(), sb = b.detach();
  return record(mixed ? "matmul" : "matmul_f32", out, {a, b}, [sa, sb, need_a, need_b, mixed](const Tensor& g_in) {
    Tensor ga, gb;
    const Tensor g = mixed && need_a && need_b ? ops::gemm_operand(g_in) : g_in;  // rounded once for both GEMMs
    if (need_a) ga = matmul_forward(g, sb.transpose(-1, -2), mixed);             // dA = g · B^T
    if (need_b) {
      if (sb.dim() == 2 && sa.dim() > 2) {                                        // dB = Σ_batch A^T · g
        const int64_t K = sa.shape().back(), N = g.shape().back();
        gb = matmul_forward(sa.reshape({-1, K}).transpose(0, 1), g.reshape({-1, N}), mixed);
      } else {
        gb = matmul_forward(sa.transpose(-1, -2), g, mixed);                      // dB = A^T · g
      }
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) { return matmul_impl(a, b, true); }
Tensor matmul_f32(const Tensor& a, const Tensor& b) { return matmul_impl(a, b, false); }

}  // namespace skein
