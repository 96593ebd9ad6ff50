// synthetic_baselines.cpp — the classical in-context regression estimators that Garg et al.
// compare transformers with (see synthetic.h): minimum-norm least squares (LAPACK dgelss, the
// SVD solution, so k < dim points give the pseudo-inverse fit), 3-nearest-neighbour averaging
// and the averaging estimator w = (1/k) Σ y_j x_j.
// reference: Garg et al., "What Can Transformers Learn In-Context? A Case Study of Simple
// Function Classes", NeurIPS 2022, §3 (baselines) and Figure 2.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>
#include "core/ops.h"
#include "data/synthetic.h"

extern "C" {
// LAPACK (in OpenBLAS): minimum-norm least squares via the SVD. Column-major.
void dgelss_(const int* m, const int* n, const int* nrhs, double* a, const int* lda, double* b, const int* ldb,
             double* s, const double* rcond, int* rank, double* work, const int* lwork, int* info);
}

namespace skein {
namespace {

// y_i of the minimum-norm least-squares fit of the k pairs (xs[j], ys[j]) at x (dim d).
double least_squares_at(const std::vector<const double*>& xs, const std::vector<double>& ys, const double* x,
                        int d) {
  const int m = static_cast<int>(xs.size()), nrhs = 1, ldb = std::max(m, d);
  if (m == 0) return 0.0;
  std::vector<double> a(static_cast<size_t>(m) * d), b(static_cast<size_t>(ldb), 0.0), s(static_cast<size_t>(std::min(m, d)));
  for (int j = 0; j < m; ++j) {
    for (int c = 0; c < d; ++c) a[static_cast<size_t>(c) * m + j] = xs[static_cast<size_t>(j)][c];
    b[static_cast<size_t>(j)] = ys[static_cast<size_t>(j)];
  }
  const double rcond = 1e-10;
  int rank = 0, info = 0, lwork = -1;
  double query = 0;
  dgelss_(&m, &d, &nrhs, a.data(), &m, b.data(), &ldb, s.data(), &rcond, &rank, &query, &lwork, &info);
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  dgelss_(&m, &d, &nrhs, a.data(), &m, b.data(), &ldb, s.data(), &rcond, &rank, work.data(), &lwork, &info);
  SKEIN_CHECK(info == 0, "icl least-squares baseline: LAPACK dgelss failed (info ", info, ") on ", m, " x ", d);
  double y = 0;
  for (int c = 0; c < d; ++c) y += b[static_cast<size_t>(c)] * x[c];
  return y;
}

double nearest_at(const std::vector<const double*>& xs, const std::vector<double>& ys, const double* x, int d,
                  size_t k) {
  if (xs.empty()) return 0.0;
  std::vector<std::pair<double, size_t>> dist;
  for (size_t j = 0; j < xs.size(); ++j) {
    double s = 0;
    for (int c = 0; c < d; ++c) s += (xs[j][c] - x[c]) * (xs[j][c] - x[c]);
    dist.push_back({s, j});
  }
  const size_t n = std::min(k, dist.size());
  std::partial_sort(dist.begin(), dist.begin() + static_cast<std::ptrdiff_t>(n), dist.end());
  double y = 0;
  for (size_t i = 0; i < n; ++i) y += ys[dist[i].second];
  return y / static_cast<double>(n);
}

double averaging_at(const std::vector<const double*>& xs, const std::vector<double>& ys, const double* x, int d) {
  if (xs.empty()) return 0.0;
  double y = 0;
  for (size_t j = 0; j < xs.size(); ++j) {
    double dot = 0;
    for (int c = 0; c < d; ++c) dot += xs[j][c] * x[c];
    y += ys[j] * dot;
  }
  return y / static_cast<double>(xs.size());
}

}  // namespace

const char* icl_baseline_name(IclBaseline b) {
  switch (b) {
    case IclBaseline::least_squares: return "least_squares";
    case IclBaseline::nearest_3: return "nearest_3";
    case IclBaseline::averaging: return "averaging";
  }
  return "?";
}

Tensor icl_baseline_predictions(const Tensor& inputs, const Tensor& targets, IclBaseline b) {
  SKEIN_CHECK(inputs.dim() == 3 && targets.dim() == 2 && inputs.size(0) == targets.size(0) &&
                  inputs.size(1) == 2 * targets.size(1) && inputs.size(2) >= 2,
              "icl baselines: inputs ", shape_str(inputs.shape()), " and targets ", shape_str(targets.shape()),
              " must be [B, 2n, dim + 1] and [B, n]");
  const int64_t B = targets.size(0), n = targets.size(1), C = inputs.size(2);
  const int d = static_cast<int>(C - 1);
  const std::vector<double> in = inputs.to_vector(), y = targets.to_vector();
  std::vector<double> out(static_cast<size_t>(B * n));
  for (int64_t e = 0; e < B; ++e) {
    std::vector<const double*> xs;
    std::vector<double> ys;
    for (int64_t i = 0; i < n; ++i) {
      const double* x = in.data() + (e * 2 * n + 2 * i) * C;
      double p = 0;
      switch (b) {
        case IclBaseline::least_squares: p = least_squares_at(xs, ys, x, d); break;
        case IclBaseline::nearest_3: p = nearest_at(xs, ys, x, d, 3); break;
        case IclBaseline::averaging: p = averaging_at(xs, ys, x, d); break;
      }
      out[static_cast<size_t>(e * n + i)] = p;
      xs.push_back(x);
      ys.push_back(y[static_cast<size_t>(e * n + i)]);
    }
  }
  return from_vector(out, {B, n}, DType::f64);
}

}  // namespace skein
