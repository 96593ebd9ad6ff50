// test_delta_rule.cpp — delta_rule (DeltaNet / gated DeltaNet) against a plain-loop oracle
// (forward) and a step-by-step autograd oracle (gradients), finite-difference gradchecks of
// every input through both outputs, split equality over the carried state, shape errors.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include "core/ops.h"
#include "core/threadpool.h"
#include "tests/gradcheck.h"

namespace skein {
namespace {

using testing::expect_gradcheck;
using testing::rand64;

struct Inputs {
  Tensor q, k, v, beta, log_alpha, init;  // [B,H,T,Dk] x2, [B,H,T,Dv], [B,H,T] x2, [B,H,Dk,Dv]
  Inputs to(DType dt) const {
    auto c = [dt](const Tensor& t) { return t.defined() ? t.to(dt) : Tensor(); };
    return {c(q), c(k), c(v), c(beta), c(log_alpha), c(init)};
  }
};

// k rows L2-normalised, beta in (0, 1), log_alpha in [-0.7, 0] with some exact zeros (gate = 1).
Inputs make_inputs(int64_t B, int64_t H, int64_t T, int64_t Dk, int64_t Dv, bool gated, bool with_init,
                   uint64_t seed) {
  Inputs in;
  in.q = rand64({B, H, T, Dk}, seed);
  Tensor k = randn({B, H, T, Dk}, seed + 1, DType::f64);
  in.k = div(k, sqrt(sum(mul(k, k), {3}, true)));
  in.v = rand64({B, H, T, Dv}, seed + 2);
  in.beta = rand64({B, H, T}, seed + 3, 0.05, 0.95);
  if (gated) {
    std::vector<double> la = rand64({B, H, T}, seed + 4, -0.7, 0.2).to_vector();
    for (double& x : la) x = std::min(x, 0.0);
    in.log_alpha = from_vector(la, {B, H, T}, DType::f64);
  }
  if (with_init) in.init = rand64({B, H, Dk, Dv}, seed + 5);
  return in;
}

LinearAttentionResult run(const Inputs& in, double scale, int64_t chunk = 64) {
  return delta_rule(in.q, in.k, in.v, in.beta, in.log_alpha, in.init, scale, chunk);
}

// Plain-loop oracle in the literal matrix form S_t = a (I - b kᵀk) S_{t-1} + b kᵀv.
std::pair<std::vector<double>, std::vector<double>> loop_oracle(const Inputs& in, double scale) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), Dk = in.q.size(3),
                Dv = in.v.size(3);
  auto q = in.q.to_vector(), k = in.k.to_vector(), v = in.v.to_vector(), beta = in.beta.to_vector();
  auto la = in.log_alpha.defined() ? in.log_alpha.to_vector() : std::vector<double>(B * H * T, 0.0);
  auto init = in.init.defined() ? in.init.to_vector() : std::vector<double>(B * H * Dk * Dv, 0.0);
  std::vector<double> out(B * H * T * Dv), fin(B * H * Dk * Dv), M(Dk * Dk), S, Sn(Dk * Dv);
  for (int64_t bh = 0; bh < B * H; ++bh) {
    S.assign(init.begin() + bh * Dk * Dv, init.begin() + (bh + 1) * Dk * Dv);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t r = bh * T + t;
      const double a = std::exp(la[r]), b = beta[r];
      const double* kt = &k[r * Dk];
      for (int64_t i = 0; i < Dk; ++i)
        for (int64_t l = 0; l < Dk; ++l) M[i * Dk + l] = a * ((i == l ? 1.0 : 0.0) - b * kt[i] * kt[l]);
      for (int64_t i = 0; i < Dk; ++i)
        for (int64_t c = 0; c < Dv; ++c) {
          double acc = b * kt[i] * v[r * Dv + c];
          for (int64_t l = 0; l < Dk; ++l) acc += M[i * Dk + l] * S[l * Dv + c];
          Sn[i * Dv + c] = acc;
        }
      S = Sn;
      for (int64_t c = 0; c < Dv; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < Dk; ++i) acc += q[r * Dk + i] * S[i * Dv + c];
        out[r * Dv + c] = scale * acc;
      }
    }
    std::copy(S.begin(), S.end(), fin.begin() + bh * Dk * Dv);
  }
  return {out, fin};
}

