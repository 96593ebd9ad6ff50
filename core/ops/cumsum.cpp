// cumsum.cpp — cumsum (core/ops.h): the inclusive cumulative sum along one dim, forward or
// reverse. The input is viewed as [outer, R, inner] with the scanned dim in the middle; each
// (outer, inner) line is scanned in order with a double accumulator (the device's scan kernel). Backward: the gradient
// of a forward scan is the reverse scan of the output gradient, and vice versa.
#include "core/kernels/kernels.h"
#include "core/ops.h"

namespace skein {

Tensor cumsum(const Tensor& a, int64_t dim, bool reverse) {
  SKEIN_CHECK(a.defined() && is_floating(a.dtype()), "cumsum: need a floating tensor");
  dim = wrap_dim(dim, a.dim(), "cumsum");
  const Shape& s = a.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s[d];
  for (int64_t d = dim + 1; d < a.dim(); ++d) inner *= s[d];
  const int64_t R = s[dim];
  Tensor x = a.detach().contiguous();
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  kern::kernels(a.device()).cumsum(a.dtype(), x.raw_data(), out.raw_data(), outer, R, inner, reverse);
  return record("cumsum", out, {a}, [dim, reverse](const Tensor& g) {
    return std::vector<Tensor>{cumsum(g, dim, !reverse)};
  });
}

}  // namespace skein
