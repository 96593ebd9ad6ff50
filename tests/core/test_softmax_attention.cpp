// test_softmax_attention.cpp — the fused flash-style softmax_attention against the naive
// composition of existing ops (matmul, masked_fill, softmax): forward values, gradients
// (finite differences and autograd through the composition), grouped-query heads, sliding
// windows, KV-cache offsets, rows that see no key, O(T) memory, thread-count independence
// and the error messages.
#include <gtest/gtest.h>
#include <cmath>
#include <limits>
#include <string>
#include "core/allocator.h"
#include "core/ops.h"
#include "core/threadpool.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

using testing::expect_gradcheck;

struct Cfg {
  int64_t B = 1, H = 2, Hkv = 2, Tq = 8, Tk = 8, D = 4, Dv = 4;
  bool causal = true;
  int64_t window = 0, off = -1;
  double scale = 0.5;
};

// Mask [Tq, Tk]: 1 where query i (at position off + i) must not see key j.
Tensor hidden_mask(const Cfg& c) {
  const int64_t off = c.off == -1 ? c.Tk - c.Tq : c.off;
  std::vector<double> m(c.Tq * c.Tk);
  for (int64_t i = 0; i < c.Tq; ++i)
    for (int64_t j = 0; j < c.Tk; ++j) {
      const int64_t p = off + i;
      const bool seen = (!c.causal || j <= p) && (c.window <= 0 || p - j < c.window);
      m[i * c.Tk + j] = seen ? 0.0 : 1.0;
    }
  return from_vector(m, {c.Tq, c.Tk}, DType::f64);
}

// The oracle: softmax(masked_fill(scale · q kᵀ, hidden, -inf)) v, kv heads repeated per group.
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
Tensor naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Cfg& c) {
  Tensor ke = k, ve = v;
  if (c.H != c.Hkv) {
    const int64_t G = c.H / c.Hkv;
    ke = k.reshape({c.B, c.Hkv, 1, c.Tk, c.D}).expand({c.B, c.Hkv, G, c.Tk, c.D})
             .reshape({c.B, c.H, c.Tk, c.D});
    ve = v.reshape({c.B, c.Hkv, 1, c.Tk, c.Dv}).expand({c.B, c.Hkv, G, c.Tk, c.Dv})
             .reshape({c.B, c.H, c.Tk, c.Dv});
  }
  Tensor s = mul(matmul(q, ke.transpose(-1, -2)), c.scale);
  s = masked_fill(s, hidden_mask(c), -std::numeric_limits<double>::infinity());
  return matmul(softmax(s, -1), ve);
}

Tensor fused(const Tensor& q, const Tensor& k, const Tensor& v, const Cfg& c) {
  return softmax_attention(q, k, v, c.scale, c.causal, c.window, c.off);
}

// max |got - want| / max |want| (norm-wise relative error).
double rel_err(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  auto g = got.to_vector(), w = want.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    num = std::max(num, std::fabs(g[i] - w[i]));
    den = std::max(den, std::fabs(w[i]));
  }
  return std::isfinite(num) ? num / std::max(den, 1e-300) : INFINITY;
}

struct Inputs { Tensor q, k, v; };
Inputs make_inputs(const Cfg& c, DType dt, uint64_t seed) {
  return {randn({c.B, c.H, c.Tq, c.D}, seed, dt), randn({c.B, c.Hkv, c.Tk, c.D}, seed + 1, dt),
          randn({c.B, c.Hkv, c.Tk, c.Dv}, seed + 2, dt)};
}

std::string describe(const Cfg& c) {
  return detail::concat("B=", c.B, " H=", c.H, " Hkv=", c.Hkv, " Tq=", c.Tq, " Tk=", c.Tk, " D=", c.D,
                        " Dv=", c.Dv, " causal=", c.causal, " window=", c.window, " off=", c.off);
}

// Forward of the fused op in f64 and f32 against the f64 oracle on the same values. In f32
// the fused op must also be about as accurate as the naive composition run in f32.
void expect_forward_matches(const Cfg& c, uint64_t seed) {
  for (DType dt : {DType::f64, DType::f32}) {
    Inputs in = make_inputs(c, dt, seed);
    Tensor want = naive_attention(in.q.to(DType::f64), in.k.to(DType::f64), in.v.to(DType::f64), c);
    const double err = rel_err(fused(in.q, in.k, in.v, c), want);
    EXPECT_LE(err, dt == DType::f64 ? 1e-9 : 1e-4) << dtype_name(dt) << " " << describe(c);
    if (dt == DType::f32) {
      const double naive_err = rel_err(naive_attention(in.q, in.k, in.v, c), want);
      EXPECT_LE(err, 4 * naive_err + 1e-7) << "f32 naive error " << naive_err << " " << describe(c);
    }
  }
}

