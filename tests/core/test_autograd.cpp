// test_autograd.cpp — the engine: diamond graphs, a tensor used twice, accumulation
// across backward calls, retain_graph, no_grad, broadcast reduction in accumulate_grad,
// and saved tensors released as soon as their backward has run.
#include <gtest/gtest.h>
#include <cmath>
#include "core/allocator.h"
#include "core/ops.h"

namespace skein {
namespace {

Tensor leaf(std::vector<double> v, Shape s) { return from_vector(v, s, DType::f64).requires_grad_(); }

TEST(Autograd, DiamondGraph) {
  // y = a*b + a*c with b = 2a, c = a^2  ->  y = 2a^2 + a^3, dy/da = 4a + 3a^2
  Tensor a = leaf({1.5, -2.0}, {2});
  Tensor b = mul(a, 2.0), c = mul(a, a);
  Tensor y = add(mul(a, b), mul(a, c));
  sum(y).backward();
  EXPECT_DOUBLE_EQ(a.grad().at({0}), 4 * 1.5 + 3 * 1.5 * 1.5);
  EXPECT_DOUBLE_EQ(a.grad().at({1}), 4 * -2.0 + 3 * 4.0);
}

TEST(Autograd, TensorUsedTwiceInOneOp) {
  Tensor a = leaf({3.0}, {1});
  sum(mul(a, a)).backward();
  EXPECT_DOUBLE_EQ(a.grad().item(), 6.0);
  Tensor b = leaf({3.0}, {1});
  sum(add(b, b)).backward();
  EXPECT_DOUBLE_EQ(b.grad().item(), 2.0);
}

TEST(Autograd, AccumulatesAcrossBackwardCalls) {
  Tensor a = leaf({2.0, 5.0}, {2});
  sum(mul(a, 3.0)).backward();
  sum(mul(a, a)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3 + 4, 3 + 10}));
  a.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Autograd, RetainGraph) {
  Tensor a = leaf({2.0}, {1});
  Tensor y = sum(exp(a));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_NEAR(a.grad().item(), 2 * std::exp(2.0), 1e-12);
  EXPECT_THROW(y.backward(), Error);  // the second plain backward freed the graph
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor a = leaf({1.0, 2.0}, {2});
  {
    NoGradGuard ng;
    Tensor y = mul(a, a);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(mul(a, a).requires_grad());
}

TEST(Autograd, BroadcastGradientsAreReducedToInputShape) {
  Tensor a = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor bias = leaf({10, 20, 30}, {3});
  Tensor s = leaf({2}, {});
  sum(mul(add(a, bias), s)).backward();
  EXPECT_EQ(bias.grad().shape(), (Shape{3}));
  EXPECT_EQ(bias.grad().to_vector(), (std::vector<double>{4, 4, 4}));
  EXPECT_EQ(s.grad().shape(), Shape{});
  EXPECT_DOUBLE_EQ(s.grad().item(), 21 + 2 * 60);  // Σ(a + bias)
}

TEST(Autograd, DtypeConversionBackward) {
  Tensor a = leaf({1.0, 2.0}, {2});
  Tensor y = sum(mul(a.to(DType::f32), 3.0));
  EXPECT_EQ(y.dtype(), DType::f32);
  y.backward();
  EXPECT_EQ(a.grad().dtype(), DType::f64);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 3}));
}

TEST(Autograd, LeafGradsNeverAlias) {
  // Both inputs of add get the same incoming gradient; their .grad must be separate.
  Tensor a = leaf({1.0}, {1}), b = leaf({1.0}, {1});
  sum(add(a, b)).backward();
  mul_(a.grad(), 5.0);
  EXPECT_DOUBLE_EQ(b.grad().item(), 1.0);
}

TEST(Autograd, SavedTensorsReleasedAfterBackward) {
  // exp saves its output (1M doubles = 8 MB); after backward the engine frees it while
  // the graph (y) is still alive.
  Tensor a = zeros({1 << 20}, DType::f64).requires_grad_();
  int64_t live_before = cpu_allocator::stats().bytes_live;
  Tensor y = sum(exp(a));
  int64_t live_forward = cpu_allocator::stats().bytes_live;
  EXPECT_GE(live_forward - live_before, 8 << 20);  // the saved output is alive
  y.backward();
  Tensor g = a.grad();
  int64_t grad_bytes = 8 << 20;
  int64_t live_after = cpu_allocator::stats().bytes_live;
  // Only the gradient (8 MB) and small scalars remain; the 8 MB saved output is gone.
  EXPECT_LT(live_after - live_before, grad_bytes + 4096);
  // With retain_graph the saved output stays.
  a.zero_grad();
  g = Tensor();
  Tensor y2 = sum(exp(a));
  y2.backward(Tensor(), true);
  EXPECT_GE(cpu_allocator::stats().bytes_live - live_before, 2 * grad_bytes);
}

