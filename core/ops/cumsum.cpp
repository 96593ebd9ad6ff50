// cumsum.cpp — cumsum (core/ops.h): the inclusive cumulative sum along one dim, forward or
// reverse. The input is viewed as [outer, R, inner] with the scanned dim in the middle; each
// (outer, inner) line is scanned in order with a double accumulator. Backward: the gradient
// of a forward scan is the reverse scan of the output gradient, and vice versa.
#include <algorithm>
#include <vector>
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

// Inner columns per task.
constexpr int64_t kScanCols = 256;

}  // namespace

Tensor cumsum(const Tensor& a, int64_t dim, bool reverse) {
  SKEIN_CHECK(a.device() == Device::cpu, "cumsum: cpu only so far");
  dim = wrap_dim(dim, a.dim(), "cumsum");
  const Shape& s = a.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s[d];
  for (int64_t d = dim + 1; d < a.dim(); ++d) inner *= s[d];
  const int64_t R = s[dim];
  Tensor x = a.detach().contiguous();
  Tensor out = Tensor::empty(s, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "cumsum", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    // One task per (outer, block of kScanCols inner columns): it walks the R rows in scan
    // order, adding each row's columns into running sums (vectorised along the columns). Each
    // column is scanned by one task, so the result never depends on the thread count.
    const int64_t col_blocks = (inner + kScanCols - 1) / kScanCols;
    parallel_for(0, outer * col_blocks, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, R * kScanCols)),
                 [&](int64_t lo, int64_t hi) {
      std::vector<double> acc(static_cast<size_t>(std::min(kScanCols, inner)));
      for (int64_t task = lo; task < hi; ++task) {
        const int64_t o = task / col_blocks, c0 = (task % col_blocks) * kScanCols;
        const int64_t nc = std::min(kScanCols, inner - c0);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < R; ++i) {
          const int64_t at = (o * R + (reverse ? R - 1 - i : i)) * inner + c0;
          for (int64_t c = 0; c < nc; ++c) {
            acc[c] += static_cast<double>(px[at + c]);
            po[at + c] = static_cast<scalar_t>(acc[c]);
          }
        }
      }
    });
  });
  return record("cumsum", out, {a}, [dim, reverse](const Tensor& g) {
    return std::vector<Tensor>{cumsum(g, dim, !reverse)};
  });
}

}  // namespace skein
