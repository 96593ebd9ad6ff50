// test_cuda_ops.cpp — every op of core/ops.h on CUDA against the same op on the CPU, on the same
// random inputs (contiguous, broadcast, permuted and sliced), outputs and gradients, f64 and f32.
// Skipped where no GPU is visible.
#include "tests/cuda/cuda_compare.h"
#include "core/precision.h"
#include "core/rng.h"

namespace skein::cudatest {
namespace {

using V = std::vector<Tensor>;

TEST(CudaOps, UnaryMath) {
  SKEIN_REQUIRE_GPU();
  const Shape s{3, 5, 7};
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops{
      {"neg", [](const Tensor& x) { return neg(x); }},      {"exp", [](const Tensor& x) { return exp(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},    {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"silu", [](const Tensor& x) { return silu(x); }},    {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},    {"elu", [](const Tensor& x) { return elu(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x); }},
      {"log_sigmoid", [](const Tensor& x) { return log_sigmoid(x); }},
      {"add_scalar", [](const Tensor& x) { return add(x, 0.75); }},
      {"mul_scalar", [](const Tensor& x) { return mul(x, -1.5); }},
      {"l2_normalize", [](const Tensor& x) { return l2_normalize(x); }}};
  for (DType dt : float_types())
    for (const auto& [name, op] : ops) {
      compare(name, [&](const V& a) { return op(a[0]); }, {plain(s, 1, dt)});
      compare(name, [&](const V& a) { return op(a[0]); }, {transposed(s, 2, dt)});
      compare(name, [&](const V& a) { return op(a[0]); }, {sliced(s, 3, dt)});
    }
}

TEST(CudaOps, PositiveDomainMath) {
  SKEIN_REQUIRE_GPU();
  const Shape s{4, 9};
  for (DType dt : float_types()) {
    compare("log", [](const V& a) { return log(a[0]); }, {positive(s, 4, dt)});
    compare("sqrt", [](const V& a) { return sqrt(a[0]); }, {positive(s, 5, dt)});
    compare("rsqrt", [](const V& a) { return rsqrt(a[0]); }, {positive(s, 6, dt)});
    compare("pow", [](const V& a) { return pow(a[0], 1.7); }, {positive(s, 7, dt)});
  }
}

TEST(CudaOps, BinaryBroadcast) {
  SKEIN_REQUIRE_GPU();
  const Shape s{2, 3, 8};
  for (DType dt : float_types()) {
    for (auto [name, op] : std::vector<std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&)>>{
             {"add", add}, {"sub", sub}, {"mul", mul}}) {
      compare(name, [op](const V& a) { return op(a[0], a[1]); }, {plain(s, 10, dt), broadcast(s, 11, dt)});
      compare(name, [op](const V& a) { return op(a[0], a[1]); }, {transposed(s, 12, dt), sliced(s, 13, dt)});
      compare(name, [op](const V& a) { return op(a[0], a[1]); }, {plain(s, 14, dt), plain({1}, 15, dt)});
    }
    compare("div", [](const V& a) { return div(a[0], a[1]); }, {plain(s, 16, dt), positive({8}, 17, dt)});
  }
}

TEST(CudaOps, WhereAndMaskedFill) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Input cond{relu(randn({4, 6}, 20, dt)), nullptr, false};  // nonzero where positive
    compare("where", [](const V& a) { return where(a[0], a[1], a[2]); }, {cond, plain({4, 6}, 21, dt), broadcast({4, 6}, 22, dt)});
    compare("masked_fill", [](const V& a) { return masked_fill(a[1], a[0], -3.0); }, {cond, transposed({4, 6}, 23, dt)});
  }
}

TEST(CudaOps, InPlace) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Tensor h = randn({5, 7}, 30, dt), src = randn({7}, 31, dt);
    Tensor d = h.to(Device::cuda);
    add_(h, src, 0.5);
    add_(d, src.to(Device::cuda), 0.5);
    mul_(h.narrow(1, 1, 3), -2.0);
    mul_(d.narrow(1, 1, 3), -2.0);
    EXPECT_LE(rel_l2(h, d), tolerance(dt));
    Tensor f = Tensor::empty({3, 4}, dt, Device::cuda);
    fill_(f, 2.5);
    for (double v : f.to_vector()) EXPECT_EQ(v, 2.5);
    Tensor dst = zeros({4, 7}, DType::f64, Device::cuda);  // copy_ across devices, dtypes and a broadcast
    copy_(dst, src);
    EXPECT_LE(rel_l2(dst, src.to(DType::f64).expand({4, 7}).contiguous()), 1e-7);
  }
}

