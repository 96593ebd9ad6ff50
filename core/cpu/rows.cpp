// rows.cpp — the CPU row-fused kernels over contiguous [rows, n]: softmax / log_softmax forward
// and backward, cross-entropy forward and backward, l2_normalize forward and backward. Each row
// is one task; per-row sums run in double with a fixed lane order.
#include <algorithm>
#include <cmath>
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/loops.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {

// Runs f(row_index) over the rows of a [rows, n] problem on the pool.
template <typename F>
void for_rows(int64_t rows, int64_t n, F f) {
  parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, n)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) f(r);
  });
}

// One row: its max, then exp(x - m) (stored in y for softmax) summed in double, then one
// scaling pass. Only the first pass reads memory; the row is in cache for the others.
template <typename T>
void softmax_row(const T* x, T* y, int64_t n, bool log) {
  const T m = max_lanes(x, n);
  if (log) {
    const double s = sum_exp(x, m, n);
    const T lse = static_cast<T>(std::log(s)) + m;
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - lse;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = exp_of(x[i] - m);
    const T inv = static_cast<T>(1.0 / sum_lanes<double>(n, [&](int64_t i) { return y[i]; }));
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

}  // namespace

void softmax_fwd(DType dt, const void* x, void* y, int64_t rows, int64_t n, bool log) {
  SKEIN_DISPATCH_FLOAT(dt, log ? "log_softmax" : "softmax", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* py = static_cast<scalar_t*>(y);
    for_rows(rows, n, [&](int64_t r) { softmax_row(px + r * n, py + r * n, n, log); });
  });
}

void softmax_bwd(DType dt, const void* g, const void* y, void* dx, int64_t rows, int64_t n, bool log) {
  SKEIN_DISPATCH_FLOAT(dt, "softmax backward", [&] {
    const auto *pg = static_cast<const scalar_t*>(g), *py = static_cast<const scalar_t*>(y);
    auto* pd = static_cast<scalar_t*>(dx);
    for_rows(rows, n, [&](int64_t r) {
      const scalar_t *gr = pg + r * n, *yr = py + r * n;
      scalar_t* dr = pd + r * n;
      if (log) {  // dx = g - softmax * sum(g)
        const auto s = static_cast<scalar_t>(sum_lanes<double>(n, [&](int64_t i) { return gr[i]; }));
        for (int64_t i = 0; i < n; ++i) dr[i] = gr[i] - exp_of(yr[i]) * s;
      } else {    // dx = y * (g - sum(g * y))
        const auto s = static_cast<scalar_t>(sum_lanes<double>(
            n, [&](int64_t i) { return static_cast<double>(gr[i]) * yr[i]; }));
        for (int64_t i = 0; i < n; ++i) dr[i] = yr[i] * (gr[i] - s);
      }
    });
  });
}

void cross_entropy_fwd(DType dt, const void* x, const int64_t* pt, void* lse, void* loss,
                       int64_t* count_out, int64_t N, int64_t V, int64_t ignore_index) {
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (pt[i] == ignore_index) continue;
    SKEIN_CHECK(pt[i] >= 0 && pt[i] < V, "cross_entropy: target ", pt[i], " at row ", i,
                " is outside the vocabulary [0, ", V, ")");
    ++count;
  }
  *count_out = count;
  SKEIN_DISPATCH_FLOAT(dt, "cross_entropy", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* pl = static_cast<scalar_t*>(lse);
    for_rows(N, V, [&](int64_t r) {
      const scalar_t* row = px + r * V;
      const scalar_t m = max_lanes(row, V);
      const double s = sum_exp(row, m, V);
      pl[r] = static_cast<scalar_t>(std::log(s)) + m;
    });
    double total = 0;
    for (int64_t r = 0; r < N; ++r)
      if (pt[r] != ignore_index) total += static_cast<double>(pl[r]) - px[r * V + pt[r]];
    *static_cast<scalar_t*>(loss) = static_cast<scalar_t>(count ? total / count : 0.0);
  });
}

void cross_entropy_bwd(DType dt, const void* x, const int64_t* pt, const void* lse, const void* g,
                       const int64_t* count, void* dx, int64_t N, int64_t V, int64_t ignore_index) {
  SKEIN_DISPATCH_FLOAT(dt, "cross_entropy backward", [&] {
    const auto *px = static_cast<const scalar_t*>(x), *pl = static_cast<const scalar_t*>(lse);
    auto* pd = static_cast<scalar_t*>(dx);
    const double gv = static_cast<double>(*static_cast<const scalar_t*>(g));
    const scalar_t scale = *count ? static_cast<scalar_t>(gv / static_cast<double>(*count)) : scalar_t(0);
    for_rows(N, V, [&](int64_t r) {   // d/dx = (softmax - onehot) * g / count
      scalar_t* dr = pd + r * V;
      if (pt[r] == ignore_index) { std::fill(dr, dr + V, scalar_t(0)); return; }
      const scalar_t* row = px + r * V;
      const scalar_t l = pl[r];
      for (int64_t i = 0; i < V; ++i) dr[i] = exp_of(row[i] - l) * scale;
      dr[pt[r]] -= scale;
    });
  });
}

// y = x / sqrt(Σ x² + eps) over the last dim. Backward: dx = (g - y (g·y)) / n.
void l2_normalize_fwd(DType dt, const void* x, void* y, void* norm, int64_t rows, int64_t D, double eps) {
  SKEIN_DISPATCH_FLOAT(dt, "l2_normalize", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto *py = static_cast<scalar_t*>(y), *pn = static_cast<scalar_t*>(norm);
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(px[r * D + i]) * px[r * D + i];
        const scalar_t n = static_cast<scalar_t>(std::sqrt(ss + eps));
        pn[r] = n;
        for (int64_t i = 0; i < D; ++i) py[r * D + i] = px[r * D + i] / n;
      }
    });
  });
}

void l2_normalize_bwd(DType dt, const void* g, const void* y, const void* norm, void* dx,
                      int64_t rows, int64_t D) {
  SKEIN_DISPATCH_FLOAT(dt, "l2_normalize backward", [&] {
    const auto *pg = static_cast<const scalar_t*>(g), *py = static_cast<const scalar_t*>(y);
    const auto* pn = static_cast<const scalar_t*>(norm);
    auto* pd = static_cast<scalar_t*>(dx);
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        double dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += static_cast<double>(pg[r * D + i]) * py[r * D + i];
        for (int64_t i = 0; i < D; ++i)
          pd[r * D + i] = (pg[r * D + i] - py[r * D + i] * static_cast<scalar_t>(dot)) / pn[r];
      }
    });
  });
}

}  // namespace skein::cpu
