// test_gradcheck.cpp — finite-difference gradient checks (f64) for every differentiable op,
// with broadcast and non-contiguous (permuted, sliced) inputs.
#include "tests/gradcheck.h"

namespace skein {
namespace {
using testing::expect_gradcheck;
using testing::Fn;
using testing::rand64;
using V = std::vector<Tensor>;
using Binary = Tensor (*)(const Tensor&, const Tensor&);
using Unary = Tensor (*)(const Tensor&);

// A non-contiguous leaf: the transpose of a fresh [s1, s0] tensor.
Tensor transposed_leaf(int64_t s0, int64_t s1, uint64_t seed, double lo = -1, double hi = 1) {
  return uniform({s1, s0}, seed, lo, hi, DType::f64).transpose(0, 1);
}
// A non-contiguous leaf: a narrow slice out of a wider tensor.
Tensor sliced_leaf(int64_t s0, int64_t s1, uint64_t seed, double lo = -1, double hi = 1) {
  return uniform({s0, s1 + 3}, seed, lo, hi, DType::f64).narrow(1, 2, s1);
}

void check_binary(Binary op) {
  Fn f = [op](const V& x) { return op(x[0], x[1]); };
  expect_gradcheck(f, {rand64({3, 4}, 1), rand64({3, 4}, 2, 0.5, 2)});
  expect_gradcheck(f, {rand64({2, 3, 4}, 3), rand64({4}, 4, 0.5, 2)});      // trailing broadcast
  expect_gradcheck(f, {rand64({3, 1}, 5), rand64({1, 4}, 6, 0.5, 2)});      // both stretch
  expect_gradcheck(f, {transposed_leaf(3, 4, 7), rand64({3, 4}, 8, 0.5, 2)});
  expect_gradcheck(f, {sliced_leaf(3, 4, 9), rand64({}, 10, 0.5, 2)});      // scalar operand
}

TEST(GradCheck, Add) { check_binary(static_cast<Binary>(add)); }
TEST(GradCheck, Sub) { check_binary(static_cast<Binary>(sub)); }
TEST(GradCheck, Mul) { check_binary(static_cast<Binary>(mul)); }
TEST(GradCheck, Div) { check_binary(static_cast<Binary>(div)); }

TEST(GradCheck, ScalarOpsAndNeg) {
  expect_gradcheck([](const V& x) { return add(x[0], 2.5); }, {rand64({3, 4}, 11)});
  expect_gradcheck([](const V& x) { return mul(x[0], -1.5); }, {transposed_leaf(3, 4, 12)});
  expect_gradcheck([](const V& x) { return neg(x[0]); }, {sliced_leaf(3, 4, 13)});
}

void check_unary(Unary op, double lo, double hi) {
  Fn f = [op](const V& x) { return op(x[0]); };
  expect_gradcheck(f, {uniform({4, 5}, 21, lo, hi, DType::f64)});
  expect_gradcheck(f, {transposed_leaf(4, 5, 22, lo, hi)});
  expect_gradcheck(f, {sliced_leaf(4, 5, 23, lo, hi)});
}

TEST(GradCheck, Exp) { check_unary(static_cast<Unary>(exp), -2, 2); }
TEST(GradCheck, Log) { check_unary(static_cast<Unary>(log), 0.2, 3); }
TEST(GradCheck, Sqrt) { check_unary(static_cast<Unary>(sqrt), 0.2, 3); }
TEST(GradCheck, Rsqrt) { check_unary(static_cast<Unary>(rsqrt), 0.2, 3); }
TEST(GradCheck, Tanh) { check_unary(static_cast<Unary>(tanh), -2, 2); }
TEST(GradCheck, Sigmoid) { check_unary(static_cast<Unary>(sigmoid), -4, 4); }
TEST(GradCheck, Silu) { check_unary(static_cast<Unary>(silu), -4, 4); }
TEST(GradCheck, Gelu) { check_unary(static_cast<Unary>(gelu), -4, 4); }
TEST(GradCheck, Relu) {
  // Both signs, away from the kink at 0.
  Tensor x = from_vector({-1.5, 0.3, -0.2, 2.0, 0.7, -0.9}, {2, 3}, DType::f64);
  expect_gradcheck([](const V& x) { return relu(x[0]); }, {x});
  expect_gradcheck([](const V& x) { return relu(x[0]); }, {transposed_leaf(4, 5, 25, 0.1, 2)});
}
TEST(GradCheck, Elu) {
  Tensor x = from_vector({-1.5, 0.3, -0.2, 2.0, 0.7, -0.9}, {2, 3}, DType::f64);
  expect_gradcheck([](const V& x) { return elu(x[0]); }, {x});
  expect_gradcheck([](const V& x) { return elu(x[0]); }, {sliced_leaf(3, 4, 26, -2, -0.1)});
}

TEST(GradCheck, SoftplusLogSigmoidL2Normalize) {
  check_unary(static_cast<Unary>(softplus), -30, 30);
  check_unary(static_cast<Unary>(log_sigmoid), -30, 30);
  expect_gradcheck([](const V& x) { return l2_normalize(x[0]); }, {rand64({3, 5}, 27)});
  expect_gradcheck([](const V& x) { return l2_normalize(x[0], 1e-3); }, {transposed_leaf(4, 3, 28)});
  // values: softplus(0) = log 2, log_sigmoid(-40) stays finite, l2 rows have unit norm
  EXPECT_NEAR(softplus(zeros({1}, DType::f64)).item(), std::log(2.0), 1e-15);
  EXPECT_NEAR(log_sigmoid(full({1}, -40.0, DType::f64)).item(), -40.0, 1e-12);
  EXPECT_NEAR(sum(pow(l2_normalize(rand64({1, 6}, 29), 0.0), 2.0)).item(), 1.0, 1e-14);
}

// A head-split view ([B, H, T, D] of a [B, T, H, D] buffer) is normalised in its memory order:
// the same values as its contiguous copy, the output (and the input gradient) in the view's
// layout, and the finite-difference check through it.
TEST(GradCheck, L2NormalizeKeepsAHeadSplitLayout) {
  Tensor base = rand64({2, 5, 3, 4}, 30);
  Tensor view = base.permute({0, 2, 1, 3});
  Tensor y = l2_normalize(view);
  EXPECT_EQ(y.strides(), view.strides());
  EXPECT_EQ(y.to_vector(), l2_normalize(view.contiguous()).to_vector());
  Tensor leaf = base.detach().requires_grad_();
  Tensor w = rand64({2, 3, 5, 4}, 31);
  sum(mul(l2_normalize(leaf.permute({0, 2, 1, 3})), w)).backward();
  Tensor leaf2 = view.contiguous().detach().requires_grad_();
  sum(mul(l2_normalize(leaf2), w)).backward();
  EXPECT_EQ(leaf.grad().permute({0, 2, 1, 3}).to_vector(), leaf2.grad().to_vector());
  expect_gradcheck([](const V& x) { return l2_normalize(x[0].permute({0, 2, 1, 3})); }, {rand64({1, 4, 2, 3}, 32)});
}

TEST(GradCheck, Pow) {
  for (double p : {2.0, 3.0, 0.5, -1.5})
    expect_gradcheck([p](const V& x) { return pow(x[0], p); }, {sliced_leaf(3, 4, 24, 0.3, 2)});
}

TEST(GradCheck, SumMean) {
  Tensor x = rand64({2, 3, 4}, 31);
  expect_gradcheck([](const V& x) { return sum(x[0]); }, {x});
  expect_gradcheck([](const V& x) { return sum(x[0], {1}); }, {rand64({2, 3, 4}, 32)});
  expect_gradcheck([](const V& x) { return sum(x[0], {0, 2}, true); }, {rand64({2, 3, 4}, 33)});  // non-adjacent
  expect_gradcheck([](const V& x) { return sum(x[0], {0}); }, {transposed_leaf(3, 5, 34)});
  expect_gradcheck([](const V& x) { return mean(x[0], {-1}); }, {sliced_leaf(3, 4, 35)});
  expect_gradcheck([](const V& x) { return mean(x[0]); }, {rand64({3, 4}, 36)});
}

TEST(GradCheck, MaxLogsumexp) {
  expect_gradcheck([](const V& x) { return max(x[0], 1); }, {rand64({3, 5}, 41)});
  expect_gradcheck([](const V& x) { return max(x[0], 0, true); }, {transposed_leaf(4, 3, 42)});
  expect_gradcheck([](const V& x) { return logsumexp(x[0], -1); }, {sliced_leaf(3, 4, 43)});
  expect_gradcheck([](const V& x) { return logsumexp(x[0], 0, true); }, {rand64({3, 4, 2}, 44)});
}

TEST(GradCheck, Matmul) {
  Fn f = [](const V& x) { return matmul(x[0], x[1]); };
  expect_gradcheck(f, {rand64({3, 4}, 51), rand64({4, 5}, 52)});
  expect_gradcheck(f, {transposed_leaf(3, 4, 53), transposed_leaf(4, 5, 54)});     // both transposed
  expect_gradcheck(f, {rand64({2, 3, 4}, 55), rand64({2, 4, 5}, 56)});            // batched
  expect_gradcheck(f, {rand64({2, 3, 4}, 57), sliced_leaf(4, 5, 58)});            // shared 2-D b
  expect_gradcheck([](const V& x) { return matmul(x[0].permute({1, 0, 2}), x[1]); },
                   {rand64({3, 2, 4}, 59), rand64({2, 4, 3}, 60)});               // strided batch
}

TEST(GradCheck, SoftmaxLogSoftmax) {
  expect_gradcheck([](const V& x) { return softmax(x[0], -1); }, {rand64({3, 5}, 61, -2, 2)});
  expect_gradcheck([](const V& x) { return softmax(x[0], 0); }, {transposed_leaf(4, 3, 62, -2, 2)});
  expect_gradcheck([](const V& x) { return log_softmax(x[0], -1); }, {sliced_leaf(3, 5, 63, -2, 2)});
  expect_gradcheck([](const V& x) { return log_softmax(x[0], 1); }, {rand64({2, 3, 4}, 64, -2, 2)});
}

TEST(GradCheck, CrossEntropy) {
  Tensor t = from_vector({1, 0, 4, -100, 2}, {5}, DType::i64);
  expect_gradcheck([t](const V& x) { return cross_entropy(x[0], t); }, {rand64({5, 6}, 71, -2, 2)});
  expect_gradcheck([t](const V& x) { return cross_entropy(x[0], t); }, {transposed_leaf(5, 6, 72, -2, 2)});
}

TEST(GradCheck, Embedding) {
  Tensor ids = from_vector({1, 3, 1, 0, 3, 3}, {2, 3}, DType::i64);  // repeated ids accumulate
  expect_gradcheck([ids](const V& x) { return embedding(x[0], ids); }, {rand64({5, 4}, 81)});
  expect_gradcheck([ids](const V& x) { return embedding(x[0], ids.to(DType::i32)); }, {transposed_leaf(5, 4, 82)});
}

TEST(GradCheck, ScatterRows) {
  Tensor idx = from_vector({2, 0, 2, 3}, {4}, DType::i64);
  expect_gradcheck([idx](const V& x) { return scatter_rows(x[0], idx, 5); }, {rand64({4, 3}, 83)});
  Tensor out = scatter_rows(from_vector({1, 2, 3, 4}, {4, 1}, DType::f64), idx, 5);
  EXPECT_EQ(out.to_vector(), (std::vector<double>{2, 0, 4, 4, 0}));
}

TEST(GradCheck, RmsNorm) {
  Fn f = [](const V& x) { return rms_norm(x[0], x[1], 1e-6); };
  expect_gradcheck(f, {rand64({3, 8}, 91), rand64({8}, 92, 0.5, 1.5)});
  expect_gradcheck(f, {sliced_leaf(130, 6, 93), rand64({6}, 94, 0.5, 1.5)});  // > one row block
  expect_gradcheck(f, {transposed_leaf(4, 6, 95), rand64({6}, 96, 0.5, 1.5)});
}

TEST(GradCheck, Rope) {
  expect_gradcheck([](const V& x) { return rope(x[0], 10000.0, 0); }, {rand64({2, 3, 5, 8}, 101)});
  expect_gradcheck([](const V& x) { return rope(x[0], 500.0, 7); }, {transposed_leaf(5, 4, 102)});
  // scaled frequencies (layers/rope.h: llama3, yarn) and a cos/sin factor go through the same op
  expect_gradcheck([](const V& x) { return rope(x[0], RopeFreqs{{1.0, 0.3, 0.02, 0.001}, 1.17}, 5); },
                   {rand64({2, 3, 5, 8}, 103)});
}

TEST(GradCheck, CatStackSplit) {
  expect_gradcheck([](const V& x) { return cat({x[0], x[1], x[0]}, 1); }, {rand64({2, 3}, 111), transposed_leaf(2, 4, 112)});
  expect_gradcheck([](const V& x) { return stack({x[0], x[1]}, 0); }, {rand64({2, 3}, 113), sliced_leaf(2, 3, 114)});
  expect_gradcheck([](const V& x) { auto p = split(x[0], {1, 3}, 1); return mul(p[1], sum(p[0])); },
                   {rand64({3, 4}, 115)});
  expect_gradcheck([](const V& x) { auto p = split(x[0], 2, 0); return add(p[0], p[1]); }, {rand64({4, 3}, 116)});
  // Pieces that receive no gradient (the middle one, unused) and a piece used twice; the
  // input is a transposed view.
  expect_gradcheck([](const V& x) {
    auto p = split(x[0], {1, 2, 1}, 0);
    return add(mul(p[0], p[0]), mul(p[2], 3.0));
  }, {transposed_leaf(4, 3, 117)});
}

TEST(Split, UnusedPiecesGetZeroGradientAndUsedOnesTheirOwn) {
  Tensor x = rand64({5, 2}, 118);
  x.requires_grad_();
  auto p = split(x, {2, 1, 2}, 0);
  sum(mul(p[2], 2.0)).backward();
  const std::vector<double> g = x.grad().to_vector();
  const std::vector<double> want{0, 0, 0, 0, 0, 0, 2, 2, 2, 2};
  EXPECT_EQ(g, want);
}

TEST(GradCheck, WhereMaskedFill) {
  Tensor cond = from_vector({1, 0, 0, 1, 1, 0}, {2, 3}, DType::i64);
  expect_gradcheck([cond](const V& x) { return where(cond, x[0], x[1]); }, {rand64({2, 3}, 121), rand64({3}, 122)});
  expect_gradcheck([cond](const V& x) { return masked_fill(x[0], cond, -7.0); }, {transposed_leaf(2, 3, 123)});
}

TEST(GradCheck, Dropout) {
  // The same generator state on every evaluation gives the same mask.
  expect_gradcheck([](const V& x) { Generator g(5); return dropout(x[0], 0.3, g); }, {rand64({4, 6}, 131)});
}

TEST(GradCheck, Views) {
  expect_gradcheck([](const V& x) { return mul(x[0].reshape({4, 3}), x[0].reshape({4, 3})); }, {rand64({3, 4}, 141)});
  expect_gradcheck([](const V& x) { return x[0].permute({2, 0, 1}); }, {rand64({2, 3, 4}, 142)});
  expect_gradcheck([](const V& x) { return x[0].transpose(0, 1).reshape({-1}); }, {rand64({2, 3}, 143)});
  expect_gradcheck([](const V& x) { return x[0].narrow(1, 1, 2); }, {rand64({3, 4}, 144)});
  expect_gradcheck([](const V& x) { return x[0].expand({2, 3, 4}); }, {rand64({3, 1}, 145)});
  expect_gradcheck([](const V& x) { return x[0].contiguous(); }, {transposed_leaf(3, 4, 146)});
  expect_gradcheck([](const V& x) { return x[0].clone(); }, {sliced_leaf(3, 4, 147)});
}

}  // namespace
}  // namespace skein