TEST(CudaOps, Reductions) {
  SKEIN_REQUIRE_GPU();
  const Shape s{3, 4, 50};
  for (DType dt : float_types()) {
    compare("sum all", [](const V& a) { return sum(a[0]); }, {plain(s, 40, dt)});
    compare("sum last", [](const V& a) { return sum(a[0], {-1}); }, {plain(s, 41, dt)});
    compare("sum middle", [](const V& a) { return sum(a[0], {1}, true); }, {transposed(s, 42, dt)});
    compare("sum 0,2", [](const V& a) { return sum(a[0], {0, 2}); }, {sliced(s, 43, dt)});
    compare("mean", [](const V& a) { return mean(a[0], {0}); }, {plain(s, 44, dt)});
    compare("mean all", [](const V& a) { return mean(a[0]); }, {plain(s, 45, dt)});
    compare("max last", [](const V& a) { return max(a[0], -1); }, {plain(s, 46, dt)});
    compare("max middle", [](const V& a) { return max(a[0], 1, true); }, {plain(s, 47, dt)});
    compare("logsumexp last", [](const V& a) { return logsumexp(a[0], -1); }, {plain(s, 48, dt)});
    compare("logsumexp first", [](const V& a) { return logsumexp(a[0], 0); }, {plain(s, 49, dt)});
    compare("cumsum", [](const V& a) { return cumsum(a[0], 2); }, {plain(s, 50, dt)});
    compare("cumsum reverse", [](const V& a) { return cumsum(a[0], 1, true); }, {transposed(s, 51, dt)});
  }
}

TEST(CudaOps, Matmul) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    auto mm = [](const V& a) { return matmul(a[0], a[1]); };
    compare("matmul 2d", mm, {plain({17, 33}, 60, dt), plain({33, 9}, 61, dt)});
    compare("matmul transposed", mm, {transposed({17, 33}, 62, dt), transposed({33, 9}, 63, dt)});
    compare("matmul batched", mm, {plain({2, 3, 5, 8}, 64, dt), plain({2, 3, 8, 4}, 65, dt)});
    compare("matmul batch x 2d", mm, {plain({2, 6, 8}, 66, dt), plain({8, 5}, 67, dt)});
    compare("matmul batched transposed", mm, {transposed({4, 5, 8}, 68, dt), transposed({4, 8, 3}, 69, dt)});
    compare("matmul sliced", mm, {sliced({6, 7}, 70, dt), plain({7, 4}, 71, dt)});
    compare("matmul_f32 batched", [](const V& a) { return matmul_f32(a[0], a[1]); },
            {plain({2, 3, 5, 8}, 72, dt), plain({2, 3, 8, 4}, 73, dt)});
  }
}

TEST(CudaOps, SoftmaxAndCrossEntropy) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    compare("softmax", [](const V& a) { return softmax(a[0], -1); }, {plain({6, 40}, 80, dt)});
    compare("softmax dim 0", [](const V& a) { return softmax(a[0], 0); }, {plain({6, 40}, 81, dt)});
    compare("log_softmax", [](const V& a) { return log_softmax(a[0], -1); }, {transposed({6, 40}, 82, dt)});
    Input t = ids({12}, 30, 83);
    std::vector<double> tv = t.base.to_vector();
    tv[3] = -100;  // ignored
    t.base = from_vector(tv, {12}, DType::i64);
    compare("cross_entropy", [](const V& a) { return cross_entropy(a[0], a[1]); }, {plain({12, 30}, 84, dt), t});
  }
}

