// test_schedule.cpp — LR schedules at their boundary steps (0, warmup-1, warmup, midpoint,
// total, total+5) and their error checks.
#include <gtest/gtest.h>
#include <cmath>
#include <numbers>
#include "core/error.h"
#include "optim/schedule.h"

namespace skein {
namespace {

constexpr double P = 1e-3, M = 1e-4;

LrSchedule sched(LrDecay d, int64_t warmup = 10, int64_t total = 110) {
  return LrSchedule{.peak_lr = P, .min_lr = M, .warmup = warmup, .total = total, .decay = d};
}

TEST(Schedule, CosineBoundaries) {
  LrSchedule s = sched(LrDecay::cosine);
  EXPECT_DOUBLE_EQ(lr_at(s, 0), P / 10);      // (0 + 1) / 10 of the peak
  EXPECT_DOUBLE_EQ(lr_at(s, 4), P * 5 / 10);
  EXPECT_DOUBLE_EQ(lr_at(s, 9), P);           // warmup - 1: the peak
  EXPECT_DOUBLE_EQ(lr_at(s, 10), P);          // warmup: cos(0) = 1
  EXPECT_NEAR(lr_at(s, 60), (P + M) / 2, 1e-18);  // midpoint: cos(pi/2) = 0
  EXPECT_DOUBLE_EQ(lr_at(s, 35), M + (P - M) * 0.5 * (1 + std::cos(std::numbers::pi / 4)));
  EXPECT_DOUBLE_EQ(lr_at(s, 110), M);         // total
  EXPECT_DOUBLE_EQ(lr_at(s, 115), M);         // past total
  EXPECT_GT(lr_at(s, 109), M);
  for (int64_t t = 10; t < 110; ++t) EXPECT_GE(lr_at(s, t), lr_at(s, t + 1)) << t;  // monotone decay
}

TEST(Schedule, LinearBoundaries) {
  LrSchedule s = sched(LrDecay::linear);
  EXPECT_DOUBLE_EQ(lr_at(s, 0), P / 10);
  EXPECT_DOUBLE_EQ(lr_at(s, 9), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 10), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 60), (P + M) / 2);
  EXPECT_DOUBLE_EQ(lr_at(s, 35), P + (M - P) * 0.25);
  EXPECT_DOUBLE_EQ(lr_at(s, 110), M);
  EXPECT_DOUBLE_EQ(lr_at(s, 115), M);
}

TEST(Schedule, ConstantBoundaries) {
  LrSchedule s = sched(LrDecay::constant);
  EXPECT_DOUBLE_EQ(lr_at(s, 0), P / 10);
  EXPECT_DOUBLE_EQ(lr_at(s, 9), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 10), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 60), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 110), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 115), P);
  s.total = 0;  // ignored by constant
  EXPECT_DOUBLE_EQ(lr_at(s, 1000), P);
}

TEST(Schedule, NoWarmupAndZeroLengthDecay) {
  EXPECT_DOUBLE_EQ(lr_at(sched(LrDecay::cosine, 0, 100), 0), P);
  EXPECT_DOUBLE_EQ(lr_at(sched(LrDecay::constant, 0, 100), 0), P);
  LrSchedule s = sched(LrDecay::cosine, 10, 10);
  EXPECT_DOUBLE_EQ(lr_at(s, 9), P);
  EXPECT_DOUBLE_EQ(lr_at(s, 10), M);
}

TEST(Schedule, Errors) {
  EXPECT_THROW(lr_at(sched(LrDecay::cosine), -1), Error);
  EXPECT_THROW(lr_at(sched(LrDecay::cosine, 20, 10), 30), Error);  // total < warmup
  LrSchedule s = sched(LrDecay::linear);
  s.min_lr = 2 * P;
  EXPECT_THROW(lr_at(s, 50), Error);
  EXPECT_EQ(parse_lr_decay("linear"), LrDecay::linear);
  EXPECT_STREQ(lr_decay_name(parse_lr_decay("cosine")), "cosine");
  try {
    parse_lr_decay("cos");
    ADD_FAILURE() << "accepted 'cos'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'cos'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skein
