// test_synthetic.cpp — MQAR (layout and statistics of zoology's generator, reproducibility,
// sharding/resume, the accuracy metric) and in-context linear regression (layout, y = w·x,
// statistics of w and the noise, the MSE metric and its differentiable loss).
#include <gtest/gtest.h>
#include <cmath>
#include <map>
#include <set>
#include "core/ops.h"
#include "data/synthetic.h"

namespace skein {
namespace {

TEST(Mqar, LayoutKeysValuesAndQueries) {
  for (bool random_fill : {false, true}) {
    MqarOptions o{128, 64, 8, 0.01, random_fill};
    const int64_t B = 200, L = 64, K = 8;
    Batch b = mqar_batch(o, 3, 0, B);
    ASSERT_EQ(b.inputs.shape(), (Shape{B, L}));
    ASSERT_EQ(b.targets.shape(), (Shape{B, L}));
    const int64_t* in = b.inputs.data<int64_t>();
    const int64_t* tg = b.targets.data<int64_t>();
    std::map<int64_t, int64_t> gap_count;
    for (int64_t e = 0; e < B; ++e) {
      const int64_t* x = in + e * L;
      const int64_t* y = tg + e * L;
      std::map<int64_t, int64_t> kv;
      std::set<int64_t> values;
      for (int64_t j = 0; j < K; ++j) {
        EXPECT_GE(x[2 * j], 1);
        EXPECT_LT(x[2 * j], 64);  // keys in [1, V/2)
        EXPECT_GE(x[2 * j + 1], 64);
        EXPECT_LT(x[2 * j + 1], 128);  // values in [V/2, V)
        kv[x[2 * j]] = x[2 * j + 1];
        values.insert(x[2 * j + 1]);
        EXPECT_EQ(y[2 * j], -100);
        EXPECT_EQ(y[2 * j + 1], -100);
      }
      EXPECT_EQ(kv.size(), size_t(K)) << "keys distinct";
      EXPECT_EQ(values.size(), size_t(K)) << "values distinct";
      std::set<int64_t> queried;
      for (int64_t p = 2 * K; p < L; ++p) {
        if (y[p] == -100) {
          if (!random_fill) {
            EXPECT_EQ(x[p], 0);
          }
          EXPECT_GE(x[p], 0);
          EXPECT_LT(x[p], 128);
          continue;
        }
        EXPECT_EQ((p - 2 * K) % 2, 0) << "queries sit at 2K + 2 * gap";
        ASSERT_TRUE(kv.count(x[p])) << "a query is one of the keys";
        EXPECT_EQ(y[p], kv[x[p]]) << "the target of a query is its key's value";
        queried.insert(x[p]);
        ++gap_count[(p - 2 * K) / 2];
      }
      EXPECT_EQ(queried.size(), size_t(K)) << "every key is queried exactly once";
    }
    // p(gap) ∝ (gap+1)^(a-1) favours small gaps: gap 0 far more often than the last one.
    EXPECT_GT(gap_count[0], 3 * gap_count[(L - 2 * K) / 2 - 1]);
  }
}

TEST(Mqar, ReproducibleAndShardable) {
  MqarOptions o{256, 32, 4};
  Batch a = mqar_batch(o, 11, 0, 8), b = mqar_batch(o, 11, 0, 8), c = mqar_batch(o, 12, 0, 8);
  EXPECT_EQ(a.inputs.to_vector(), b.inputs.to_vector());
  EXPECT_NE(a.inputs.to_vector(), c.inputs.to_vector());
  Batch tail = mqar_batch(o, 11, 5, 3);  // example e depends only on (seed, e)
  EXPECT_EQ(tail.inputs.to_vector(), a.inputs.narrow(0, 5, 3).contiguous().to_vector());
  EXPECT_EQ(tail.targets.to_vector(), a.targets.narrow(0, 5, 3).contiguous().to_vector());

  MqarSource r0(o, 2, 11, 0, 2), r1(o, 2, 11, 1, 2);
  EXPECT_EQ(r0.next().inputs.to_vector(), a.inputs.narrow(0, 0, 2).contiguous().to_vector());
  EXPECT_EQ(r1.next().inputs.to_vector(), a.inputs.narrow(0, 2, 2).contiguous().to_vector());
  EXPECT_EQ(r0.cursor(), (Cursor{0, 4}));
  Batch next0 = r0.next();
  MqarSource resumed(o, 2, 11, 0, 2);
  resumed.set_cursor({0, 4});
  EXPECT_EQ(resumed.next().inputs.to_vector(), next0.inputs.to_vector());
  EXPECT_THROW(mqar_batch(MqarOptions{256, 30, 8}, 1, 0, 1), Error);  // 4K > L
  EXPECT_THROW(mqar_batch(MqarOptions{256, 33, 4}, 1, 0, 1), Error);  // odd L
}

// Zoology's training mixture: each example draws its pair count from the doubling ladder
// {m, 2m, ...} plus K and is a valid MQAR example with that many pairs in the same seq_len.
TEST(Mqar, TrainingMixtureDrawsPairCountsFromTheLadder) {
  EXPECT_EQ(mqar_kv_ladder(MqarOptions{160, 256, 32, 0.01, true, 4}), (std::vector<int64_t>{4, 8, 16, 32}));
  EXPECT_EQ(mqar_kv_ladder(MqarOptions{160, 256, 25, 0.01, true, 5}), (std::vector<int64_t>{5, 10, 20, 25}));
  EXPECT_EQ(mqar_kv_ladder(MqarOptions{160, 256, 32}), (std::vector<int64_t>{32}));
  EXPECT_THROW(mqar_kv_ladder(MqarOptions{160, 256, 8, 0.01, true, 9}), Error);  // min > K

  const int64_t B = 400, L = 256, V = 160;
  MqarOptions o{V, L, 32, 0.01, true, 4};
  Batch b = mqar_batch(o, 9, 0, B);
  ASSERT_EQ(b.inputs.shape(), (Shape{B, L}));
  std::map<int64_t, int64_t> examples_with;  // pair count -> examples
  for (int64_t e = 0; e < B; ++e) {
    const int64_t* x = b.inputs.data<int64_t>() + e * L;
    const int64_t* y = b.targets.data<int64_t>() + e * L;
    int64_t K = 0;  // the number of queries is the example's pair count
    for (int64_t p = 0; p < L; ++p) K += y[p] != -100;
    ASSERT_TRUE(K == 4 || K == 8 || K == 16 || K == 32) << "example " << e << " has " << K << " queries";
    ++examples_with[K];
    std::map<int64_t, int64_t> kv;
    for (int64_t j = 0; j < K; ++j) {
      EXPECT_TRUE(x[2 * j] >= 1 && x[2 * j] < V / 2 && x[2 * j + 1] >= V / 2 && x[2 * j + 1] < V);
      kv[x[2 * j]] = x[2 * j + 1];
    }
    ASSERT_EQ(kv.size(), size_t(K)) << "keys distinct";
    for (int64_t p = 0; p < L; ++p) {
      if (y[p] == -100) continue;
      ASSERT_GE(p, 2 * K) << "queries follow the pairs";
      EXPECT_EQ((p - 2 * K) % 2, 0);
      ASSERT_TRUE(kv.count(x[p]));
      EXPECT_EQ(y[p], kv[x[p]]);
    }
  }
  for (int64_t K : {4, 8, 16, 32})  // uniform over 4 rungs: 100 expected each, sd ~8.7
    EXPECT_TRUE(examples_with[K] > 60 && examples_with[K] < 140) << K << " pairs: " << examples_with[K];

  // a ladder of one rung (min == K) is the plain generator, stream for stream
  MqarOptions same = o;
  same.min_kv_pairs = 32;
  MqarOptions plain = o;
  plain.min_kv_pairs = 0;
  EXPECT_EQ(mqar_batch(same, 9, 0, 8).inputs.to_vector(), mqar_batch(plain, 9, 0, 8).inputs.to_vector());
  EXPECT_EQ(mqar_batch(same, 9, 0, 8).targets.to_vector(), mqar_batch(plain, 9, 0, 8).targets.to_vector());
}

// Zoology's mixture of lengths: the rung of m * 2^i pairs is an example of min(L, min_seq_len *
// 2^i) tokens at the start of the row; the rest of the row is 0 without targets, fills or not.
TEST(Mqar, MixtureRungsAreShorterExamplesAtTheStartOfTheRow) {
  MqarOptions o{160, 256, 32, 0.01, true, 4, 64};
  EXPECT_EQ(mqar_len_ladder(o), (std::vector<int64_t>{64, 128, 256, 256}));
  EXPECT_EQ(mqar_len_ladder(MqarOptions{160, 256, 8, 0.01, true, 4, 64}), (std::vector<int64_t>{64, 256}));  // the target: seq_len
  const int64_t B = 200, L = 256;
  Batch b = mqar_batch(o, 11, 0, B);
  std::map<int64_t, int64_t> len_of{{4, 64}, {8, 128}, {16, 256}, {32, 256}}, examples_with;
  for (int64_t e = 0; e < B; ++e) {
    const int64_t* x = b.inputs.data<int64_t>() + e * L;
    const int64_t* y = b.targets.data<int64_t>() + e * L;
    int64_t K = 0, last_query = -1, nonzero_after = 0;
    for (int64_t p = 0; p < L; ++p)
      if (y[p] != -100) ++K, last_query = p;
    ASSERT_TRUE(len_of.count(K)) << "example " << e << " has " << K << " queries";
    ++examples_with[K];
    const int64_t len = len_of[K];
    EXPECT_LT(last_query, len) << "example " << e;
    for (int64_t p = len; p < L; ++p) nonzero_after += x[p] != 0;
    EXPECT_EQ(nonzero_after, 0) << "example " << e << " (" << K << " pairs) writes past its " << len << " tokens";
    int64_t fills = 0;  // random fills inside the example (random_non_queries)
    for (int64_t p = 2 * K; p < len; ++p) fills += y[p] == -100 && x[p] != 0;
    EXPECT_GT(fills, 0) << "example " << e;
  }
  for (int64_t K : {4, 8, 16, 32}) EXPECT_GT(examples_with[K], 25) << K << " pairs";
  // each rung must hold its pairs: 4 pairs in 8 tokens do not fit
  EXPECT_THROW(mqar_batch(MqarOptions{160, 256, 32, 0.01, true, 4, 8}, 1, 0, 1), Error);
  EXPECT_THROW(mqar_batch(MqarOptions{160, 256, 32, 0.01, true, 0, 64}, 1, 0, 1), Error);  // no mixture
}

// The curriculum walks the rungs in order: example i is rung min(i / interval, last), whichever
// batch (or data-parallel shard) draws it.
TEST(Mqar, CurriculumWalksTheRungsInOrderThenStaysOnTheTarget) {
  MqarOptions o{160, 256, 32, 0.01, false, 4, 64, 10};
  const int64_t L = 256;
  auto pairs_of = [&](const Batch& b, int64_t e) {
    int64_t K = 0;
    for (int64_t p = 0; p < L; ++p) K += b.targets.data<int64_t>()[e * L + p] != -100;
    return K;
  };
  Batch b = mqar_batch(o, 3, 0, 60);
  const std::vector<int64_t> want{4, 8, 16, 32, 32, 32};
  for (int64_t e = 0; e < 60; ++e) ASSERT_EQ(pairs_of(b, e), want[static_cast<size_t>(e / 10)]) << "example " << e;
  Batch shard = mqar_batch(o, 3, 25, 10);  // examples 25..34 of the same stream
  for (int64_t e = 0; e < 10; ++e) EXPECT_EQ(pairs_of(shard, e), want[static_cast<size_t>((25 + e) / 10)]);
  EXPECT_EQ(shard.inputs.to_vector(), b.inputs.narrow(0, 25, 10).contiguous().to_vector());
  EXPECT_THROW(mqar_batch(MqarOptions{160, 256, 32, 0.01, false, 0, 0, 10}, 1, 0, 1), Error);  // no ladder
}

TEST(Mqar, AccuracyMetric) {
  MqarOptions o{64, 32, 4};
  Batch b = mqar_batch(o, 5, 0, 6);
  // Perfect ids: the targets with ignored positions replaced by anything; wrong: value + 1.
  std::vector<double> t = b.targets.to_vector(), good = t, bad = t;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] < 0) good[i] = bad[i] = static_cast<double>(i % 64);
    else bad[i] = t[i] + 1;
  }
  EXPECT_DOUBLE_EQ(mqar_accuracy(from_vector(good, {6, 32}, DType::i64), b.targets), 1.0);
  EXPECT_DOUBLE_EQ(mqar_accuracy(from_vector(bad, {6, 32}, DType::i64), b.targets), 0.0);
  // Logits peaked at the targets -> 1; peaked one id higher -> 0.
  Tensor logits = zeros({6, 32, 64}), wrong = zeros({6, 32, 64});
  for (int64_t i = 0; i < 6 * 32; ++i)
    if (t[static_cast<size_t>(i)] >= 0) {
      logits.data<float>()[i * 64 + static_cast<int64_t>(t[static_cast<size_t>(i)])] = 5;
      wrong.data<float>()[i * 64 + (static_cast<int64_t>(t[static_cast<size_t>(i)]) + 1) % 64] = 5;
    }
  EXPECT_DOUBLE_EQ(mqar_accuracy(logits, b.targets), 1.0);
  EXPECT_DOUBLE_EQ(mqar_accuracy(wrong, b.targets), 0.0);
  // Per example, then the mean: example 0 gets 1 of 2 right, example 1 gets 1 of 1 -> 0.75.
  Tensor targets = from_vector({7, -100, 9, -100, -100, 4}, {2, 3}, DType::i64);
  Tensor pred = from_vector({7, 0, 1, 3, 3, 4}, {2, 3}, DType::i64);
  EXPECT_DOUBLE_EQ(mqar_accuracy(pred, targets), 0.75);
  EXPECT_THROW(mqar_accuracy(from_vector({1, 2}, {1, 2}, DType::i64), targets), Error);
}

