// recompute.cpp — checkpoint_rows (layers/recompute.h).
#include "layers/recompute.h"
#include <algorithm>

namespace skein {

namespace {

// fn over x2: [N, D] in chunks of `rows` rows, without recording: [N, D'].
Tensor run_chunks(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x2, int64_t rows) {
  const int64_t N = x2.size(0);
  Tensor out;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t n = std::min(rows, N - r0);
    Tensor y = fn(x2.narrow(0, r0, n));
    SKEIN_CHECK(y.dim() == 2 && y.size(0) == n, "checkpoint_rows: the function must map [n, D] to [n, D'], got ",
                shape_str(y.shape()), " from ", n, " rows");
    if (!out.defined()) out = Tensor::empty({N, y.size(1)}, y.dtype());
    Tensor dst = out.narrow(0, r0, n);
    copy_(dst, y);
  }
  return out;
}

}  // namespace

Tensor checkpoint_rows(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, int64_t rows,
                       bool value_unused) {
  SKEIN_CHECK(rows >= 1, "checkpoint_rows: rows must be >= 1, got ", rows);
  SKEIN_CHECK(x.dim() >= 1 && x.numel() > 0, "checkpoint_rows: x must be a non-empty [..., D], got ",
              shape_str(x.shape()));
  const int64_t D = x.shape().back(), N = x.numel() / D;
  const bool grad = grad_mode_enabled() && x.requires_grad();
  if (!grad || (N <= rows && !value_unused)) {
    if (grad)  // one chunk: the plain checkpoint
      return checkpoint([fn](const std::vector<Tensor>& in) { return fn(in[0]); }, {x});
    if (N <= rows) return fn(x);
    NoGradGuard no_grad;
    Tensor y = run_chunks(fn, x.reshape({N, D}), rows);
    Shape s = x.shape();
    s.back() = y.size(1);
    return y.reshape(s);
  }
  Tensor saved = x.detach().reshape({N, D});
  const Shape x_shape = x.shape();
  Tensor y;
  if (value_unused) {
    y = Tensor::empty({N, D}, x.dtype());  // carries the node only; backward reads no value
  } else {
    NoGradGuard no_grad;
    y = run_chunks(fn, saved, rows);
  }
  Shape out_shape = x.shape();
  out_shape.back() = y.size(1);
  return record("checkpoint_rows", y.reshape(out_shape), {x}, [fn, saved, x_shape, rows, N, D](const Tensor& g_in) {
    Tensor g = g_in.contiguous().reshape({N, -1});
    Tensor dx = Tensor::empty({N, D}, saved.dtype());
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t n = std::min(rows, N - r0);
      Tensor xc = saved.narrow(0, r0, n).detach();
      xc.requires_grad_(true);
      Tensor yc;
      {
        EnableGradGuard grad_on;
        yc = fn(xc);
      }
      if (yc.requires_grad()) run_backward(yc, g.narrow(0, r0, n), /*retain_graph=*/false);
      Tensor dst = dx.narrow(0, r0, n);
      if (xc.grad().defined()) copy_(dst, xc.grad());
      else fill_(dst, 0.0);
    }
    return std::vector<Tensor>{dx.reshape(x_shape)};
  });
}

}  // namespace skein
