// test_cumsum.cpp — cumsum (core/ops.h): values against a naive loop over every dim, both
// directions, f32 and f64, strided inputs and empty dims; an f64 finite-difference gradcheck.
#include <gtest/gtest.h>
#include <vector>
#include "core/ops.h"
#include "core/threadpool.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {
using testing::expect_gradcheck;
using testing::rand64;
using V = std::vector<Tensor>;

// The inclusive cumulative sum of x along dim by a plain loop over indices (the oracle).
// x: any shape; returns a contiguous f64 tensor of the same shape.
Tensor naive_cumsum(const Tensor& x, int64_t dim, bool reverse) {
  const Shape& s = x.shape();
  std::vector<double> in = x.to_vector(), out(in.size());
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= s[d];
  const int64_t R = s[dim];
  for (size_t i = 0; i < in.size(); ++i) {
    const int64_t pos = (static_cast<int64_t>(i) / inner) % R;
    const int64_t first = static_cast<int64_t>(i) - pos * inner;  // the line's element at position 0
    double acc = 0;
    for (int64_t j = 0; j < R; ++j)
      if (reverse ? j >= pos : j <= pos) acc += in[static_cast<size_t>(first + j * inner)];
    out[i] = acc;
  }
  return from_vector(out, s, DType::f64);
}

void expect_matches_naive(const Tensor& x, int64_t dim, bool reverse, double tol) {
  Tensor got = cumsum(x, dim, reverse);
  ASSERT_EQ(got.shape(), x.shape());
  ASSERT_EQ(got.dtype(), x.dtype());
  std::vector<double> want = naive_cumsum(x, dim < 0 ? dim + x.dim() : dim, reverse).to_vector();
  std::vector<double> have = got.to_vector();
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(have[i], want[i], tol * std::max(1.0, std::fabs(want[i])))
        << "dim " << dim << (reverse ? " reverse" : "") << " element " << i << " of " << shape_str(x.shape());
}

TEST(Cumsum, SmallValues) {
  Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  EXPECT_EQ(cumsum(x, 1).to_vector(), (std::vector<double>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(cumsum(x, 0).to_vector(), (std::vector<double>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(cumsum(x, -1, true).to_vector(), (std::vector<double>{6, 5, 3, 15, 11, 6}));
}

TEST(Cumsum, MatchesNaiveLoopOnEveryDim) {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-13 : 1e-5;
    Tensor x = randn({3, 5, 4, 2}, 11, DType::f64).to(dt);
    for (int64_t dim = 0; dim < 4; ++dim)
      for (bool reverse : {false, true}) expect_matches_naive(x, dim, reverse, tol);
    expect_matches_naive(x, -2, true, tol);
    expect_matches_naive(randn({2, 5, 300}, 14, DType::f64).to(dt), 1, true, tol);  // > 256 inner columns
  }
}

TEST(Cumsum, StridedInputs) {
  Tensor base = randn({4, 6, 5}, 12, DType::f64);
  expect_matches_naive(base.permute({2, 0, 1}), 1, false, 1e-13);   // permuted
  expect_matches_naive(base.transpose(0, 2), 2, true, 1e-13);       // transposed
  expect_matches_naive(base.narrow(1, 1, 4), 1, false, 1e-13);      // sliced along the scanned dim
  expect_matches_naive(base.narrow(2, 2, 3), 0, true, 1e-13);       // sliced elsewhere
}

TEST(Cumsum, EmptyDimsAndOneElement) {
  EXPECT_EQ(cumsum(zeros({2, 0, 3}, DType::f64), 1).shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(cumsum(zeros({2, 0, 3}, DType::f32), 2, true).shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(cumsum(from_vector({2.5}, {1}, DType::f64), 0).item(), 2.5);
}

TEST(Cumsum, ThreadCountIndependent) {
  Tensor x = randn({8, 300, 16}, 13, DType::f32);
  const int saved = num_threads();
  set_num_threads(1);
  std::vector<double> one = cumsum(x, 1).to_vector();
  set_num_threads(2);
  std::vector<double> two = cumsum(x, 1).to_vector();
  set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(Cumsum, RejectsBadDim) {
  EXPECT_THROW(cumsum(zeros({2, 3}, DType::f64), 2), Error);
  EXPECT_THROW(cumsum(zeros({2, 3}, DType::i64), 0), Error);
}

TEST(Cumsum, GradCheck) {
  expect_gradcheck([](const V& x) { return cumsum(x[0], 1); }, {rand64({2, 4, 3}, 21)});
  expect_gradcheck([](const V& x) { return cumsum(x[0], 1, true); }, {rand64({2, 4, 3}, 22)});
  expect_gradcheck([](const V& x) { return cumsum(x[0], 0); },
                   {rand64({5, 3}, 23).transpose(0, 1)});                    // non-contiguous leaf
  expect_gradcheck([](const V& x) { return cumsum(x[0], -1, true); }, {rand64({3, 7}, 24).narrow(1, 2, 4)});
  // Through a composition, as LASP-2 uses it: exp of the exclusive suffix sum.
  expect_gradcheck([](const V& x) { return mul(x[1], exp(sub(cumsum(x[0], 1, true), x[0]))); },
                   {rand64({2, 5, 3}, 25, -1, 0), rand64({2, 5, 3}, 26)});
}

}  // namespace
}  // namespace skein
