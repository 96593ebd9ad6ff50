// test_attention_blocks.cpp — the block kernels of sequence-parallel softmax attention
// (attention_block_forward, attention_merge_, attention_block_backward in core/ops.h) against a
// naive f64 oracle with global positions and against softmax_attention on the whole sequence:
// queries and keys at arbitrary positions (keys before, across and after the queries), sliding
// windows, grouped-query heads, rows that see no key, blocks that cross the 64-row kernel
// blocks, merges in any order, and gradients summed over block pairs.
#include <gtest/gtest.h>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include "core/ops.h"

namespace skein {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Cfg {
  int64_t B = 1, H = 2, Hkv = 2, Tq = 8, Tk = 8, D = 4, Dv = 4;
  bool causal = true;
  int64_t window = 0, q_pos = 0, k_pos = 0;
  double scale = 0.5;
};

std::string describe(const Cfg& c) {
  return detail::concat("H=", c.H, " Hkv=", c.Hkv, " Tq=", c.Tq, " Tk=", c.Tk, " causal=", c.causal,
                        " window=", c.window, " q_pos=", c.q_pos, " k_pos=", c.k_pos);
}

// The oracle, in plain loops over f64 values: out [B, H, Tq, Dv] normalised over the visible
// keys (0 where none) and lse [B, H, Tq] (-inf where none).
AttentionBlockResult naive_block(const Tensor& q, const Tensor& k, const Tensor& v, const Cfg& c) {
  const std::vector<double> qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  std::vector<double> out(c.B * c.H * c.Tq * c.Dv, 0.0), lse(c.B * c.H * c.Tq, -kInf);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t hk = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t p = c.q_pos + i, row = (b * c.H + h) * c.Tq + i;
        std::vector<double> s(c.Tk, -kInf);
        double mx = -kInf;
        for (int64_t j = 0; j < c.Tk; ++j) {
          const int64_t kp = c.k_pos + j;
          if ((c.causal && kp > p) || (c.window > 0 && p - kp >= c.window)) continue;
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += qv[row * c.D + d] * kv[((b * c.Hkv + hk) * c.Tk + j) * c.D + d];
          s[j] = c.scale * dot;
          mx = std::max(mx, s[j]);
        }
        if (mx == -kInf) continue;
        double l = 0;
        for (int64_t j = 0; j < c.Tk; ++j) l += std::exp(s[j] - mx);
        lse[row] = mx + std::log(l);
        for (int64_t j = 0; j < c.Tk; ++j) {
          const double pj = std::exp(s[j] - mx) / l;
          for (int64_t d = 0; d < c.Dv; ++d)
            out[row * c.Dv + d] += pj * vv[((b * c.Hkv + hk) * c.Tk + j) * c.Dv + d];
        }
      }
    }
  return {from_vector(out, {c.B, c.H, c.Tq, c.Dv}, DType::f64),
          from_vector(lse, {c.B, c.H, c.Tq}, DType::f64)};
}

// max |got - want| / max |want|; equal infinities count as equal.
double rel_err(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isinf(w[i]) && g[i] == w[i]) continue;
    num = std::max(num, std::fabs(g[i] - w[i]));
    den = std::max(den, std::fabs(w[i]));
  }
  return std::isfinite(num) ? num / std::max(den, 1e-300) : INFINITY;
}

struct Qkv {
  Tensor q, k, v;
};
Qkv make_qkv(const Cfg& c, DType dt, uint64_t seed) {
  return {randn({c.B, c.H, c.Tq, c.D}, seed, dt), randn({c.B, c.Hkv, c.Tk, c.D}, seed + 1, dt),
          randn({c.B, c.Hkv, c.Tk, c.Dv}, seed + 2, dt)};
}

AttentionBlockResult block_fwd(const Qkv& x, const Cfg& c) {
  return attention_block_forward(x.q, x.k, x.v, c.scale, c.causal, c.window, c.q_pos, c.k_pos);
}