TEST(CudaOps, EmbeddingAndScatterRowsAreDeterministic) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Input id = ids({5, 9}, 11, 90);  // repeats: the backward adds several rows into one
    compare("embedding", [](const V& a) { return embedding(a[0], a[1]); }, {plain({11, 16}, 91, dt), id});
    Input idx = ids({40}, 7, 92);
    compare("scatter_rows", [](const V& a) { return scatter_rows(a[0], a[1], 7); }, {plain({40, 5}, 93, dt), idx});
  }
  // Two runs on the GPU give the same bits (no float atomics).
  Tensor src = randn({4096, 64}, 94).to(Device::cuda);
  Tensor id = ids({4096}, 13, 95).base.to(Device::cuda);
  EXPECT_EQ(scatter_rows(src, id, 13).to_vector(), scatter_rows(src, id, 13).to_vector());
}

TEST(CudaOps, RmsNormAndRope) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    compare("rms_norm", [](const V& a) { return rms_norm(a[0], a[1]); }, {plain({2, 7, 48}, 100, dt), plain({48}, 101, dt)});
    compare("rms_norm sliced", [](const V& a) { return rms_norm(a[0], a[1]); }, {sliced({5, 24}, 102, dt), plain({24}, 103, dt)});
    compare("rope", [](const V& a) { return rope(a[0], 10000.0, 3); }, {plain({2, 3, 11, 16}, 104, dt)});
    compare("rope permuted", [](const V& a) { return rope(a[0].transpose(1, 2), 500.0); }, {plain({2, 11, 3, 8}, 105, dt)});
    compare("rope scaled", [](const V& a) { return rope(a[0], RopeFreqs{{1.0, 0.3, 0.02, 0.001}, 1.17}, 2); },
            {plain({2, 3, 11, 8}, 106, dt)});
  }
}

TEST(CudaOps, DropoutDrawsTheSameMaskOnBothDevices) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Tensor x = randn({37, 29}, 110, dt);
    Generator g1(7), g2(7);
    Tensor a = dropout(x, 0.3, g1), b = dropout(x.to(Device::cuda), 0.3, g2);
    EXPECT_LE(rel_l2(a, b), tolerance(dt));
    EXPECT_EQ(g1.offset(), g2.offset());
    Tensor u1 = uniform({1001}, 5, 0.0, 1.0, dt);
    Generator g3(5);
    Tensor u2 = Tensor::empty({1001}, dt, Device::cuda);
    kern::kernels(Device::cuda).philox_uniform(dt, u2.raw_data(), 1001, g3.seed(), g3.advance(251), 0.0, 1.0);
    EXPECT_EQ(u1.to_vector(), u2.to_vector());  // the same Philox words, the same doubles
  }
}

TEST(CudaOps, JoinSplitAndViews) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    compare("cat", [](const V& a) { return cat({a[0], a[1]}, 1); }, {plain({3, 4, 5}, 120, dt), transposed({3, 2, 5}, 121, dt)});
    compare("stack", [](const V& a) { return stack({a[0], a[1]}, 0); }, {plain({4, 5}, 122, dt), sliced({4, 5}, 123, dt)});
    compare("split", [](const V& a) { return mul(split(a[0], {2, 3}, 1)[1], 2.0); }, {plain({4, 5}, 124, dt)});
    compare("views", [](const V& a) { return a[0].permute({2, 0, 1}).reshape({-1, 3}).narrow(0, 1, 5).contiguous(); },
            {plain({3, 2, 4}, 125, dt)});
    compare("expand clone", [](const V& a) { return a[0].expand({3, 4}).clone(); }, {plain({1, 4}, 126, dt)});
    compare("to dtype", [](const V& a) { return a[0].to(DType::f64); }, {plain({3, 3}, 127, dt)});
  }
}

