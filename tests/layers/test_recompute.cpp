// test_recompute.cpp — activation memory at the model level: train.recompute none / mlp /
// full and the fused LM head give the plain model's loss and every gradient (f64 ≤ 1e-12,
// f32 ≤ 1e-6 of the largest entry), for L (every variant), S, M and tied heads; full
// recompute lowers the step's allocator peak.
#include <gtest/gtest.h>
#include <cmath>
#include <map>
#include "core/allocator.h"
#include "layers/model.h"
#include "layers/recompute.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

ModelConfig small(const std::string& pattern, DType dt) {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.mlp_hidden = 24;
  c.layer_pattern = pattern;
  c.chunk_size = 4;
  c.mom_memories = 3;
  c.mom_topk = 2;
  c.dtype = dt;
  c.init_std = 0.2;
  return c;
}

struct Result {
  double loss = 0;
  std::map<std::string, Tensor> grads;
};

Result step(HybridLM& m, const Tensor& ids, const Tensor& targets) {
  m.zero_grad();
  LossParts l = m.loss(ids, targets);
  l.total.backward();
  Result r{l.total.item(), {}};
  for (auto& [name, p] : m.named_parameters()) r.grads[name] = p.grad().defined() ? p.grad().clone() : Tensor();
  return r;
}

Tensor ids_of(int64_t B, int64_t T, int64_t V, int64_t salt, bool with_ignored) {
  std::vector<double> v;
  for (int64_t i = 0; i < B * T; ++i)
    v.push_back(with_ignored && i % 5 == 4 ? -100.0 : static_cast<double>((i * 13 + salt) % V));
  return from_vector(v, {B, T}, DType::i64);
}

void expect_same(const Result& a, const Result& b, double tol, const std::string& what) {
  EXPECT_LE(std::fabs(a.loss - b.loss), tol * std::fabs(a.loss)) << what;
  for (auto& [name, g] : a.grads) {
    const Tensor& h = b.grads.at(name);
    ASSERT_TRUE(g.defined() && h.defined()) << what << ": " << name << " got no gradient";
    auto x = g.to_vector(), y = h.to_vector();
    double diff = 0, big = 0;
    for (size_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::fabs(x[i] - y[i])), big = std::max(big, std::fabs(x[i]));
    EXPECT_GT(big, 0.0) << what << ": " << name;
    EXPECT_LE(diff, tol * big) << what << ": " << name;
  }
}

void check_pattern(const ModelConfig& c, double tol) {
  HybridLM m(c);
  const Tensor ids = ids_of(2, 11, c.vocab_size, 3, false), targets = ids_of(2, 11, c.vocab_size, 7, true);
  const Result plain = step(m, ids, targets);
  for (Recompute r : {Recompute::none, Recompute::mlp, Recompute::full}) {
    for (bool fused : {false, true}) {
      m.set_recompute(r, 5);  // 22 tokens: the MLP re-run in chunks of 5 (the last one short)
      m.fused_head = fused;
      const std::string what = c.layer_pattern + " recompute " + std::to_string(static_cast<int>(r)) +
                               (fused ? " fused head" : "") + (c.tie_embeddings ? " tied" : "");
      expect_same(plain, step(m, ids, targets), tol, what);
    }
  }
}

TEST(Recompute, EveryGradientEqualsThePlainModelF64) {
  for (const char* pattern : {"LS", "LM", "SL"}) check_pattern(small(pattern, DType::f64), 1e-12);
  ModelConfig gla = small("LL", DType::f64);
  gla.layer_variants = {"gla", "gated_delta"};
  check_pattern(gla, 1e-12);
  ModelConfig tied = small("LS", DType::f64);
  tied.tie_embeddings = true;
  check_pattern(tied, 1e-12);
}

TEST(Recompute, EveryGradientEqualsThePlainModelF32) {
  check_pattern(small("LLS", DType::f32), 1e-6);
}

TEST(CheckpointRows, GradcheckF64AndEqualToPlainForEveryChunking) {
  Tensor w = randn({5, 4}, 9, DType::f64).detach();
  w.requires_grad_();
  auto rowwise = [&](const Tensor& x) { return mul(tanh(matmul(x, w)), x.narrow(-1, 0, 4)); };  // [n, 5] -> [n, 4]
  for (int64_t rows : {1, 3, 100}) {
    testing::expect_gradcheck(
        [&](const std::vector<Tensor>& in) { return checkpoint_rows(rowwise, in[0], rows); },
        {randn({2, 7, 5}, 1, DType::f64)});
    Tensor x = randn({2, 7, 5}, 2, DType::f64).detach(), g = randn({2, 7, 4}, 3, DType::f64);
    x.requires_grad_();
    w.zero_grad();
    sum(mul(rowwise(x), g)).backward();
    const Tensor gx = x.grad().clone(), gw = w.grad().clone();
    x.zero_grad(), w.zero_grad();
    Tensor y = checkpoint_rows(rowwise, x, rows);
    EXPECT_EQ(y.shape(), (Shape{2, 7, 4}));
    sum(mul(y, g)).backward();
    for (auto [a, b] : {std::pair{x.grad(), gx}, std::pair{w.grad(), gw}}) {
      auto u = a.to_vector(), v = b.to_vector();
      for (size_t i = 0; i < u.size(); ++i) EXPECT_NEAR(u[i], v[i], 1e-13) << "rows " << rows;
    }
  }
}

TEST(Recompute, ParseNamesTheKeyAndTheChoices) {
  EXPECT_EQ(parse_recompute("full"), Recompute::full);
  try {
    parse_recompute("all");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.recompute: unknown 'all' (none, mlp, full)"), std::string::npos);
  }
}

TEST(Recompute, FullRecomputeAndTheFusedHeadLowerThePeak) {
  ModelConfig c = small("LLLS", DType::f32);
  c.d_model = 64, c.n_heads = 4, c.mlp_hidden = 176, c.vocab_size = 2048;
  HybridLM m(c);
  const Tensor ids = ids_of(1, 512, c.vocab_size, 3, false), targets = ids_of(1, 512, c.vocab_size, 7, false);
  auto peak = [&](Recompute r, bool fused) {
    m.set_recompute(r);
    m.fused_head = fused;
    step(m, ids, targets);  // gradients allocated once, outside the measured step
    cpu_allocator::reset_peak();
    const int64_t base = cpu_allocator::stats().bytes_live;
    step(m, ids, targets);
    return static_cast<double>(cpu_allocator::stats().bytes_peak - base);
  };
  const double none = peak(Recompute::none, false), fused = peak(Recompute::none, true);
  const double mlp = peak(Recompute::mlp, true), full = peak(Recompute::full, true);
  EXPECT_LT(fused, 0.9 * none);  // all 512 rows are one chunk here
  EXPECT_LT(mlp, fused);
  EXPECT_LT(full, 0.5 * fused);
}

}  // namespace
}  // namespace skein