// d/d{q,k,v} of Σ out ⊙ W through the fused op and through the oracle (f64).
void expect_backward_matches(const Cfg& c, uint64_t seed, DType dt = DType::f64) {
  Inputs in = make_inputs(c, dt, seed);
  Tensor w = randn({c.B, c.H, c.Tq, c.Dv}, seed + 3, DType::f64);
  std::vector<Tensor> a = {in.q.to(DType::f64), in.k.to(DType::f64), in.v.to(DType::f64)};
  std::vector<Tensor> b = {in.q, in.k, in.v};
  for (Tensor& t : a) t.requires_grad_();
  for (Tensor& t : b) t.requires_grad_();
  sum(mul(naive_attention(a[0], a[1], a[2], c), w)).backward();
  sum(mul(fused(b[0], b[1], b[2], c), w.to(dt))).backward();
  const double tol = dt == DType::f64 ? 1e-9 : 2e-4;
  for (int i = 0; i < 3; ++i)
    EXPECT_LE(rel_err(b[i].grad(), a[i].grad()), tol) << "input " << i << " " << describe(c);
}

TEST(SoftmaxAttention, ForwardMatchesNaiveAcrossBlockBoundaries) {
  uint64_t seed = 10;
  for (int64_t T : {1, 63, 64, 65, 200})
    for (int64_t D : {16, 64})
      for (int64_t window : {0, 1, 17, 64}) {
        Cfg c;
        c.Tq = c.Tk = T;
        c.D = c.Dv = D;
        c.window = window;
        c.scale = 1.0 / std::sqrt(static_cast<double>(D));
        expect_forward_matches(c, seed += 3);
      }
}

TEST(SoftmaxAttention, ForwardGroupedQueryHeadsAndValueDim) {
  uint64_t seed = 500;
  for (int64_t Hkv : {2, 1})
    for (int64_t window : {0, 17}) {
      Cfg c;
      c.B = 2; c.H = 4; c.Hkv = Hkv; c.Tq = c.Tk = 130; c.D = 16; c.Dv = 24; c.window = window;
      expect_forward_matches(c, seed += 3);
    }
}

TEST(SoftmaxAttention, ForwardKvCacheOffsets) {
  uint64_t seed = 700;
  // Default offset: the Tq queries are the last Tq of Tk positions.
  for (int64_t Tq : {1, 37, 64, 130})
    for (int64_t window : {0, 17, 64}) {
      Cfg c;
      c.Tq = Tq; c.Tk = 200; c.D = 16; c.Dv = 16; c.window = window;
      expect_forward_matches(c, seed += 3);
    }
  // Explicit offsets: queries in the middle of the keys, and past them.
  for (int64_t off : {0, 100, 190}) {
    Cfg c;
    c.Tq = 37; c.Tk = 200; c.off = off; c.window = 0;
    expect_forward_matches(c, seed += 3);
    c.window = 50;
    expect_forward_matches(c, seed += 3);
  }
}

TEST(SoftmaxAttention, ForwardNonCausal) {
  uint64_t seed = 900;
  for (int64_t window : {0, 17})
    for (int64_t Tq : {65, 200}) {
      Cfg c;
      c.causal = false; c.Tq = Tq; c.Tk = 200; c.D = 16; c.Dv = 16; c.window = window;
      expect_forward_matches(c, seed += 3);
    }
}

TEST(SoftmaxAttention, NonContiguousInputs) {
  // q, k, v as [B, T, H, D] activations permuted to [B, H, T, D] views.
  Cfg c;
  c.B = 2; c.H = 4; c.Hkv = 2; c.Tq = c.Tk = 70; c.D = 8; c.Dv = 8; c.window = 20;
  Tensor q = randn({c.B, c.Tq, c.H, c.D}, 31, DType::f64).permute({0, 2, 1, 3});
  Tensor k = randn({c.B, c.Tk, c.Hkv, c.D}, 32, DType::f64).permute({0, 2, 1, 3});
  Tensor v = randn({c.B, c.Tk, c.Hkv, c.Dv}, 33, DType::f64).permute({0, 2, 1, 3});
  EXPECT_LE(rel_err(fused(q, k, v, c), naive_attention(q, k, v, c)), 1e-12);
}

