// nn.cpp — softmax, log_softmax, cross_entropy, embedding, dropout. Row-wise ops work
// on the last dim (other dims are moved there by views); each has a fused backward.
#include <cmath>
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

// Runs f(row_index) over the rows of a [rows, n] problem on the pool.
template <typename F>
void for_rows(int64_t rows, int64_t n, F f) {
  parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, n)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) f(r);
  });
}

// Moves `dim` to the end (a view), applies a last-dim op, and moves it back.
template <typename F>
Tensor along_last(const Tensor& a, int64_t dim, const char* op, F f) {
  dim = wrap_dim(dim, a.dim(), op);
  if (dim == a.dim() - 1) return f(a);
  return f(a.transpose(dim, -1)).transpose(dim, -1);
}

// One row: its max, then exp(x - m) (stored in y for softmax) summed in double, then one
// scaling pass. Only the first pass reads memory; the row is in cache for the others.
template <typename T>
void softmax_row(const T* x, T* y, int64_t n, bool log) {
  const T m = cpu::max_lanes(x, n);
  if (log) {
    const double s = cpu::sum_exp(x, m, n);
    const T lse = static_cast<T>(std::log(s)) + m;
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - lse;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = cpu::exp_of(x[i] - m);
    const T inv = static_cast<T>(1.0 / cpu::sum_lanes<double>(n, [&](int64_t i) { return y[i]; }));
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

Tensor softmax_last(const Tensor& a, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  SKEIN_CHECK(a.dim() >= 1, op, ": need at least 1 dim");
  Tensor x = a.detach().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  const int64_t n = a.shape().back(), rows = n ? a.numel() / n : 0;
  SKEIN_DISPATCH_FLOAT(a.dtype(), op, [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    for_rows(rows, n, [&](int64_t r) { softmax_row(px + r * n, py + r * n, n, log); });
  });
  return record(op, y, {a}, [y, n, rows, log](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype());
    SKEIN_DISPATCH_FLOAT(g.dtype(), "softmax backward", [&] {
      const scalar_t *pg = g.data<scalar_t>(), *py = y.data<scalar_t>();
      scalar_t* pd = dx.data<scalar_t>();
      for_rows(rows, n, [&](int64_t r) {
        const scalar_t *gr = pg + r * n, *yr = py + r * n;
        scalar_t* dr = pd + r * n;
        if (log) {  // dx = g - softmax * sum(g)
          const auto s = static_cast<scalar_t>(cpu::sum_lanes<double>(n, [&](int64_t i) { return gr[i]; }));
          for (int64_t i = 0; i < n; ++i) dr[i] = gr[i] - cpu::exp_of(yr[i]) * s;
        } else {    // dx = y * (g - sum(g * y))
          const auto s = static_cast<scalar_t>(cpu::sum_lanes<double>(
              n, [&](int64_t i) { return static_cast<double>(gr[i]) * yr[i]; }));
          for (int64_t i = 0; i < n; ++i) dr[i] = yr[i] * (gr[i] - s);
        }
      });
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) {
  return along_last(a, dim, "softmax", [](const Tensor& t) { return softmax_last(t, false); });
}

Tensor log_softmax(const Tensor& a, int64_t dim) {
  return along_last(a, dim, "log_softmax", [](const Tensor& t) { return softmax_last(t, true); });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  SKEIN_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, V], got ", shape_str(logits.shape()));
  SKEIN_CHECK(targets.dim() == 1 && targets.shape()[0] == logits.shape()[0], "cross_entropy: targets ",
              shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()));
  SKEIN_CHECK(!is_floating(targets.dtype()), "cross_entropy: targets must be i32 or i64, got ",
              dtype_name(targets.dtype()));
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  Tensor x = logits.detach().contiguous();
  Tensor t = targets.to(DType::i64).contiguous();
  const int64_t* pt = t.data<int64_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (pt[i] == ignore_index) continue;
    SKEIN_CHECK(pt[i] >= 0 && pt[i] < V, "cross_entropy: target ", pt[i], " at row ", i,
                " is outside the vocabulary [0, ", V, ")");
    ++count;
  }
  Tensor lse = Tensor::empty({N}, logits.dtype());
  Tensor loss = Tensor::empty({}, logits.dtype());
  SKEIN_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", [&] {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* pl = lse.data<scalar_t>();
    for_rows(N, V, [&](int64_t r) {
      const scalar_t* row = px + r * V;
      const scalar_t m = cpu::max_lanes(row, V);
      const double s = cpu::sum_exp(row, m, V);
      pl[r] = static_cast<scalar_t>(std::log(s)) + m;
    });
    double total = 0;
    for (int64_t r = 0; r < N; ++r)
      if (pt[r] != ignore_index) total += static_cast<double>(pl[r]) - px[r * V + pt[r]];
    *loss.data<scalar_t>() = static_cast<scalar_t>(count ? total / count : 0.0);
  });
  return record("cross_entropy", loss, {logits}, [x, t, lse, count, ignore_index, N, V](const Tensor& g) {
    Tensor dx = Tensor::empty({N, V}, x.dtype());
    SKEIN_DISPATCH_FLOAT(x.dtype(), "cross_entropy backward", [&] {
      const scalar_t *px = x.data<scalar_t>(), *pl = lse.data<scalar_t>();
      const int64_t* pt = t.data<int64_t>();
      scalar_t* pd = dx.data<scalar_t>();
      const scalar_t scale = count ? static_cast<scalar_t>(g.item() / count) : scalar_t(0);
      for_rows(N, V, [&](int64_t r) {   // d/dx = (softmax - onehot) * g / count
        scalar_t* dr = pd + r * V;
        if (pt[r] == ignore_index) { std::fill(dr, dr + V, scalar_t(0)); return; }
        const scalar_t* row = px + r * V;
        const scalar_t l = pl[r];
        for (int64_t i = 0; i < V; ++i) dr[i] = cpu::exp_of(row[i] - l) * scale;
        dr[pt[r]] -= scale;
      });
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  SKEIN_CHECK(weight.dim() == 2, "embedding: weight must be [V, D], got ", shape_str(weight.shape()));
  SKEIN_CHECK(!is_floating(ids.dtype()), "embedding: ids must be i32 or i64, got ", dtype_name(ids.dtype()));
  const int64_t V = weight.shape()[0], D = weight.shape()[1];
  Tensor idx = ids.to(DType::i64).contiguous();
  const int64_t n = idx.numel();
  const int64_t* pi = idx.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    SKEIN_CHECK(pi[i] >= 0 && pi[i] < V, "embedding: id ", pi[i], " at position ", i,
                " is outside the table's ", V, " rows");
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor w = weight.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  SKEIN_DISPATCH_FLOAT(weight.dtype(), "embedding", [&] {
    const scalar_t* pw = w.data<scalar_t>();
    scalar_t* po = out.data<scalar_t>();
    for_rows(n, D, [&](int64_t r) { std::copy(pw + pi[r] * D, pw + pi[r] * D + D, po + r * D); });
  });
  return record("embedding", out, {weight}, [idx, V, D](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dw = zeros({V, D}, g.dtype());
    SKEIN_DISPATCH_FLOAT(g.dtype(), "embedding backward", [&] {
      const scalar_t* pg = g.data<scalar_t>();
      scalar_t* pd = dw.data<scalar_t>();
      const int64_t* pi = idx.data<int64_t>();
      const int64_t n = idx.numel();
      // Split over columns so that no two threads add into the same element.
      parallel_for(0, D, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t r = 0; r < n; ++r) {
          scalar_t* dst = pd + pi[r] * D;
          const scalar_t* src = pg + r * D;
          for (int64_t c = lo; c < hi; ++c) dst[c] += src[c];
        }
      });
    });
    return std::vector<Tensor>{dw};
  });
}

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  SKEIN_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  // mask = (u >= p) / (1 - p), u uniform from gen
  Tensor u = uniform(x.shape(), gen, 0.0, 1.0, x.dtype());
  Tensor mask = Tensor::empty(x.shape(), x.dtype());
  SKEIN_DISPATCH_FLOAT(x.dtype(), "dropout", [&] {
    const scalar_t* pu = u.data<scalar_t>();
    scalar_t* pm = mask.data<scalar_t>();
    const scalar_t keep = static_cast<scalar_t>(1.0 / (1.0 - p));
    for (int64_t i = 0; i < u.numel(); ++i) pm[i] = pu[i] >= static_cast<scalar_t>(p) ? keep : scalar_t(0);
  });
  return mul(x, mask);
}

}  // namespace skein