// The recurrence step by step with existing autograd ops (a gradient oracle):
//   S' = a S,  u = v - k S',  S = S' + kᵀ (b u),  o = scale q S.
LinearAttentionResult autograd_oracle(const Inputs& in, double scale) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), Dk = in.q.size(3),
                Dv = in.v.size(3);
  Tensor S = in.init.defined() ? in.init : zeros({B, H, Dk, Dv}, in.q.dtype());
  std::vector<Tensor> os;
  for (int64_t t = 0; t < T; ++t) {
    Tensor qt = in.q.narrow(2, t, 1), kt = in.k.narrow(2, t, 1), vt = in.v.narrow(2, t, 1);
    Tensor bt = in.beta.narrow(2, t, 1).reshape({B, H, 1, 1});
    Tensor Sp = in.log_alpha.defined() ? mul(S, exp(in.log_alpha.narrow(2, t, 1).reshape({B, H, 1, 1}))) : S;
    Tensor u = sub(vt, matmul(kt, Sp));
    S = add(Sp, matmul(kt.transpose(2, 3), mul(u, bt)));
    os.push_back(mul(matmul(qt, S), scale));
  }
  return {cat(os, 2), S};
}

// max |a - b| / max |b|
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num = std::max(num, std::fabs(a[i] - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}

TEST(DeltaRule, ForwardMatchesLoopOracle) {
  for (int64_t D : {16, 64})
    for (int64_t T : {1, 63, 64, 65, 200})
      for (bool gated : {false, true})
        for (bool with_init : {false, true}) {
          SCOPED_TRACE("D=" + std::to_string(D) + " T=" + std::to_string(T) +
                       " gated=" + std::to_string(gated) + " init=" + std::to_string(with_init));
          const int64_t H = D == 16 ? 2 : 1;
          Inputs in = make_inputs(1, H, T, D, D, gated, with_init, 100 + T + D);
          const double scale = 1.0 / std::sqrt(static_cast<double>(D));
          auto [out, fin] = loop_oracle(in, scale);
          LinearAttentionResult r64 = run(in, scale);
          EXPECT_EQ(r64.out.shape(), (Shape{1, H, T, D}));
          EXPECT_EQ(r64.final_state.shape(), (Shape{1, H, D, D}));
          EXPECT_LE(rel_err(r64.out.to_vector(), out), 1e-9);
          EXPECT_LE(rel_err(r64.final_state.to_vector(), fin), 1e-9);
          LinearAttentionResult r32 = run(in.to(DType::f32), scale);
          EXPECT_EQ(r32.out.dtype(), DType::f32);
          EXPECT_LE(rel_err(r32.out.to_vector(), out), 1e-4);
          EXPECT_LE(rel_err(r32.final_state.to_vector(), fin), 1e-4);
        }
}

TEST(DeltaRule, NonSquareHeadsAndAnyChunk) {
  Inputs in = make_inputs(2, 1, 37, 8, 5, true, true, 7);
  auto [out, fin] = loop_oracle(in, 0.8);
  for (int64_t chunk : {1, 3, 16, 37, 100}) {
    SCOPED_TRACE("chunk=" + std::to_string(chunk));
    LinearAttentionResult r = run(in, 0.8, chunk);
    EXPECT_LE(rel_err(r.out.to_vector(), out), 1e-9);
    EXPECT_LE(rel_err(r.final_state.to_vector(), fin), 1e-9);
  }
  // non-contiguous views (e.g. projections permuted to [B, H, T, D]) are read right
  Inputs nc = in;
  nc.q = in.q.transpose(2, 3).contiguous().transpose(2, 3);
  nc.v = in.v.transpose(2, 3).contiguous().transpose(2, 3);
  ASSERT_FALSE(nc.q.is_contiguous());
  ASSERT_FALSE(nc.v.is_contiguous());
  EXPECT_LE(rel_err(run(nc, 0.8, 5).out.to_vector(), out), 1e-9);
  // T = 0: no output rows, the state passes through
  Inputs e = make_inputs(1, 2, 0, 4, 3, true, true, 8);
  LinearAttentionResult r = run(e, 1.0, 4);
  EXPECT_EQ(r.out.shape(), (Shape{1, 2, 0, 3}));
  EXPECT_EQ(r.final_state.to_vector(), e.init.to_vector());
}

// Σ out ⊙ W1 + Σ final ⊙ W2 through both outputs, as one flat tensor for gradcheck.
Tensor both(const LinearAttentionResult& r) {
  return cat({r.out.reshape({-1}), r.final_state.reshape({-1})}, 0);
}

TEST(DeltaRule, GradcheckEveryInputThroughBothOutputs) {
  // T = 10 with chunk 4: three checkpoints, the last chunk partial.
  Inputs in = make_inputs(1, 2, 10, 3, 4, true, true, 21);
  auto f = [](const std::vector<Tensor>& x) {
    return both(delta_rule(x[0], x[1], x[2], x[3], x[4], x[5], 0.7, 4));
  };
  expect_gradcheck(f, {in.q, in.k, in.v, in.beta, in.log_alpha, in.init});
  // only one output used: the other's gradient arrives undefined (= zero)
  auto f_out = [](const std::vector<Tensor>& x) {
    return delta_rule(x[0], x[1], x[2], x[3], x[4], x[5], 1.0, 3).out;
  };
  expect_gradcheck(f_out, {in.q, in.k, in.v, in.beta, in.log_alpha, in.init});
  auto f_fin = [](const std::vector<Tensor>& x) {
    return delta_rule(x[0], x[1], x[2], x[3], x[4], x[5], 1.0, 4).final_state;
  };
  expect_gradcheck(f_fin, {in.q, in.k, in.v, in.beta, in.log_alpha, in.init});
}

TEST(DeltaRule, GradcheckPlainDeltaNetWithoutInitialState) {
  Inputs in = make_inputs(2, 1, 9, 4, 3, false, false, 31);
  auto f = [](const std::vector<Tensor>& x) {
    return both(delta_rule(x[0], x[1], x[2], x[3], Tensor(), Tensor(), 0.5, 4));
  };
  expect_gradcheck(f, {in.q, in.k, in.v, in.beta});
}

// Every gradient of delta_rule at [1, 2, T, Dk] x [.., Dv] against the step-by-step autograd
// oracle, in f64 (1e-9) and f32 (1e-4), gated and plain, with an initial state.
void expect_gradients_match_oracle(int64_t T, int64_t Dk, int64_t Dv, uint64_t seed) {
  for (bool gated : {false, true}) {
    SCOPED_TRACE("T=" + std::to_string(T) + " Dk=" + std::to_string(Dk) + " Dv=" + std::to_string(Dv) +
                 " gated=" + std::to_string(gated));
    Inputs in = make_inputs(1, 2, T, Dk, Dv, gated, true, seed + gated);
    Tensor w_out = randn({1, 2, T, Dv}, seed + 10, DType::f64), w_fin = randn({1, 2, Dk, Dv}, seed + 11, DType::f64);
    auto grads = [&](const Inputs& x, bool op) {
      std::vector<Tensor> leaves = {x.q, x.k, x.v, x.beta, x.log_alpha, x.init};
      for (Tensor& t : leaves)
        if (t.defined()) t = t.detach().requires_grad_();  // fresh leaves for every call
      Inputs y{leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5]};
      LinearAttentionResult r = op ? run(y, 0.25) : autograd_oracle(y, 0.25);
      const DType dt = x.q.dtype();
      add(sum(mul(r.out, w_out.to(dt))), sum(mul(r.final_state, w_fin.to(dt)))).backward();
      std::vector<std::vector<double>> g;
      for (Tensor& t : leaves)
        if (t.defined()) g.push_back(t.grad().to_vector());
      return g;
    };
    auto want = grads(in.to(DType::f64), false);
    auto got64 = grads(in.to(DType::f64), true);
    auto got32 = grads(in.to(DType::f32), true);
    ASSERT_EQ(want.size(), gated ? 6u : 5u);
    ASSERT_EQ(got64.size(), want.size());
    ASSERT_EQ(got32.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_LE(rel_err(got64[i], want[i]), 1e-9) << "input " << i;
      EXPECT_LE(rel_err(got32[i], want[i]), 1e-4) << "input " << i;
    }
  }
}