TEST(SoftmaxAttention, RowsThatSeeNoKeyGiveZeroNotNaN) {
  // Tq > Tk with the default offset: queries 0 and 1 sit at positions -2 and -1.
  Cfg c;
  c.Tq = 5; c.Tk = 3;
  Inputs in = make_inputs(c, DType::f64, 41);
  for (Tensor* t : {&in.q, &in.k, &in.v}) t->requires_grad_();
  Tensor out = fused(in.q, in.k, in.v, c);
  sum(mul(out, randn(out.shape(), 42, DType::f64))).backward();
  for (int64_t h = 0; h < c.H; ++h)
    for (int64_t i = 0; i < c.Tq; ++i)
      for (int64_t d = 0; d < c.Dv; ++d) {
        const double o = out.at({0, h, i, d}), gq = in.q.grad().at({0, h, i, d});
        ASSERT_TRUE(std::isfinite(o) && std::isfinite(gq));
        if (i < 2) {
          EXPECT_EQ(o, 0.0);
          EXPECT_EQ(gq, 0.0);
        }
      }
  // The rows that see keys equal plain causal attention of the last 3 queries.
  Cfg tail = c;
  tail.Tq = 3;
  Tensor q_tail = in.q.detach().narrow(2, 2, 3);
  Tensor want_tail = naive_attention(q_tail, in.k.detach(), in.v.detach(), tail);
  EXPECT_LE(rel_err(out.detach().narrow(2, 2, 3), want_tail), 1e-12);
  for (double x : in.k.grad().to_vector()) ASSERT_TRUE(std::isfinite(x));
  // A window that ends before the keys do: positions 12..15 with window 3 see keys > 9 only.
  Cfg past = c;
  past.Tq = 4; past.Tk = 10; past.off = 12; past.window = 3;
  Inputs p = make_inputs(past, DType::f32, 43);
  p.q.requires_grad_();
  p.k.requires_grad_();
  Tensor o = fused(p.q, p.k, p.v, past);
  for (double x : o.to_vector()) EXPECT_EQ(x, 0.0);
  sum(o).backward();
  for (double x : p.q.grad().to_vector()) EXPECT_EQ(x, 0.0);
  for (double x : p.k.grad().to_vector()) EXPECT_EQ(x, 0.0);
  // No keys at all.
  Cfg none = c;
  none.Tk = 0;
  Inputs n = make_inputs(none, DType::f64, 44);
  for (double x : fused(n.q, n.k, n.v, none).to_vector()) EXPECT_EQ(x, 0.0);
}

TEST(SoftmaxAttention, GradcheckSmallShapes) {
  std::vector<Cfg> cfgs;
  Cfg c;                                     // plain causal
  c.Tq = c.Tk = 7;
  cfgs.push_back(c);
  c.Tq = c.Tk = 70;                          // two query and two key blocks of 64
  cfgs.push_back(c);
  c.window = 5;                              // sliding window across the block boundary
  cfgs.push_back(c);
  c = Cfg{};                                 // grouped-query heads, Dv != D
  c.H = 4; c.Hkv = 2; c.Tq = c.Tk = 9; c.Dv = 3; c.window = 4;
  cfgs.push_back(c);
  c = Cfg{};                                 // KV-cache: 3 queries at the end of 11 keys
  c.Tq = 3; c.Tk = 11; c.window = 6;
  cfgs.push_back(c);
  c = Cfg{};                                 // non-causal with a window
  c.causal = false; c.Tq = 6; c.Tk = 10; c.window = 3;
  cfgs.push_back(c);
  c = Cfg{};                                 // Tq > Tk: two rows see no key
  c.Tq = 6; c.Tk = 4;
  cfgs.push_back(c);
  uint64_t seed = 60;
  for (const Cfg& cfg : cfgs) {
    SCOPED_TRACE(describe(cfg));
    Inputs in = make_inputs(cfg, DType::f64, seed += 3);
    expect_gradcheck([cfg](const std::vector<Tensor>& x) { return fused(x[0], x[1], x[2], cfg); },
                     {in.q, in.k, in.v});
  }
}

TEST(SoftmaxAttention, BackwardMatchesAutogradThroughNaive) {
  uint64_t seed = 80;
  for (int64_t window : {0, 17}) {
    Cfg c;  // B*H = 8: backward splits keys over two chunks; GQA sums 2 query heads
    c.B = 2; c.H = 4; c.Hkv = 2; c.Tq = c.Tk = 200; c.D = 16; c.Dv = 16; c.window = window;
    expect_backward_matches(c, seed += 4);
    c.B = 1; c.H = 2; c.Hkv = 1; c.Dv = 8;  // many key chunks, one kv head for two query heads
    expect_backward_matches(c, seed += 4);
    c.B = 2; c.H = 8; c.Hkv = 8; c.Tq = c.Tk = 130; c.Dv = 16;  // B*H = 16: one chunk per head
    expect_backward_matches(c, seed += 4);
  }
  Cfg c;  // KV-cache offset and non-causal
  c.Tq = 70; c.Tk = 200; c.D = 16; c.Dv = 16; c.window = 90;
  expect_backward_matches(c, seed += 4);
  c.causal = false; c.window = 0;
  expect_backward_matches(c, seed += 4);
  c.causal = true; c.D = 64; c.Dv = 64; c.Tq = c.Tk = 150;  // f32 against the f64 oracle
  expect_backward_matches(c, seed += 4, DType::f32);
}

