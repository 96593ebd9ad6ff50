// reduce.cpp — sum / mean / max / logsumexp over dims. The input is viewed as
// [outer, R, inner] with the reduced dims in the middle (permuted there only when they
// are not already adjacent), and reduced into [outer, inner].
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

struct Reduction {
  Tensor x;             // contiguous, laid out as [outer, R, inner]
  int64_t outer = 1, R = 1, inner = 1;
  Shape keep_shape;     // the output shape with reduced dims kept as 1
  Shape out_shape;      // the output shape as requested (keepdim or not)
};

Reduction plan(const Tensor& a, Shape dims, bool keepdim, const char* op) {
  SKEIN_CHECK(a.device() == Device::cpu, op, ": cpu only so far");
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

// Rows are cut into blocks of this many elements: each block is one task (so one long
// row still spreads over the pool), and a row's block sums are added in block order, so
// the result never depends on the thread count.
constexpr int64_t kSumBlock = 32768;
// Columns per task when summing down columns (each column is summed by one task, in order).
constexpr int64_t kSumCols = 1024;

}  // namespace

Tensor sum(const Tensor& a, const Shape& dims, bool keepdim) {
  Reduction r = plan(a, dims, keepdim, "sum");
  Tensor out = Tensor::empty(r.out_shape, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "sum", [&] {
    scalar_t* po = out.data<scalar_t>();
    const scalar_t* px = r.x.data<scalar_t>();
    const int64_t R = r.R, inner = r.inner;
    if (inner == 1) {  // contiguous rows: lane-wise sums in double, per fixed block
      const int64_t blocks = std::max<int64_t>(1, (R + kSumBlock - 1) / kSumBlock);
      std::vector<double> partial(r.outer * blocks);
      parallel_for(0, r.outer * blocks, std::max<int64_t>(1, kSumBlock / std::max<int64_t>(1, R)),
                   [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t o = t / blocks, b = t % blocks, n = std::min(kSumBlock, R - b * kSumBlock);
          const scalar_t* p = px + o * R + b * kSumBlock;
          partial[t] = cpu::sum_lanes<double>(n, [&](int64_t i) { return p[i]; });
        }
      });
      for (int64_t o = 0; o < r.outer; ++o) {
        double acc = 0;
        for (int64_t b = 0; b < blocks; ++b) acc += partial[o * blocks + b];
        po[o] = static_cast<scalar_t>(acc);
      }
    } else {  // strided columns: add whole rows, vectorised along inner, split over columns
      const int64_t col_blocks = (inner + kSumCols - 1) / kSumCols;
      parallel_for(0, r.outer * col_blocks, std::max<int64_t>(1, kSumBlock / std::max<int64_t>(1, R * kSumCols)),
                   [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t o = t / col_blocks, c0 = (t % col_blocks) * kSumCols;
          const int64_t nc = std::min(kSumCols, inner - c0);
          scalar_t* dst = po + o * inner + c0;
          std::fill(dst, dst + nc, scalar_t(0));
          for (int64_t k = 0; k < R; ++k) {
            const scalar_t* src = px + (o * R + k) * inner + c0;
            for (int64_t i = 0; i < nc; ++i) dst[i] += src[i];
          }
        }
      });
    }
  });
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
  Tensor out = Tensor::empty(r.out_shape, a.dtype());
  Tensor idx = Tensor::empty(r.out_shape, DType::i64);
  SKEIN_DISPATCH_FLOAT(a.dtype(), "max", [&] {
    const scalar_t* x = r.x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    int64_t* pi = idx.data<int64_t>();
    parallel_for(0, r.outer * r.inner, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t oi = lo; oi < hi; ++oi) {
        const scalar_t* p = x + (oi / r.inner) * r.R * r.inner + oi % r.inner;
        int64_t best = 0;
        for (int64_t k = 1; k < r.R; ++k)
          if (p[k * r.inner] > p[best * r.inner] || std::isnan(p[k * r.inner])) best = k;
        po[oi] = p[best * r.inner];
        pi[oi] = best;
      }
    });
  });
  Shape in_shape = a.shape();
  int64_t outer = r.outer, R = r.R, inner = r.inner;
  return record("max", out, {a}, [in_shape, idx, outer, R, inner](const Tensor& g) {
    Tensor gin = zeros(in_shape, g.dtype());
    Tensor gc = g.contiguous();
    SKEIN_DISPATCH_FLOAT(g.dtype(), "max backward", [&] {
      scalar_t* pg = gin.data<scalar_t>();
      const scalar_t* pgo = gc.data<scalar_t>();
      const int64_t* pi = idx.data<int64_t>();
      for (int64_t oi = 0; oi < outer * inner; ++oi)
        pg[(oi / inner) * R * inner + pi[oi] * inner + oi % inner] = pgo[oi];
    });
    return std::vector<Tensor>{gin};
  });
}

Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, a.dim(), "logsumexp");
  Reduction r = plan(a, {dim}, keepdim, "logsumexp");
  Tensor out = Tensor::empty(r.out_shape, a.dtype());
  SKEIN_DISPATCH_FLOAT(a.dtype(), "logsumexp", [&] {
    const scalar_t* x = r.x.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    parallel_for(0, r.outer * r.inner, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t oi = lo; oi < hi; ++oi) {
        const scalar_t* p = x + (oi / r.inner) * r.R * r.inner + oi % r.inner;
        if (r.inner == 1) {  // a contiguous row: vectorised max and sum of exp
          const scalar_t m = cpu::max_lanes(p, r.R);
          po[oi] = std::isinf(m) ? m : static_cast<scalar_t>(std::log(cpu::sum_exp(p, m, r.R))) + m;
          continue;
        }
        scalar_t m = -std::numeric_limits<scalar_t>::infinity();
        for (int64_t k = 0; k < r.R; ++k) m = std::max(m, p[k * r.inner]);
        if (std::isinf(m)) { po[oi] = m; continue; }
        double s = 0;
        for (int64_t k = 0; k < r.R; ++k) s += std::exp(static_cast<double>(p[k * r.inner] - m));
        po[oi] = static_cast<scalar_t>(std::log(s)) + m;
      }
    });
  });
  Shape keep = r.keep_shape;
  return record("logsumexp", out, {a}, [a, out, keep](const Tensor& g) {
    // d lse / dx = softmax(x) = exp(x - lse)
    Tensor p = exp(sub(a.detach(), out.detach().reshape(keep)));
    return std::vector<Tensor>{mul(g.reshape(keep), p)};
  });
}

}  // namespace skein