// Larger shapes at the default chunk (64; T crosses it). Dv = 24: the generic row kernels'
// 16-wide lane blocks and their tail both run.
TEST(DeltaRule, GradientsMatchAutogradOracle) { expect_gradients_match_oracle(130, 16, 24, 41); }

// Dv = 32, 64, 128 run the vector-width kernels (core/ops/delta_rule_simd.h), with Dk != Dv
// and an odd Dk (the k S product's two-row unroll and its leftover row).
TEST(DeltaRule, VectorWidthKernelsMatchAutogradOracle) {
  expect_gradients_match_oracle(70, 16, 32, 61);
  expect_gradients_match_oracle(70, 7, 64, 71);
  expect_gradients_match_oracle(66, 5, 128, 81);
}

// [0, N) in one call == [0, s) then [s, N) from the carried state.
TEST(DeltaRule, SplitEquality) {
  const int64_t N = 50;
  Inputs in = make_inputs(1, 2, N, 6, 5, true, true, 61);
  LinearAttentionResult whole = run(in, 0.9, 8);
  for (int64_t s : {1, 8, 23, 49}) {
    SCOPED_TRACE("split at " + std::to_string(s));
    auto part = [&](int64_t lo, int64_t len, const Tensor& init) {
      Inputs p{in.q.narrow(2, lo, len), in.k.narrow(2, lo, len), in.v.narrow(2, lo, len),
               in.beta.narrow(2, lo, len), in.log_alpha.narrow(2, lo, len), init};
      return run(p, 0.9, 8);
    };
    LinearAttentionResult a = part(0, s, in.init);
    LinearAttentionResult b = part(s, N - s, a.final_state);
    EXPECT_LE(rel_err(cat({a.out, b.out}, 2).to_vector(), whole.out.to_vector()), 1e-12);
    EXPECT_LE(rel_err(b.final_state.to_vector(), whole.final_state.to_vector()), 1e-12);
  }
}