TEST(SoftmaxAttention, LongSequenceMemoryIsLinear) {
  const int64_t T = 4096, D = 64;
  const int64_t scores_bytes = T * T * 4;  // one f32 Tq×Tk matrix: 64 MiB
  Tensor q = randn({1, 1, T, D}, 1), k = randn({1, 1, T, D}, 2), v = randn({1, 1, T, D}, 3);
  {
    const int64_t before = cpu_allocator::stats().bytes_live;
    cpu_allocator::reset_peak();
    Tensor out = softmax_attention(q, k, v, 0.125);
    const int64_t used = cpu_allocator::stats().bytes_peak - before;
    EXPECT_LT(used, 4 << 20) << "forward used " << used << " bytes";  // out is 1 MiB
    EXPECT_TRUE(std::isfinite(out.at({0, 0, T - 1, 0})));
  }
  {  // backward too, with a window: the saved output, the gradients and the backward's dQ
     // partials (at most 16 heads' worth of [T, D] when B*H is small) stay far below T×T
    q.requires_grad_();
    k.requires_grad_();
    v.requires_grad_();
    const int64_t before = cpu_allocator::stats().bytes_live;
    cpu_allocator::reset_peak();
    Tensor out = softmax_attention(q, k, v, 0.125, true, 256);
    sum(out).backward();
    const int64_t used = cpu_allocator::stats().bytes_peak - before;
    EXPECT_LT(used, scores_bytes / 2) << "forward + backward used " << used << " bytes";
    EXPECT_TRUE(std::isfinite(q.grad().at({0, 0, T - 1, 0})));
  }
}

TEST(SoftmaxAttention, ThreadCountDoesNotChangeResults) {
  Cfg c;
  c.Tq = c.Tk = 150; c.D = 8; c.Dv = 8; c.window = 70;
  auto run = [&] {
    Inputs in = make_inputs(c, DType::f32, 90);
    for (Tensor* t : {&in.q, &in.k, &in.v}) t->requires_grad_();
    Tensor out = fused(in.q, in.k, in.v, c);
    sum(mul(out, randn(out.shape(), 91))).backward();
    return std::vector<std::vector<double>>{out.to_vector(), in.q.grad().to_vector(),
                                            in.k.grad().to_vector(), in.v.grad().to_vector()};
  };
  set_num_threads(1);
  auto one = run();
  set_num_threads(2);
  auto two = run();
  set_num_threads(1);
  EXPECT_EQ(one, two);
}

// The message of the Error f throws (empty when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SoftmaxAttention, ErrorMessagesNameTheOpAndShapes) {
  Tensor q = randn({1, 4, 8, 16}, 1), k = randn({1, 2, 8, 16}, 2), v = randn({1, 2, 8, 16}, 3);
  auto expect_msg = [](const std::string& msg, std::initializer_list<const char*> parts) {
    EXPECT_NE(msg.find("softmax_attention"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect_msg(error_of([&] { softmax_attention(q.view({4, 8, 16}), k, v, 1.0); }), {"[4,8,16]"});
  expect_msg(error_of([&] { softmax_attention(q, randn({1, 2, 8, 12}, 4), v, 1.0); }),
             {"[1,4,8,16]", "[1,2,8,12]"});
  expect_msg(error_of([&] { softmax_attention(q, k, randn({1, 2, 9, 16}, 5), 1.0); }),
             {"[1,2,8,16]", "[1,2,9,16]"});
  expect_msg(error_of([&] { softmax_attention(q, randn({1, 3, 8, 16}, 6), randn({1, 3, 8, 16}, 7), 1.0); }),
             {"[1,4,8,16]", "[1,3,8,16]", "multiple"});
  expect_msg(error_of([&] { softmax_attention(q, k, v.to(DType::f64), 1.0); }), {"f32", "f64"});
  expect_msg(error_of([&] { softmax_attention(q, k, v, 1.0, true, -3); }), {"window", "-3"});
  expect_msg(error_of([&] { softmax_attention(q, k, v, 1.0, true, 0, -2); }), {"q_pos_offset", "-2"});
  Tensor qi = zeros({1, 4, 8, 16}, DType::i32);
  expect_msg(error_of([&] { softmax_attention(qi, k.to(DType::i32), v.to(DType::i32), 1.0); }), {"i32"});
}

}  // namespace
}  // namespace skein