TEST(Autograd, MultiOutputNode) {
  // outs = (2a, a*a) from one node; each output's gradient reaches the input, and an
  // output that gets no gradient arrives as undefined.
  Tensor a = leaf({3.0}, {1});
  auto make = [&] {
    Tensor a_saved = a.detach();
    return record_multi("pair", {mul(a_saved, 2.0), mul(a_saved, a_saved)}, {a},
                        [a_saved](const std::vector<Tensor>& g) {
      Tensor d = zeros({1}, DType::f64);
      if (g[0].defined()) d = add(d, mul(g[0], 2.0));
      if (g[1].defined()) d = add(d, mul(g[1], mul(a_saved, 2.0)));
      return std::vector<Tensor>{d};
    });
  };
  auto outs = make();
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0].grad_fn(), outs[1].grad_fn());
  sum(add(mul(outs[0], 5.0), outs[1])).backward();
  EXPECT_DOUBLE_EQ(a.grad().item(), 5 * 2 + 2 * 3);
  a.zero_grad();
  sum(make()[1]).backward();  // only the second output used
  EXPECT_DOUBLE_EQ(a.grad().item(), 6.0);
}

TEST(Autograd, BackwardNeedsScalarOrGradient) {
  Tensor a = leaf({1, 2}, {2});
  EXPECT_THROW(mul(a, 2.0).backward(), Error);
  Tensor y = mul(a, 2.0);
  y.backward(from_vector({1, 10}, {2}, DType::f64));
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{2, 20}));
  EXPECT_THROW(y.backward(ones({3}, DType::f64)), Error);
  EXPECT_THROW(zeros({2}).backward(), Error);  // no grad required
}

}  // namespace
}  // namespace skein

namespace skein {
namespace {

// The gradient-ready hook fires once per leaf of the outer graph, when its .grad is final:
// a leaf used early and late in the forward (so reached first and last in backward) is
// reported only after its last contribution; leaves reached only inside a checkpoint's
// nested backward are not reported; without a guard nothing is reported.
TEST(Autograd, GradReadyHookFiresOncePerLeafWhenItsGradientIsFinal) {
  Tensor a = leaf({1.5, -2.0}, {2}), b = leaf({0.5, 3.0}, {2}), w = leaf({2.0, 1.0}, {2});
  Tensor unused = leaf({1.0}, {1});
  Tensor x = mul(a, w);           // w contributes here (reached last in backward)
  Tensor y = mul(exp(x), b);      // b
  Tensor z = add(mul(y, w), y);   // and here (reached first)
  std::vector<std::pair<TensorImpl*, std::vector<double>>> seen;
  {
    GradReadyHookGuard guard([&](TensorImpl* t) {
      Tensor g(t->grad);
      seen.push_back({t, {g.at({0}), g.at({1})}});
    });
    sum(z).backward();
  }
  ASSERT_EQ(seen.size(), 3u);
  for (const Tensor& t : {a, b, w}) {
    int count = 0;
    for (const auto& [impl, g] : seen)
      if (impl == t.impl()) {
        ++count;
        EXPECT_EQ(g[0], t.grad().at({0}));  // the value at the hook is the final one
        EXPECT_EQ(g[1], t.grad().at({1}));
      }
    EXPECT_EQ(count, 1);
  }
  EXPECT_EQ(seen[0].first, b.impl());  // b is final first; a and w only at the last node
  (void)unused;

  // A checkpointed function's parameters live in the nested backward: not reported.
  Tensor p = leaf({0.3, 0.7}, {2}), q = leaf({1.0, 2.0}, {2});
  seen.clear();
  {
    GradReadyHookGuard guard([&](TensorImpl* t) { seen.push_back({t, {}}); });
    Tensor h = checkpoint([&](const std::vector<Tensor>& in) { return mul(in[0], p); }, {q});
    sum(h).backward();
  }
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, q.impl());
  EXPECT_TRUE(p.grad().defined());

  seen.clear();
  Tensor c = leaf({1.0}, {1});
  sum(mul(c, c)).backward();  // no guard: no calls
  EXPECT_TRUE(seen.empty());
}

}  // namespace
}  // namespace skein
