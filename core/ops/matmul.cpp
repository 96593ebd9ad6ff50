// matmul.cpp — matmul and batched matmul over the one gemm wrapper. Operands whose last
// two dims are row- or column-major go to BLAS as they are (a transposed view becomes a
// transpose flag); anything else is made contiguous first.
#include "core/cpu/gemm.h"
#include "core/ops.h"

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

// out[..., M, N] = a[..., M, K] · b[..., K, N] (b may be 2-D); no autograd.
Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  const int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], N = b.shape()[b.dim() - 1];
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  const int64_t batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  if (out.numel() == 0) return out;
  if (K == 0) { fill_(out, 0.0); return out; }
  if (b.dim() == 2 && a.dim() > 2) {  // one big GEMM: fold the batch into M
    Tensor a2 = a.detach().reshape({batch * M, K});
    BlasOperand A = as_blas(a2), B = as_blas(b);
    SKEIN_DISPATCH_FLOAT(a.dtype(), "matmul", [&] {
      cpu::gemm<scalar_t>(A.trans, B.trans, batch * M, N, K, 1, A.t.data<scalar_t>(), A.ld,
                          B.t.data<scalar_t>(), B.ld, 0, out.data<scalar_t>(), N);
    });
    return out;
  }
  BlasOperand A = as_blas(a), B = as_blas(b);
  const Shape batch_shape(a.shape().begin(), a.shape().end() - 2);
  SKEIN_DISPATCH_FLOAT(a.dtype(), "matmul", [&] {
    for (int64_t i = 0; i < batch; ++i) {
      int64_t oa = 0, ob = 0, rem = i;
      for (int64_t d = static_cast<int64_t>(batch_shape.size()) - 1; d >= 0; --d) {
        int64_t idx = rem % batch_shape[d];
        rem /= batch_shape[d];
        oa += idx * A.t.strides()[d];
        ob += idx * B.t.strides()[d];
      }
      cpu::gemm<scalar_t>(A.trans, B.trans, M, N, K, 1, A.t.data<scalar_t>() + oa, A.ld,
                          B.t.data<scalar_t>() + ob, B.ld, 0, out.data<scalar_t>() + i * M * N, N);
    }
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  SKEIN_CHECK(a.device() == Device::cpu && b.device() == Device::cpu, "matmul: cpu only so far");
  SKEIN_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: need at least 2-D operands, got ",
              shape_str(a.shape()), " and ", shape_str(b.shape()));
  SKEIN_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ: ", dtype_name(a.dtype()), " and ",
              dtype_name(b.dtype()));
  const int64_t K = a.shape()[a.dim() - 1], Kb = b.shape()[b.dim() - 2];
  SKEIN_CHECK(K == Kb, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " do not match (", K, " vs ", Kb, ")");
  SKEIN_CHECK(b.dim() == 2 || (b.dim() == a.dim() &&
              std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin())),
              "matmul: batch dims of ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " differ (b must be 2-D or have a's batch dims)");
  Tensor out = matmul_forward(a, b);
  if (!any_requires_grad({a, b})) return out;
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  Tensor sa = a.detach(), sb = b.detach();
  return record("matmul", out, {a, b}, [sa, sb, need_a, need_b](const Tensor& g) {
    Tensor ga, gb;
    if (need_a) ga = matmul_forward(g, sb.transpose(-1, -2));           // dA = g · B^T
    if (need_b) {
      if (sb.dim() == 2 && sa.dim() > 2) {                               // dB = Σ_batch A^T · g
        const int64_t K = sa.shape().back(), N = g.shape().back();
        gb = matmul_forward(sa.reshape({-1, K}).transpose(0, 1), g.reshape({-1, N}));
      } else {
        gb = matmul_forward(sa.transpose(-1, -2), g);                    // dB = A^T · g
      }
    }
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace skein
