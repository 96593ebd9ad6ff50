// index.cpp — scatter_rows: the sum of rows into places given by an index (the conjugate
// of a row gather, which is skein::embedding). Backward: a row gather.
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {

Tensor scatter_rows(const Tensor& src, const Tensor& idx, int64_t n_rows) {
  SKEIN_CHECK(src.dim() == 2 && idx.dim() == 1 && idx.size(0) == src.size(0), "scatter_rows: src ",
              shape_str(src.shape()), " and index ", shape_str(idx.shape()), " do not match ([n, D] and [n])");
  SKEIN_CHECK(!is_floating(idx.dtype()), "scatter_rows: index must be i32 or i64");
  Tensor id = idx.to(DType::i64).contiguous();
  const int64_t n = id.numel(), D = src.size(1);
  const int64_t* pi = id.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    SKEIN_CHECK(pi[i] >= 0 && pi[i] < n_rows, "scatter_rows: index ", pi[i], " at ", i, " is outside [0, ",
                n_rows, ")");
  Tensor s = src.detach().contiguous();
  Tensor out = zeros({n_rows, D}, src.dtype());
  SKEIN_DISPATCH_FLOAT(src.dtype(), "scatter_rows", [&] {
    const scalar_t* ps = s.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    parallel_for(0, D, 16, [&](int64_t lo, int64_t hi) {  // columns: no two threads share an element
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = lo; c < hi; ++c) po[pi[r] * D + c] += ps[r * D + c];
    });
  });
  return record("scatter_rows", out, {src}, [id](const Tensor& g) {
    return std::vector<Tensor>{embedding(g, id)};
  });
}

}  // namespace skein
