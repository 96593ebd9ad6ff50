// test_short_conv.cpp — short_conv and short_conv_tail (core/ops.h): values against a plain
// loop over the definition, with and without SiLU and a carried prefix; streaming (a sequence
// cut in pieces, each carrying the tail of the last) equals one call, including pieces shorter
// than the kernel; f64 finite-difference gradchecks of x, weight and prefix; shape errors.
#include <gtest/gtest.h>
#include <cmath>
#include <vector>
#include "core/ops.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {
using testing::expect_gradcheck;
using testing::rand64;
using V = std::vector<Tensor>;

// The definition by loops: z[b,t,c] = Σ_j w[c,j] · xx[b, t+j, c], xx = [prefix (or 0); x].
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor& prefix, bool act) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), K = w.size(1);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), pv, out(B * T * C);
  if (prefix.defined()) pv = prefix.to_vector();
  auto input = [&](int64_t b, int64_t s, int64_t c) {  // s: index into xx
    if (s >= K - 1) return xv[(b * T + s - (K - 1)) * C + c];
    return pv.empty() ? 0.0 : pv[(b * (K - 1) + s) * C + c];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double z = 0;
        for (int64_t j = 0; j < K; ++j) z += wv[c * K + j] * input(b, t + j, c);
        out[(b * T + t) * C + c] = act ? z / (1 + std::exp(-z)) : z;
      }
  return from_vector(out, {B, T, C}, DType::f64);
}

void expect_close(const Tensor& a, const Tensor& b, double tol) {
  ASSERT_EQ(a.shape(), b.shape());
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], tol) << "element " << i;
}

TEST(ShortConv, MatchesLoopsWithAndWithoutActivationAndPrefix) {
  for (bool act : {false, true})
    for (int64_t K : {1, 2, 4}) {
      Tensor x = rand64({2, 7, 5}, 1), w = rand64({5, K}, 2), pre = rand64({2, K - 1, 5}, 3);
      expect_close(short_conv(x, w, Tensor(), act), naive_conv(x, w, Tensor(), act), 1e-14);
      expect_close(short_conv(x, w, pre, act), naive_conv(x, w, pre, act), 1e-14);
      // f32 agrees with the f64 loops to f32 rounding
      expect_close(short_conv(x.to(DType::f32), w.to(DType::f32), pre.to(DType::f32), act),
                   naive_conv(x, w, pre, act), 1e-5);
    }
}

TEST(ShortConv, StreamingWithTheCarriedTailEqualsOneCall) {
  // Pieces of 3, 1, 2, 5, 1 steps (two shorter than the kernel's K-1 = 3 carried rows).
  const int64_t K = 4;
  Tensor x = rand64({2, 12, 6}, 4), w = rand64({6, K}, 5);
  Tensor whole = short_conv(x, w, Tensor(), true);
  Tensor state;  // undefined: zeros before the start
  int64_t at = 0;
  std::vector<Tensor> outs;
  for (int64_t len : {3, 1, 2, 5, 1}) {
    Tensor piece = x.narrow(1, at, len);
    outs.push_back(short_conv(piece, w, state, true));
    state = short_conv_tail(piece, state, K - 1);
    at += len;
  }
  expect_close(cat(outs, 1), whole, 1e-14);
  expect_close(state, x.narrow(1, 12 - (K - 1), K - 1), 0.0);
}

TEST(ShortConv, GradcheckF64) {
  for (bool act : {false, true}) {
    expect_gradcheck([act](const V& in) { return short_conv(in[0], in[1], in[2], act); },
                     {rand64({2, 5, 3}, 6), rand64({3, 4}, 7), rand64({2, 3, 3}, 8)});
    expect_gradcheck([act](const V& in) { return short_conv(in[0], in[1], Tensor(), act); },
                     {rand64({1, 6, 4}, 9), rand64({4, 3}, 10)});
  }
  // A piece shorter than the kernel: the prefix feeds every output, and the tail mixes both.
  expect_gradcheck([](const V& in) { return short_conv(in[0], in[1], in[2], true); },
                   {rand64({2, 2, 3}, 11), rand64({3, 4}, 12), rand64({2, 3, 3}, 13)});
  expect_gradcheck([](const V& in) { return short_conv_tail(in[0], in[1], 3); },
                   {rand64({2, 2, 3}, 14), rand64({2, 3, 3}, 15)});
  // Strided inputs: a column slice of a wider projection and a batch/time-swapped view are read
  // in place (rows at their strides); a channel-strided view is copied first.
  expect_gradcheck([](const V& in) { return short_conv(in[0].narrow(2, 2, 3), in[1], in[2], true); },
                   {rand64({2, 5, 7}, 18), rand64({3, 4}, 19), rand64({2, 3, 3}, 20)});
  expect_gradcheck([](const V& in) { return short_conv(in[0].permute({1, 0, 2}), in[1], Tensor(), true); },
                   {rand64({5, 2, 3}, 21), rand64({3, 4}, 22)});
  expect_gradcheck([](const V& in) { return short_conv(in[0].transpose(1, 2), in[1], Tensor(), false); },
                   {rand64({2, 3, 5}, 23), rand64({3, 4}, 24)});
}

TEST(ShortConv, StridedInputAndEmptySequence) {
  Tensor base = rand64({2, 5, 8}, 16);
  Tensor x = base.narrow(2, 1, 4);  // non-contiguous view
  Tensor w = rand64({4, 4}, 17);
  expect_close(short_conv(x, w, Tensor(), true), naive_conv(x.contiguous(), w, Tensor(), true), 1e-14);
  Tensor empty = short_conv(zeros({2, 0, 4}, DType::f64), w, Tensor(), true);
  EXPECT_EQ(empty.shape(), (Shape{2, 0, 4}));
}

TEST(ShortConv, BadShapesNameTheOp) {
  Tensor x = rand64({2, 5, 4}, 18);
  EXPECT_THROW(short_conv(x, rand64({3, 4}, 19), Tensor(), true), Error);
  EXPECT_THROW(short_conv(x, rand64({4, 4}, 19), rand64({2, 2, 4}, 20), true), Error);
  try {
    short_conv(x, rand64({4, 4}, 19), rand64({2, 2, 4}, 20), true);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short_conv: prefix [2,2,4]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skein
