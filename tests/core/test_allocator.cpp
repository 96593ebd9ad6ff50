// test_allocator.cpp — the caching allocator: counters, reuse, and a steady-state
// training step that asks the system for no new memory.
#include <gtest/gtest.h>
#include <cmath>
#include "core/allocator.h"
#include "core/ops.h"

namespace skein {
namespace {

TEST(Allocator, CountersAndReuse) {
  auto s0 = cpu_allocator::stats();
  { Tensor a = zeros({1000}); auto s1 = cpu_allocator::stats(); EXPECT_GE(s1.bytes_live - s0.bytes_live, 4000); }
  auto s2 = cpu_allocator::stats();
  EXPECT_EQ(s2.bytes_live, s0.bytes_live);
  EXPECT_GE(s2.bytes_peak, s0.bytes_live + 4000);
  { Tensor b = zeros({1000}); }  // same size class: served from the cache
  auto s3 = cpu_allocator::stats();
  EXPECT_EQ(s3.system_allocs, s2.system_allocs);
  EXPECT_GT(s3.cache_hits, s2.cache_hits);
}

TEST(Allocator, SteadyStateTrainingStepAllocatesNothingNew) {
  Tensor w1 = mul(randn({32, 64}, 1), 0.1).requires_grad_(), w2 = mul(randn({64, 16}, 2), 0.1).requires_grad_();
  Tensor g = ones({64}).requires_grad_();
  Tensor x = randn({8, 10, 32}, 3);
  Tensor t = from_vector(std::vector<double>(80, 3.0), {80}, DType::i64);
  auto step = [&] {
    w1.zero_grad(); w2.zero_grad(); g.zero_grad();
    Tensor h = rms_norm(silu(matmul(x, w1)), g);
    Tensor loss = cross_entropy(matmul(h, w2).reshape({80, 16}), t);
    loss.backward();
    NoGradGuard ng;
    add_(w1, w1.grad(), -0.01);
    add_(w2, w2.grad(), -0.01);
  };
  step();
  step();
  auto before = cpu_allocator::stats();
  for (int i = 0; i < 3; ++i) step();
  auto after = cpu_allocator::stats();
  EXPECT_EQ(after.system_allocs, before.system_allocs);
  EXPECT_GT(after.cache_hits, before.cache_hits);
  EXPECT_EQ(after.bytes_live, before.bytes_live);  // nothing leaks from step to step
}

}  // namespace
}  // namespace skein
