// conv_halo.cpp — conv_halo (parallel/conv_halo.h).
#include "parallel/conv_halo.h"
#include <algorithm>
#include "core/ops.h"
#include "parallel/collective_ops.h"

namespace skein {

std::vector<Tensor> conv_halo(Communicator& comm, const std::vector<Tensor>& xs, int64_t width) {
  const int r = comm.rank();
  if (xs.empty()) return {};
  SKEIN_CHECK(width >= 0, "conv_halo: width must be >= 0, got ", width);
  const DType dt = xs[0].dtype();
  // This rank's contribution: per stream its last min(T, width) rows, front-padded with zeros
  // to width rows and flattened, then one entry per stream with its valid row count.
  std::vector<Tensor> flat;
  std::vector<double> counts;
  for (const Tensor& x : xs) {
    SKEIN_CHECK(x.dim() == 3 && x.dtype() == dt, "conv_halo: stream ", shape_str(x.shape()),
                " must be [B, T, C] of dtype ", dtype_name(dt));
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), n = std::min(T, width);
    Tensor tail = x.narrow(1, T - n, n);
    if (n < width) tail = cat({zeros({B, width - n, C}, dt), tail}, 1);
    flat.push_back(tail.reshape({-1}));
    counts.push_back(static_cast<double>(n));
  }
  flat.push_back(from_vector(counts, {static_cast<int64_t>(counts.size())}, dt));
  Tensor gathered = all_gather_op(comm, cat(flat, 0));  // [W, N]
  const std::vector<double> all = gathered.narrow(1, gathered.size(1) - static_cast<int64_t>(xs.size()),
                                                  static_cast<int64_t>(xs.size())).detach().to_vector();
  const Tensor zero = mul(sum(gathered), 0.0);
  std::vector<Tensor> out;
  int64_t at = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t B = xs[i].size(0), C = xs[i].size(2), size = B * width * C;
    // Walk back over the earlier ranks, taking their valid rows until width rows are found.
    std::vector<Tensor> rows;  // in reverse rank order
    int64_t need = width;
    for (int j = r - 1; j >= 0 && need > 0; --j) {
      const int64_t n = std::min(need, static_cast<int64_t>(all[static_cast<size_t>(j) * xs.size() + i]));
      if (n == 0) continue;
      Tensor tail = gathered.narrow(0, j, 1).narrow(1, at, size).reshape({B, width, C});
      rows.push_back(tail.narrow(1, width - n, n));
      need -= n;
    }
    if (need > 0) rows.push_back(zeros({B, need, C}, dt));
    std::reverse(rows.begin(), rows.end());
    Tensor prefix = rows.size() == 1 ? rows[0] : cat(rows, 1);
    // Every rank must run backward through the all-gather (a collective): a zero-weight
    // dependency on every prefix, as a prefix may take nothing from it (rank 0, earlier
    // pieces all empty) and a stream may not reach the loss (an empty piece: MoM).
    out.push_back(add(prefix, zero).contiguous());
    at += size;
  }
  return out;
}

}  // namespace skein