TEST(AttentionBlocks, ForwardMatchesNaiveAtGlobalPositions) {
  std::vector<Cfg> cfgs;
  for (int64_t k_pos : {0, 40, 70, 90, 150}) {  // keys before, across, level with and after
    Cfg c;
    c.Tq = 70, c.Tk = 67, c.q_pos = 70, c.k_pos = k_pos;  // crosses the 64-row kernel blocks
    cfgs.push_back(c);
    c.window = 30;
    cfgs.push_back(c);
    c.causal = false;
    cfgs.push_back(c);
  }
  Cfg gqa;
  gqa.B = 2, gqa.H = 4, gqa.Hkv = 2, gqa.Dv = 3, gqa.Tq = 5, gqa.Tk = 9, gqa.q_pos = 13, gqa.k_pos = 6;
  cfgs.push_back(gqa);
  for (const Cfg& c : cfgs) {
    SCOPED_TRACE(describe(c));
    const Qkv x = make_qkv(c, DType::f64, 10);
    const AttentionBlockResult got = block_fwd(x, c), want = naive_block(x.q, x.k, x.v, c);
    EXPECT_LT(rel_err(got.out, want.out), 1e-12);
    EXPECT_LT(rel_err(got.lse, want.lse), 1e-12);
  }
}

TEST(AttentionBlocks, RowsThatSeeNoKeyGiveZeroAndMinusInfinity) {
  Cfg c;
  c.q_pos = 0, c.k_pos = 4;  // query i sees keys 4.. only from i = 4 on
  const Qkv x = make_qkv(c, DType::f64, 20);
  const AttentionBlockResult got = block_fwd(x, c);
  for (int64_t i = 0; i < c.Tq; ++i) {
    const double lse = got.lse.at({0, 1, i});
    if (i < 4) {
      EXPECT_EQ(lse, -kInf) << "row " << i;
      EXPECT_EQ(got.out.at({0, 1, i, 2}), 0.0) << "row " << i;
    } else {
      EXPECT_TRUE(std::isfinite(lse)) << "row " << i;
    }
  }
}

// Keys split into blocks at their positions and merged in any order equal the whole
// attention (and a merge with a block that adds nothing changes nothing).
TEST(AttentionBlocks, MergedBlocksEqualTheWholeAttention) {
  for (DType dt : {DType::f64, DType::f32}) {
    Cfg c;
    c.H = 4, c.Hkv = 2, c.Tq = 37, c.Tk = 100, c.q_pos = 63, c.window = 50;
    const Qkv x = make_qkv(c, dt, 30);
    const Tensor want = softmax_attention(x.q, x.k, x.v, c.scale, true, c.window, c.q_pos);
    const AttentionBlockResult naive = naive_block(x.q.to(DType::f64), x.k.to(DType::f64),
                                                   x.v.to(DType::f64), c);
    const std::vector<std::pair<int64_t, int64_t>> blocks{{70, 30}, {0, 13}, {13, 57}};
    AttentionBlockResult acc{zeros({c.B, c.H, c.Tq, c.Dv}, dt), full({c.B, c.H, c.Tq}, -kInf, dt)};
    for (auto [start, len] : blocks) {
      Cfg bc = c;
      bc.Tk = len, bc.k_pos = start;
      const AttentionBlockResult blk = block_fwd({x.q, x.k.narrow(2, start, len), x.v.narrow(2, start, len)}, bc);
      attention_merge_(acc.out, acc.lse, blk.out, blk.lse);
    }
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    EXPECT_LT(rel_err(acc.out, want), tol) << dtype_name(dt);
    EXPECT_LT(rel_err(acc.lse.to(DType::f64), naive.lse), tol) << dtype_name(dt);
  }
}

