// reduce.cpp — sum / mean / max / logsumexp over dims. The input is viewed as
// [outer, R, inner] with the reduced dims in the middle (permuted there only when they
// are not already adjacent), and reduced into [outer, inner] by its device's reduce kernel.
#include <algorithm>
#include <vector>
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {
namespace {

struct Reduction {
  Tensor x;             // contiguous, laid out as [outer, R, inner]
  int64_t outer = 1, R = 1, inner = 1;
  Shape keep_shape;     // the output shape with reduced dims kept as 1
  Shape out_shape;      // the output shape as requested (keepdim or not)
};

Reduction plan(const Tensor& a, Shape dims, bool keepdim, const char* op) {
  SKEIN_CHECK(a.defined(), op, ": undefined tensor");
  SKEIN_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::f64, op, ": dtype ", dtype_name(a.dtype()),
              " is not supported (need f32 or f64)");
  const int64_t nd = a.dim();
  for (auto& d : dims) d = wrap_dim(d, nd, op);
  std::sort(dims.begin(), dims.end());
  SKEIN_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op,
              ": a dim is repeated in ", shape_str(dims));
  Reduction r;
  std::vector<bool> reduced(nd, false);
  for (int64_t d : dims) reduced[d] = true;
  for (int64_t d = 0; d < nd; ++d) {
    r.keep_shape.push_back(reduced[d] ? 1 : a.shape()[d]);
    if (!reduced[d] || keepdim) r.out_shape.push_back(reduced[d] ? 1 : a.shape()[d]);
  }
  bool adjacent = dims.empty() || dims.back() - dims.front() + 1 == static_cast<int64_t>(dims.size());
  Tensor x = a;
  if (!adjacent) {  // move reduced dims to the end, others keep their order
    Shape perm;
    for (int64_t d = 0; d < nd; ++d) if (!reduced[d]) perm.push_back(d);
    for (int64_t d : dims) perm.push_back(d);
    x = a.detach().permute(perm);
    const int64_t k = static_cast<int64_t>(dims.size());
    dims.clear();
    for (int64_t d = nd - k; d < nd; ++d) dims.push_back(d);
  }
  r.x = x.detach().contiguous();
  const Shape& s = r.x.shape();
  for (int64_t d = 0; d < nd; ++d) {
    if (!dims.empty() && d < dims.front()) r.outer *= s[d];
    else if (!dims.empty() && d <= dims.back()) r.R *= s[d];
    else if (dims.empty()) r.outer *= s[d];
    else r.inner *= s[d];
  }
  return r;
}

}  // namespace

Tensor sum(const Tensor& a, const Shape& dims, bool keepdim) {
  Reduction r = plan(a, dims, keepdim, "sum");
  Tensor out = Tensor::empty(r.out_shape, a.dtype(), a.device());
  kern::kernels(a.device()).reduce(kern::ReduceOp::sum, a.dtype(), r.x.raw_data(), out.raw_data(), nullptr,
                                   r.outer, r.R, r.inner);
  Shape in_shape = a.shape(), keep = r.keep_shape;
  return record("sum", out, {a}, [in_shape, keep](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(keep).expand(in_shape)};
  });
}

Tensor sum(const Tensor& a) {
  Shape all(a.dim());
  for (int64_t d = 0; d < a.dim(); ++d) all[d] = d;
  return sum(a, all, false);
}

Tensor mean(const Tensor& a, const Shape& dims, bool keepdim) {
  int64_t count = 1;
  for (int64_t d : dims) count *= a.shape()[wrap_dim(d, a.dim(), "mean")];
  SKEIN_CHECK(count > 0, "mean: reducing ", shape_str(a.shape()), " over an empty dim");
  return mul(sum(a, dims, keepdim), 1.0 / static_cast<double>(count));
}

Tensor mean(const Tensor& a) {
  SKEIN_CHECK(a.numel() > 0, "mean: empty tensor ", shape_str(a.shape()));
  return mul(sum(a), 1.0 / static_cast<double>(a.numel()));
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, a.dim(), "max");
  SKEIN_CHECK(a.shape()[dim] > 0, "max: dim ", dim, " of ", shape_str(a.shape()), " is empty");
  Reduction r = plan(a, {dim}, keepdim, "max");
  Tensor out = Tensor::empty(r.out_shape, a.dtype(), a.device());
  Tensor idx = Tensor::empty(r.out_shape, DType::i64, a.device());
  kern::kernels(a.device()).reduce(kern::ReduceOp::max, a.dtype(), r.x.raw_data(), out.raw_data(),
                                   idx.data_ptr<int64_t>(), r.outer, r.R, r.inner);
  Shape in_shape = a.shape();
  int64_t outer = r.outer, R = r.R, inner = r.inner;
  return record("max", out, {a}, [in_shape, idx, outer, R, inner](const Tensor& g) {
    Tensor gin = Tensor::empty(in_shape, g.dtype(), g.device());
    Tensor gc = g.contiguous();
    ops::kernels_for("max backward", {gc, idx}).put_along(g.dtype(), gc.raw_data(), idx.data_ptr<int64_t>(),
                                                          gin.raw_data(), outer, R, inner);
    return std::vector<Tensor>{gin};
  });
}

Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, a.dim(), "logsumexp");
  Reduction r = plan(a, {dim}, keepdim, "logsumexp");
  Tensor out = Tensor::empty(r.out_shape, a.dtype(), a.device());
  kern::kernels(a.device()).reduce(kern::ReduceOp::logsumexp, a.dtype(), r.x.raw_data(), out.raw_data(),
                                   nullptr, r.outer, r.R, r.inner);
  Shape keep = r.keep_shape;
  return record("logsumexp", out, {a}, [a, out, keep](const Tensor& g) {
    // d lse / dx = softmax(x) = exp(x - lse)
    Tensor p = exp(sub(a.detach(), out.detach().reshape(keep)));
    return std::vector<Tensor>{mul(g.reshape(keep), p)};
  });
}

}  // namespace skein