// Ops whose CUDA path is composed of other ops' kernels (their fused CPU kernels save memory).
TEST(CudaOps, ComposedOps) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    Input t = ids({10}, 20, 150);
    compare("lm_head_cross_entropy", [](const V& a) { return lm_head_cross_entropy(a[0], a[1], a[2], -100, 4); },
            {plain({10, 8}, 151, dt), plain({20, 8}, 152, dt), t});
    compare("swiglu_down", [](const V& a) { return swiglu_down(a[0], a[1], a[2]); },
            {plain({2, 5, 12}, 153, dt), plain({2, 5, 12}, 154, dt), plain({7, 12}, 155, dt)});
    compare("checkpoint", [](const V& a) {
      return checkpoint([](const std::vector<Tensor>& x) { return tanh(matmul(x[0], x[1])); }, {a[0], a[1]});
    }, {plain({4, 6}, 156, dt), plain({6, 3}, 157, dt)});
  }
}

// The linear mixers have no fused CUDA kernel yet (issue "fast fused CUDA mixers"): linear
// attention and short_conv run as compositions of device ops (core/ops/composed.h), the delta
// rule runs its CPU kernel on host copies. Softmax attention has its kernels:
// test_cuda_attention.cpp. They must still give the CPU's values and gradients.
TEST(CudaOps, MixersWithoutFusedKernels) {
  SKEIN_REQUIRE_GPU();
  for (DType dt : float_types()) {
    compare("linear_attention", [](const V& a) {
      LinearAttentionResult r = linear_attention(a[0], a[1], a[2], neg(softplus(a[3])), Tensor(), 0.5, 4);
      return add(sum(r.out, {3}), sum(r.final_state, {2, 3}).reshape({1, 2, 1}));
    }, {plain({1, 2, 11, 4}, 133, dt), plain({1, 2, 11, 4}, 134, dt), plain({1, 2, 11, 3}, 135, dt), plain({1, 2, 11, 4}, 136, dt)});
    compare("delta_rule", [](const V& a) {
      return delta_rule(a[0], l2_normalize(a[1]), a[2], sigmoid(a[3]), log_sigmoid(a[4]), Tensor(), 0.5, 4).out;
    }, {plain({1, 2, 9, 4}, 137, dt), plain({1, 2, 9, 4}, 138, dt), plain({1, 2, 9, 3}, 139, dt), plain({1, 2, 9}, 140, dt),
        plain({1, 2, 9}, 141, dt)});
    compare("short_conv", [](const V& a) { return short_conv(a[0], a[1], a[2], true); },
            {plain({2, 7, 5}, 145, dt), plain({5, 4}, 146, dt), plain({2, 3, 5}, 147, dt)});
    compare("short_conv_tail", [](const V& a) { return short_conv_tail(a[0], a[1], 3); },
            {plain({2, 2, 5}, 148, dt), plain({2, 3, 5}, 149, dt)});
  }
}

}  // namespace
}  // namespace skein::cudatest

namespace skein::cudatest {
namespace {

// train.precision bf16-mixed on CUDA (cuBLAS bf16 GEMMs, f32 accumulation): the same rounded
// operands as the CPU's bf16-mixed matmul, so the two agree to f32-accumulation accuracy,
// values and gradients.
TEST(CudaOps, Bf16MixedMatmulMatchesTheCpu) {
  SKEIN_REQUIRE_GPU();
  const Tensor a = randn({3, 33, 70}, 1), b = randn({21, 70}, 2);
  auto run = [&](Device d) {
    PrecisionScope mixed(Precision::bf16_mixed, d, /*allow_emulation=*/true);
    Tensor x = a.to(d).detach().requires_grad_(), w = b.to(d).detach().requires_grad_();
    Tensor y = matmul(x, w.transpose(0, 1));
    sum(mul(y, y)).backward();
    return std::vector<Tensor>{y.to(Device::cpu), x.grad().to(Device::cpu), w.grad().to(Device::cpu)};
  };
  const auto cpu = run(Device::cpu), gpu = run(Device::cuda);
  for (size_t i = 0; i < cpu.size(); ++i) {
    const std::vector<double> c = cpu[i].to_vector(), g = gpu[i].to_vector();
    double diff = 0, big = 0;
    for (size_t j = 0; j < c.size(); ++j) diff = std::max(diff, std::fabs(c[j] - g[j])), big = std::max(big, std::fabs(c[j]));
    EXPECT_LE(diff, 1e-4 * big) << "output " << i;
  }
}

}  // namespace
}  // namespace skein::cudatest