TEST(IclRegression, LayoutAndExactLinearTargets) {
  IclRegressionOptions o{5, 7, 0.0};
  const int64_t B = 4, d = 5, n = 7;
  IclBatch b = icl_regression_batch(o, 9, 0, B, DType::f64);
  ASSERT_EQ(b.inputs.shape(), (Shape{B, 2 * n, d + 1}));
  ASSERT_EQ(b.targets.shape(), (Shape{B, n}));
  ASSERT_EQ(b.w.shape(), (Shape{B, d}));
  const double* x = b.inputs.data<double>();
  const double* y = b.targets.data<double>();
  const double* w = b.w.data<double>();
  for (int64_t e = 0; e < B; ++e)
    for (int64_t i = 0; i < n; ++i) {
      const double* xt = x + (e * 2 * n + 2 * i) * (d + 1);
      const double* yt = xt + (d + 1);
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) {
        dot += w[e * d + k] * xt[k];
        EXPECT_EQ(yt[k], 0.0);
      }
      EXPECT_EQ(xt[d], 0.0);
      EXPECT_NEAR(y[e * n + i], dot, 1e-12);
      EXPECT_EQ(yt[d], y[e * n + i]);
    }
  // Reproducible per example; f32 is the f64 draw rounded.
  IclBatch tail = icl_regression_batch(o, 9, 2, 2, DType::f32);
  std::vector<double> t32 = tail.targets.to_vector(), t64 = b.targets.narrow(0, 2, 2).contiguous().to_vector();
  for (size_t i = 0; i < t32.size(); ++i) EXPECT_NEAR(t32[i], t64[i], 1e-5);
}

