// test_synthetic_icl.cpp — in-context regression: the classical estimators' per-point curves
// against their closed forms (minimum-norm least squares on k noise-free points of dim d has
// expected squared error (d - k)/d for k < d, 0 after; averaging at k = 0 is E[y^2] = 1), the
// 3-NN baseline on a hand-made sequence, and Garg et al.'s curriculum (stages, zeroed
// coordinates, truncated sequences, resumable by the cursor).
#include <gtest/gtest.h>
#include <cmath>
#include "core/ops.h"
#include "data/synthetic.h"

namespace skein {
namespace {

std::vector<double> mean_curve(IclBaseline b, int64_t d, int64_t n, int64_t batches, int64_t B) {
  IclRegressionOptions o;
  o.dim = d;
  o.n_points = n;
  std::vector<double> acc(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < batches; ++i) {
    IclBatch batch = icl_regression_batch(o, 77, i * B, B, DType::f64);
    std::vector<double> e = icl_regression_mse_per_point(icl_baseline_predictions(batch.inputs, batch.targets, b),
                                                         batch.targets);
    for (size_t k = 0; k < e.size(); ++k) acc[k] += e[k] / static_cast<double>(batches);
  }
  return acc;
}

TEST(IclBaselines, LeastSquaresCurveIsDMinusKOverD) {
  const int64_t d = 4, n = 8;
  std::vector<double> c = mean_curve(IclBaseline::least_squares, d, n, 4, 500);  // 2000 sequences
  for (int64_t k = 0; k < n; ++k) {
    const double want = k < d ? static_cast<double>(d - k) / d : 0.0;
    // the squared error of one prediction has a std about sqrt(2) times its mean: 2000
    // sequences give a standard error of ~3% of the mean (tolerance ~4 standard errors)
    EXPECT_NEAR(c[static_cast<size_t>(k)], want, 0.12 * want + 1e-9) << "k = " << k;
  }
}

TEST(IclBaselines, AveragingAndNearestNeighbours) {
  std::vector<double> avg = mean_curve(IclBaseline::averaging, 4, 16, 2, 500);
  EXPECT_NEAR(avg[0], 1.0, 0.12);   // predicts 0 at k = 0: E[y^2] = 1
  EXPECT_LT(avg[15], avg[1]);       // improves with k ...
  EXPECT_GT(avg[15], 0.2);          // ... but slowly (its error decays like (d + 1)/k)
  // 3-NN on a hand-made sequence (dim 1): x = 0, 1, 2, 10, then the query x = 9.
  const double xs[5] = {0, 1, 2, 10, 9}, ys[5] = {1, 2, 3, 4, 100};
  std::vector<double> in(5 * 2 * 2, 0.0), y(ys, ys + 5);
  for (int i = 0; i < 5; ++i) {
    in[static_cast<size_t>(4 * i)] = xs[i];        // token 2i = [x_i, 0]
    in[static_cast<size_t>(4 * i + 3)] = ys[i];    // token 2i+1 = [0, y_i]
  }
  Tensor p = icl_baseline_predictions(from_vector(in, {1, 10, 2}, DType::f64), from_vector(y, {1, 5}, DType::f64),
                                      IclBaseline::nearest_3);
  std::vector<double> pv = p.to_vector();
  EXPECT_DOUBLE_EQ(pv[0], 0.0);
  EXPECT_DOUBLE_EQ(pv[1], 1.0);                    // one neighbour
  EXPECT_DOUBLE_EQ(pv[4], (4.0 + 3.0 + 2.0) / 3);  // x = 10, 2, 1 are nearest to 9
  EXPECT_THROW(icl_baseline_predictions(from_vector(in, {1, 10, 2}, DType::f64), from_vector({1.0}, {1, 1}, DType::f64),
                                        IclBaseline::least_squares), Error);
}

TEST(IclCurriculum, StagesGrowDimAndPointsAndResume) {
  IclRegressionOptions o;
  o.dim = 6;
  o.n_points = 12;
  IclCurriculum c{2, 4, 1, 3, 8};  // 8 examples (2 batches of 4) per stage
  IclRegressionSource src(o, 4, 5, 0, 1, DType::f64, c);
  const int64_t want_dim[] = {2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 6, 6};
  const int64_t want_points[] = {4, 4, 7, 7, 10, 10, 12, 12, 12, 12, 12, 12};
  for (int i = 0; i < 12; ++i) {
    Batch b = src.next();
    ASSERT_EQ(b.targets.size(1), want_points[i]) << "batch " << i;
    ASSERT_EQ(b.inputs.shape(), (Shape{4, 2 * want_points[i], 7})) << "batch " << i;
    // coordinates >= the stage's dim are 0 in every x; the others are not
    std::vector<double> in = b.inputs.to_vector();
    double inactive = 0, active_last = 0;
    for (int64_t e = 0; e < 4; ++e)
      for (int64_t t = 0; t < want_points[i]; ++t) {
        const double* x = in.data() + (e * 2 * want_points[i] + 2 * t) * 7;
        for (int64_t k = want_dim[i]; k < 6; ++k) inactive += std::fabs(x[k]);
        active_last += std::fabs(x[want_dim[i] - 1]);
      }
    EXPECT_EQ(inactive, 0.0) << "batch " << i;
    EXPECT_GT(active_last, 0.0) << "batch " << i;
  }
  // A source set to the cursor of batch 5 draws batch 5 again (stage from the cursor).
  IclRegressionSource again(o, 4, 5, 0, 1, DType::f64, c);
  again.set_cursor({0, 5 * 4});
  EXPECT_EQ(again.current().active_dim, 4);
  EXPECT_EQ(again.current().n_points, 10);
  EXPECT_THROW(IclRegressionSource(o, 4, 5, 0, 1, DType::f64, IclCurriculum{0, 4, 1, 1, 8}), Error);
}

}  // namespace
}  // namespace skein
