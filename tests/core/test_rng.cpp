// test_rng.cpp — Philox against its published known-answer vector, reproducibility and
// thread-count independence of draws, and basic distribution statistics.
#include <gtest/gtest.h>
#include <cmath>
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {
namespace {

TEST(Rng, PhiloxKnownAnswer) {
  // Random123 kat_vectors: philox4x32 10 rounds, counter 0, key 0.
  auto r = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
  // counter = key = all ones
  auto s = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(s[0], 0x408f276du);
  EXPECT_EQ(s[1], 0x41c83b0eu);
  EXPECT_EQ(s[2], 0xa20bc7c6u);
  EXPECT_EQ(s[3], 0x6d5451fdu);
}

TEST(Rng, SameSeedSameNumbersAtOneAndTwoThreads) {
  const Shape shape{100003};
  set_num_threads(1);
  Tensor a = randn(shape, 42), u = uniform(shape, 42, -2, 3);
  set_num_threads(2);
  Tensor b = randn(shape, 42), v = uniform(shape, 42, -2, 3);
  set_num_threads(1);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_EQ(u.to_vector(), v.to_vector());
  EXPECT_NE(randn(shape, 43).to_vector(), a.to_vector());
}

TEST(Rng, GeneratorAdvancesAndRestores) {
  Generator g(7);
  Tensor first = randn({10}, g);
  Tensor second = randn({10}, g);
  EXPECT_NE(first.to_vector(), second.to_vector());
  EXPECT_EQ(g.offset(), 6u);  // 3 blocks of 4 per draw of 10
  Generator h(7);
  h.set_state(7, 3);
  EXPECT_EQ(randn({10}, h).to_vector(), second.to_vector());
}

TEST(Rng, Statistics) {
  const int64_t n = 200000;
  auto z = randn({n}, 3, DType::f64).to_vector();
  double m = 0, v = 0;
  for (double x : z) m += x;
  m /= n;
  for (double x : z) v += (x - m) * (x - m);
  v /= n;
  EXPECT_NEAR(m, 0.0, 0.01);  // 4.5 standard errors
  EXPECT_NEAR(v, 1.0, 0.015);
  auto u = uniform({n}, 4, 2.0, 5.0, DType::f64).to_vector();
  double um = 0, lo = 10, hi = -10;
  for (double x : u) { um += x; lo = std::min(lo, x); hi = std::max(hi, x); }
  EXPECT_NEAR(um / n, 3.5, 0.01);
  EXPECT_GE(lo, 2.0);
  EXPECT_LT(hi, 5.0);
}

TEST(Rng, DropoutMaskIsSeededAndScaled) {
  Tensor x = ones({10000}, DType::f64);
  Generator g1(9), g2(9);
  auto a = dropout(x, 0.25, g1).to_vector();
  auto b = dropout(x, 0.25, g2).to_vector();
  EXPECT_EQ(a, b);
  int64_t kept = 0;
  for (double v : a) {
    EXPECT_TRUE(v == 0.0 || std::fabs(v - 1.0 / 0.75) < 1e-12);
    kept += v != 0.0;
  }
  EXPECT_NEAR(kept / 10000.0, 0.75, 0.02);
  EXPECT_EQ(dropout(x, 0.25, g1, /*training=*/false).to_vector(), x.to_vector());
}

}  // namespace
}  // namespace skein