TEST(IclRegression, StatisticsOfWAndNoise) {
  const int64_t B = 1000, d = 8, n = 4;
  IclBatch b = icl_regression_batch({d, n, 0.5}, 21, 0, B, DType::f64);
  std::vector<double> w = b.w.to_vector(), x = b.inputs.to_vector(), y = b.targets.to_vector();
  double wvar = 0, r2 = 0, xvar = 0;
  for (double v : w) wvar += v * v / static_cast<double>(w.size());
  for (int64_t e = 0; e < B; ++e)
    for (int64_t i = 0; i < n; ++i) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) {
        double xv = x[static_cast<size_t>((e * 2 * n + 2 * i) * (d + 1) + k)];
        dot += w[static_cast<size_t>(e * d + k)] * xv;
        xvar += xv * xv / static_cast<double>(B * n * d);
      }
      double r = y[static_cast<size_t>(e * n + i)] - dot;
      r2 += r * r / static_cast<double>(B * n);
    }
  EXPECT_NEAR(wvar, 1.0 / d, 0.1 / d);  // w ~ N(0, I/dim); 8000 draws
  EXPECT_NEAR(xvar, 1.0, 0.05);         // x ~ N(0, I)
  EXPECT_NEAR(std::sqrt(r2), 0.5, 0.03);  // noise std
}

