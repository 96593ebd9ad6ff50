// reduce.cpp — the CPU reduce and scan kernels: sum / max / logsumexp over the middle axis of
// [outer, R, inner], max's backward (put_along), cumsum, and Σx² for gradient norms. Sums run in
// double over fixed blocks, so results never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/loops.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {

// Rows are cut into blocks of this many elements: each block is one task (so one long
// row still spreads over the pool), and a row's block sums are added in block order.
constexpr int64_t kSumBlock = 32768;
// Columns per task when summing down columns (each column is summed by one task, in order).
constexpr int64_t kSumCols = 1024;
// Inner columns per scan task.
constexpr int64_t kScanCols = 256;

template <typename T>
void sum_kernel(const T* px, T* po, int64_t outer, int64_t R, int64_t inner) {
  if (inner == 1) {  // contiguous rows: lane-wise sums in double, per fixed block
    const int64_t blocks = std::max<int64_t>(1, (R + kSumBlock - 1) / kSumBlock);
    std::vector<double> partial(outer * blocks);
    parallel_for(0, outer * blocks, std::max<int64_t>(1, kSumBlock / std::max<int64_t>(1, R)),
                 [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t o = t / blocks, b = t % blocks, n = std::min(kSumBlock, R - b * kSumBlock);
        const T* p = px + o * R + b * kSumBlock;
        partial[t] = n > 0 ? sum_lanes<double>(n, [&](int64_t i) { return p[i]; }) : 0.0;
      }
    });
    for (int64_t o = 0; o < outer; ++o) {
      double acc = 0;
      for (int64_t b = 0; b < blocks; ++b) acc += partial[o * blocks + b];
      po[o] = static_cast<T>(acc);
    }
    return;
  }
  // strided columns: add whole rows, vectorised along inner, split over columns
  const int64_t col_blocks = (inner + kSumCols - 1) / kSumCols;
  parallel_for(0, outer * col_blocks, std::max<int64_t>(1, kSumBlock / std::max<int64_t>(1, R * kSumCols)),
               [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / col_blocks, c0 = (t % col_blocks) * kSumCols;
      const int64_t nc = std::min(kSumCols, inner - c0);
      T* dst = po + o * inner + c0;
      std::fill(dst, dst + nc, T(0));
      for (int64_t k = 0; k < R; ++k) {
        const T* src = px + (o * R + k) * inner + c0;
        for (int64_t i = 0; i < nc; ++i) dst[i] += src[i];
      }
    }
  });
}

template <typename T>
void max_kernel(const T* x, T* po, int64_t* pi, int64_t outer, int64_t R, int64_t inner) {
  parallel_for(0, outer * inner, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t oi = lo; oi < hi; ++oi) {
      const T* p = x + (oi / inner) * R * inner + oi % inner;
      int64_t best = 0;
      for (int64_t k = 1; k < R; ++k)
        if (p[k * inner] > p[best * inner] || std::isnan(p[k * inner])) best = k;
      po[oi] = p[best * inner];
      if (pi) pi[oi] = best;
    }
  });
}

template <typename T>
void logsumexp_kernel(const T* x, T* po, int64_t outer, int64_t R, int64_t inner) {
  parallel_for(0, outer * inner, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t oi = lo; oi < hi; ++oi) {
      const T* p = x + (oi / inner) * R * inner + oi % inner;
      if (inner == 1) {  // a contiguous row: vectorised max and sum of exp
        const T m = max_lanes(p, R);
        po[oi] = std::isinf(m) ? m : static_cast<T>(std::log(sum_exp(p, m, R))) + m;
        continue;
      }
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t k = 0; k < R; ++k) m = std::max(m, p[k * inner]);
      if (std::isinf(m)) { po[oi] = m; continue; }
      double s = 0;
      for (int64_t k = 0; k < R; ++k) s += std::exp(static_cast<double>(p[k * inner] - m));
      po[oi] = static_cast<T>(std::log(s)) + m;
    }
  });
}

}  // namespace

void reduce(ReduceOp op, DType dt, const void* x, void* out, int64_t* argmax, int64_t outer,
            int64_t R, int64_t inner) {
  SKEIN_DISPATCH_FLOAT(dt, "reduce", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* po = static_cast<scalar_t*>(out);
    switch (op) {
      case ReduceOp::sum: sum_kernel(px, po, outer, R, inner); break;
      case ReduceOp::max: max_kernel(px, po, argmax, outer, R, inner); break;
      case ReduceOp::logsumexp: logsumexp_kernel(px, po, outer, R, inner); break;
    }
  });
}

void put_along(DType dt, const void* g, const int64_t* idx, void* gin, int64_t outer, int64_t R,
               int64_t inner) {
  SKEIN_DISPATCH_FLOAT(dt, "max backward", [&] {
    auto* pg = static_cast<scalar_t*>(gin);
    const auto* pgo = static_cast<const scalar_t*>(g);
    std::fill(pg, pg + outer * R * inner, scalar_t(0));
    for (int64_t oi = 0; oi < outer * inner; ++oi)
      pg[(oi / inner) * R * inner + idx[oi] * inner + oi % inner] = pgo[oi];
  });
}

void cumsum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, bool reverse) {
  SKEIN_DISPATCH_FLOAT(dt, "cumsum", [&] {
    const auto* px = static_cast<const scalar_t*>(x);
    auto* po = static_cast<scalar_t*>(out);
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
}

void sum_squares(DType dt, const void* x, double* out, int64_t n) {
  constexpr int64_t kBlock = 16384;  // elements per partial sum; fixed, so the sum order is too
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  SKEIN_DISPATCH_FLOAT(dt, "sum_squares", [&] {
    const auto* p = static_cast<const scalar_t*>(x);
    parallel_for(0, blocks, 2, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        // 8 independent accumulators: a fixed order the compiler can vectorise.
        double acc[8] = {};
        const int64_t end = std::min(n, (b + 1) * kBlock);
        int64_t i = b * kBlock;
        for (; i + 8 <= end; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[i + k]) * static_cast<double>(p[i + k]);
        for (; i < end; ++i) acc[0] += static_cast<double>(p[i]) * static_cast<double>(p[i]);
        partial[static_cast<size_t>(b)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      }
    });
  });
  double total = 0.0;
  for (double s : partial) total += s;
  *out = total;
}

}  // namespace skein::cpu