// Gradients of the whole attention = Σ over (query block, key block) pairs of the block
// backward fed the merged out and lse: dq summed over key blocks, dk, dv over query blocks.
void check_block_backward(DType dt, double tol) {
  Cfg c;
  c.H = 4, c.Hkv = 2, c.Dv = 3, c.Tq = 70, c.Tk = 70, c.window = 45;
  Qkv x = make_qkv(c, dt, 40);
  for (Tensor* t : {&x.q, &x.k, &x.v}) t->requires_grad_();
  const Tensor out = softmax_attention(x.q, x.k, x.v, c.scale, true, c.window, 0);
  const Tensor dout = randn(out.shape(), 44, dt);
  sum(mul(out, dout)).backward();
  const Tensor lse = naive_block(x.q.to(DType::f64), x.k.to(DType::f64), x.v.to(DType::f64), c).lse.to(dt);

  const std::vector<std::pair<int64_t, int64_t>> q_blocks{{0, 33}, {33, 37}}, k_blocks{{0, 20}, {20, 50}};
  Tensor dq = zeros(x.q.shape(), dt), dk = zeros(x.k.shape(), dt), dv = zeros(x.v.shape(), dt);
  for (auto [qs, qn] : q_blocks)
    for (auto [ks, kn] : k_blocks) {
      const std::vector<Tensor> d = attention_block_backward(
          x.q.narrow(2, qs, qn), x.k.narrow(2, ks, kn), x.v.narrow(2, ks, kn),
          out.narrow(2, qs, qn), lse.narrow(2, qs, qn), dout.narrow(2, qs, qn), c.scale, true,
          c.window, qs, ks);
      ASSERT_EQ(d.size(), 3u);
      add_(dq.narrow(2, qs, qn), d[0]);
      add_(dk.narrow(2, ks, kn), d[1]);
      add_(dv.narrow(2, ks, kn), d[2]);
    }
  EXPECT_LT(rel_err(dq, x.q.grad()), tol) << "dq " << dtype_name(dt);
  EXPECT_LT(rel_err(dk, x.k.grad()), tol) << "dk " << dtype_name(dt);
  EXPECT_LT(rel_err(dv, x.v.grad()), tol) << "dv " << dtype_name(dt);
}

TEST(AttentionBlocks, BackwardOverBlockPairsSumsToTheWholeGradientF64) {
  check_block_backward(DType::f64, 1e-12);
}

TEST(AttentionBlocks, BackwardOverBlockPairsSumsToTheWholeGradientF32) {
  check_block_backward(DType::f32, 1e-5);
}

// A key block entirely in the queries' future gives zero gradients (rows with lse = -inf
// included), not NaN.
TEST(AttentionBlocks, BackwardOfAnInvisibleBlockIsZero) {
  Cfg c;
  c.q_pos = 0, c.k_pos = 8;
  const Qkv x = make_qkv(c, DType::f64, 50);
  const AttentionBlockResult res = block_fwd(x, c);
  const std::vector<Tensor> d = attention_block_backward(
      x.q, x.k, x.v, res.out, res.lse, randn(res.out.shape(), 51, DType::f64), c.scale, true, 0, 0, 8);
  for (const Tensor& g : d) EXPECT_EQ(sum(mul(g, g)).item(), 0.0);
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionBlocks, ErrorsNameTheOpAndShapes) {
  const Cfg c;
  const Qkv x = make_qkv(c, DType::f64, 60);
  const std::string fwd = error_of([&] {
    attention_block_forward(x.q, x.k.narrow(2, 0, 5), x.v, 1.0, true, 0, 0, 0);
  });
  EXPECT_NE(fwd.find("attention_block_forward"), std::string::npos) << fwd;
  EXPECT_NE(fwd.find("[1,2,5,4]"), std::string::npos) << fwd;
  const AttentionBlockResult res = block_fwd(x, c);
  const std::string bwd = error_of([&] {
    attention_block_backward(x.q, x.k, x.v, res.out, res.lse.narrow(2, 0, 3), res.out, 1.0, true,
                             0, 0, 0);
  });
  EXPECT_NE(bwd.find("attention_block_backward"), std::string::npos) << bwd;
  EXPECT_NE(bwd.find("[1,2,3]"), std::string::npos) << bwd;
  const std::string merge = error_of([&] {
    attention_merge_(res.out, res.lse, res.out.narrow(2, 0, 4).contiguous(), res.lse);
  });
  EXPECT_NE(merge.find("attention_merge_"), std::string::npos) << merge;
  EXPECT_NE(merge.find("[1,2,4,4]"), std::string::npos) << merge;
}

}  // namespace
}  // namespace skein