// q, k, v as split_heads gives them — [B, H, T, D] views of [B, T, H, D] buffers — are read in
// place (no copy) and the output comes back in that layout; every value and gradient equals
// the contiguous inputs' bit for bit (the same arithmetic in the same order). D = 64 runs the
// vector kernels, D = 6 the generic ones; a view whose last dim is strided is copied first.
TEST(DeltaRule, HeadSplitViewsAreReadInPlaceWithEqualResults) {
  for (int64_t D : {6, 64}) {
    SCOPED_TRACE("D=" + std::to_string(D));
    const int64_t B = 2, H = 3, T = 70;
    auto head_split = [&](uint64_t seed) { return rand64({B, T, H, D}, seed).permute({0, 2, 1, 3}); };
    Tensor q = head_split(91), k = l2_normalize(head_split(92)), v = head_split(93);
    Tensor beta = rand64({B, H, T}, 94, 0.05, 0.95), la = rand64({B, H, T}, 95, -0.5, 0.0);
    Tensor w = randn({B, H, T, D}, 96, DType::f64);
    auto run_grads = [&](const Tensor& q0, const Tensor& k0, const Tensor& v0) {
      Tensor qq = q0.detach().requires_grad_(), kk = k0.detach().requires_grad_(), vv = v0.detach().requires_grad_();
      LinearAttentionResult r = delta_rule(qq, kk, vv, beta, la, Tensor(), 0.8, 16);
      Tensor loss = add(sum(mul(r.out, w)), sum(r.final_state));
      loss.backward();
      return std::vector<Tensor>{r.out, r.final_state, qq.grad(), kk.grad(), vv.grad()};
    };
    std::vector<Tensor> strided = run_grads(q, k, v);
    std::vector<Tensor> dense = run_grads(q.contiguous(), k.contiguous(), v.contiguous());
    for (size_t i = 0; i < dense.size(); ++i) EXPECT_EQ(strided[i].to_vector(), dense[i].to_vector()) << "tensor " << i;
    // the output in the head-split layout (heads inner to time), the dense run's contiguous
    EXPECT_LT(strided[0].strides()[1], strided[0].strides()[2]);
    EXPECT_TRUE(dense[0].is_contiguous());
    if (D == 6) {  // last dim strided: [B, H, T, D] as a transposed view of [B, H, D, T]
      Tensor qt = q.contiguous().transpose(2, 3).contiguous().transpose(2, 3);
      ASSERT_NE(qt.strides()[3], 1);
      std::vector<Tensor> copied = run_grads(qt, k, v);
      for (size_t i = 0; i < dense.size(); ++i) EXPECT_EQ(copied[i].to_vector(), dense[i].to_vector()) << "tensor " << i;
    }
  }
  // and the finite-difference check through head-split views
  auto f = [](const std::vector<Tensor>& x) {
    auto hs = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };  // [B, T, H, D] -> [B, H, T, D]
    return both(delta_rule(hs(x[0]), l2_normalize(hs(x[1])), hs(x[2]), x[3], x[4], Tensor(), 0.7, 4));
  };
  expect_gradcheck(f, {rand64({1, 9, 2, 3}, 97), rand64({1, 9, 2, 3}, 98), rand64({1, 9, 2, 4}, 99),
                       rand64({1, 2, 9}, 100, 0.05, 0.95), rand64({1, 2, 9}, 101, -0.5, 0.0)});
}