TEST(IclRegression, MseMetricAndLoss) {
  IclBatch b = icl_regression_batch({3, 4, 0.0}, 1, 0, 2, DType::f64);
  EXPECT_DOUBLE_EQ(icl_regression_mse(b.targets, b.targets), 0.0);
  // One scalar per position: the even positions carry the answers, odd ones are ignored.
  Tensor inter = randn({2, 8}, 3, DType::f64);
  std::vector<double> yv = b.targets.to_vector(), iv = inter.to_vector();
  for (size_t i = 0; i < yv.size(); ++i) iv[2 * i] = yv[i] + (i == 5 ? 0.5 : 0.0);
  inter = from_vector(iv, {2, 8}, DType::f64);
  EXPECT_NEAR(icl_regression_mse(inter, b.targets), 0.25 / 8, 1e-15);
  EXPECT_NEAR(icl_regression_mse(inter.reshape({2, 8, 1}), b.targets), 0.25 / 8, 1e-15);
  std::vector<double> per = icl_regression_mse_per_point(inter, b.targets);
  ASSERT_EQ(per.size(), 4u);
  EXPECT_NEAR(per[1], 0.25 / 2, 1e-15);  // flat index 5 = example 1, point 1
  EXPECT_EQ(per[0], 0.0);
  double ysq = 0;
  for (double v : yv) ysq += v * v / 8;
  EXPECT_NEAR(icl_regression_mse(zeros({2, 4}, DType::f64), b.targets), ysq, 1e-15);

  Tensor p = inter.detach().requires_grad_();
  Tensor loss = icl_regression_loss(p, b.targets);
  EXPECT_NEAR(loss.item(), 0.25 / 8, 1e-15);
  loss.backward();
  std::vector<double> g = p.grad().to_vector();
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], i == 10 ? 2 * 0.5 / 8 : 0.0, 1e-15) << i;  // d/dp mean((p - y)^2)
  EXPECT_THROW(icl_regression_mse(zeros({2, 5}), b.targets), Error);
}

TEST(IclRegression, SourceShardsAndResumes) {
  IclRegressionOptions o{4, 6, 0.1};
  IclRegressionSource r1(o, 3, 8, 1, 2);
  Batch first = r1.next();
  EXPECT_EQ(first.inputs.to_vector(), icl_regression_batch(o, 8, 3, 3).inputs.to_vector());
  Batch second = r1.next();
  IclRegressionSource resumed(o, 3, 8, 1, 2);
  resumed.set_cursor({0, 6});
  EXPECT_EQ(resumed.next().targets.to_vector(), second.targets.to_vector());
}

}  // namespace
}  // namespace skein
