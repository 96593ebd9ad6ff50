// index.cpp — scatter_rows: the sum of rows into places given by an index (the conjugate of a
// row gather, which is skein::embedding, and embedding's backward). Deterministic on every
// device: each row's contributions are added in index order. Backward: a row gather.
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {

Tensor scatter_rows(const Tensor& src, const Tensor& idx, int64_t n_rows) {
  const Device dev = ops::common_device("scatter_rows", {src, idx});
  SKEIN_CHECK(src.dim() == 2 && idx.dim() == 1 && idx.size(0) == src.size(0), "scatter_rows: src ",
              shape_str(src.shape()), " and index ", shape_str(idx.shape()), " do not match ([n, D] and [n])");
  SKEIN_CHECK(!is_floating(idx.dtype()), "scatter_rows: index must be i32 or i64");
  SKEIN_CHECK(is_floating(src.dtype()), "scatter_rows: src must be f32 or f64, got ", dtype_name(src.dtype()));
  SKEIN_CHECK(n_rows >= 0, "scatter_rows: n_rows must be >= 0, got ", n_rows);
  Tensor id = idx.to(DType::i64).contiguous();
  const int64_t n = id.numel(), D = src.size(1);
  Tensor s = ops::contiguous_data(src);
  Tensor out = Tensor::empty({n_rows, D}, src.dtype(), dev);
  const auto& k = kern::kernels(dev);
  const size_t ws_bytes = k.scatter_rows_workspace(n, n_rows);
  Tensor ws = Tensor::empty({static_cast<int64_t>((ws_bytes + 7) / 8)}, DType::i64, dev);
  k.scatter_rows(src.dtype(), s.raw_data(), id.data_ptr<int64_t>(), out.raw_data(), ws.raw_data(), n, D, n_rows);
  return record("scatter_rows", out, {src}, [id](const Tensor& g) {
    return std::vector<Tensor>{embedding(g, id)};
  });
}

}  // namespace skein