TEST(DeltaRule, SameResultForAnyThreadCount) {
  Inputs in = make_inputs(2, 3, 70, 8, 8, true, true, 71);
  const int saved = num_threads();
  set_num_threads(1);
  LinearAttentionResult one = run(in, 1.0, 16);
  set_num_threads(2);
  LinearAttentionResult two = run(in, 1.0, 16);
  set_num_threads(saved);
  EXPECT_EQ(one.out.to_vector(), two.out.to_vector());
  EXPECT_EQ(one.final_state.to_vector(), two.final_state.to_vector());
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("delta_rule"), std::string::npos) << msg;
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' in " << msg;
  }
}

TEST(DeltaRule, BadShapesNameTheOpAndShapes) {
  Inputs in = make_inputs(1, 2, 5, 4, 3, true, true, 81);
  const Tensor none;
  auto call = [&](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& b, const Tensor& la,
                  const Tensor& s0, int64_t chunk = 64) {
    return [=] { delta_rule(q, k, v, b, la, s0, 1.0, chunk); };
  };
  expect_error(call(in.q, rand64({1, 2, 5, 3}, 1), in.v, in.beta, in.log_alpha, in.init),
               {"[1,2,5,3]", "[1,2,5,4]"});
  expect_error(call(in.q, in.k, rand64({1, 2, 6, 3}, 2), in.beta, in.log_alpha, in.init), {"[1,2,6,3]"});
  expect_error(call(in.q, in.k, in.v, rand64({1, 2, 4}, 3), in.log_alpha, in.init),
               {"beta", "[1,2,4]", "[1,2,5]"});
  expect_error(call(in.q, in.k, in.v, in.beta, rand64({2, 5}, 4), in.init), {"log_alpha", "[2,5]"});
  expect_error(call(in.q, in.k, in.v, in.beta, in.log_alpha, rand64({1, 2, 3, 4}, 5)),
               {"initial_state", "[1,2,3,4]", "[1,2,4,3]"});
  expect_error(call(rand64({2, 5, 4}, 6), in.k, in.v, in.beta, none, none), {"[2,5,4]"});
  expect_error(call(in.q, in.k, in.v, in.beta, none, none, 0), {"chunk", "0"});
  expect_error(call(in.q, in.k.to(DType::f32), in.v, in.beta, none, none), {"k is f32", "q is f64"});
}

}  // namespace
}  // namespace skein
