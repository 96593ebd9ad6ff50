// test_linear_attention.cpp — linear_attention (core/ops/linear_attention*.cpp) against two
// oracles: the plain-loop recurrence S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = s q_t S_t,
// and the quadratic form o = s ((Q K^T) ⊙ M) V built from autograd ops (its gradients are the
// second oracle); finite-difference gradchecks; split equality (what sequence parallelism
// relies on); chunk-size and thread-count invariance; error messages.
#include <gtest/gtest.h>
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
using V = std::vector<Tensor>;

enum class Kind { plain, fixed, gla };
const char* kind_name(Kind k) { return k == Kind::plain ? "plain" : k == Kind::fixed ? "fixed" : "gla"; }

struct Inputs {
  Tensor q, k, v, gate, s0;  // [B,H,T,Dk] x2, [B,H,T,Dv], undefined | [H] | [B,H,T,Dk], [B,H,Dk,Dv]
  double scale = 1.0;
};

// f64 inputs. Fixed decay: log(1 - 2^-(base + h)) (base 5 is the benchmark model's RetNet
// decay); GLA gates uniform in [gla_lo, gla_hi].
Inputs make_inputs(Kind kind, int64_t B, int64_t H, int64_t T, int64_t Dk, int64_t Dv, bool with_s0,
                   uint64_t seed, double fixed_base = 5, double gla_lo = -0.3, double gla_hi = 0.0) {
  Inputs in;
  in.q = rand64({B, H, T, Dk}, seed);
  in.k = rand64({B, H, T, Dk}, seed + 1);
  in.v = rand64({B, H, T, Dv}, seed + 2);
  in.scale = 1.0 / std::sqrt(static_cast<double>(Dk));
  if (kind == Kind::fixed) {
    std::vector<double> g(H);
    for (int64_t h = 0; h < H; ++h) g[h] = std::log(1.0 - std::pow(2.0, -(fixed_base + h)));
    in.gate = from_vector(g, {H}, DType::f64);
  } else if (kind == Kind::gla) {
    in.gate = rand64({B, H, T, Dk}, seed + 3, gla_lo, gla_hi);
  }
  if (with_s0) in.s0 = rand64({B, H, Dk, Dv}, seed + 4);
  return in;
}

Tensor to_f32(const Tensor& t) { return t.defined() ? t.to(DType::f32) : Tensor(); }
Tensor to_f64(const Tensor& t) { return t.defined() ? t.to(DType::f64) : Tensor(); }

// The log gates expanded to [B, H, T, Dk] (zeros when undefined).
std::vector<double> full_gate(const Tensor& gate, int64_t B, int64_t H, int64_t T, int64_t Dk) {
  std::vector<double> g(B * H * T * Dk, 0.0);
  if (!gate.defined()) return g;
  if (gate.dim() == 4) return gate.to_vector();
  const std::vector<double> per_head = gate.to_vector();
  for (size_t i = 0; i < g.size(); ++i) g[i] = per_head[(i / (T * Dk)) % H];
  return g;
}

struct Ref {
  std::vector<double> out, fin;  // [B,H,T,Dv], [B,H,Dk,Dv]
};

// Oracle 1: the recurrence itself, plain loops in double.
Ref recurrent(const Inputs& in) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), Dk = in.q.size(3), Dv = in.v.size(3);
  const auto q = in.q.to_vector(), k = in.k.to_vector(), v = in.v.to_vector();
  const auto g = full_gate(in.gate, B, H, T, Dk);
  const auto s0 = in.s0.defined() ? in.s0.to_vector() : std::vector<double>(B * H * Dk * Dv, 0.0);
  Ref r{std::vector<double>(B * H * T * Dv), s0};
  for (int64_t bh = 0; bh < B * H; ++bh) {
    double* S = r.fin.data() + bh * Dk * Dv;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = bh * T + t;
      for (int64_t c = 0; c < Dk; ++c)
        for (int64_t j = 0; j < Dv; ++j)
          S[c * Dv + j] = std::exp(g[row * Dk + c]) * S[c * Dv + j] + k[row * Dk + c] * v[row * Dv + j];
      for (int64_t j = 0; j < Dv; ++j) {
        double o = 0;
        for (int64_t c = 0; c < Dk; ++c) o += q[row * Dk + c] * S[c * Dv + j];
        r.out[row * Dv + j] = in.scale * o;
      }
    }
  }
  return r;
}

// Oracle 2: the quadratic (parallel) form from autograd ops, G = inclusive cumsum of g over t:
//   o = s Σ_{u<=t} (Σ_c q_tc k_uc exp(G_tc - G_uc)) v_u + s (q ⊙ exp(G)) S0
//   S_T = diag(exp(G_last)) S0 + (k ⊙ exp(G_last - G))^T v
LinearAttentionResult quadratic(const Inputs& in) {
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), Dk = in.q.size(3);
  Tensor g;
  if (!in.gate.defined()) g = zeros({B, H, T, Dk}, DType::f64);
  else if (in.gate.dim() == 1) g = add(zeros({B, H, T, Dk}, DType::f64), in.gate.reshape({1, H, 1, 1}));
  else g = in.gate;
  std::vector<double> tril(T * T, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t u = 0; u <= t; ++u) tril[t * T + u] = 1.0;
  Tensor lower = from_vector(tril, {T, T}, DType::f64);
  Tensor G = matmul(lower.expand({B, H, T, T}).contiguous(), g);
  Tensor diff = sub(G.reshape({B, H, T, 1, Dk}), G.reshape({B, H, 1, T, Dk}));
  Tensor decay = exp(where(lower.reshape({1, 1, T, T, 1}), diff, full({1}, -1e30, DType::f64)));
  Tensor A = sum(in.q.reshape({B, H, T, 1, Dk}) * in.k.reshape({B, H, 1, T, Dk}) * decay, {4});
  Tensor out = matmul(A, in.v) * in.scale;
  Tensor Glast = G.narrow(2, T - 1, 1);
  Tensor fin = matmul((in.k * exp(Glast - G)).transpose(2, 3), in.v);
  if (in.s0.defined()) {
    out = out + matmul(in.q * exp(G), in.s0) * in.scale;
    fin = fin + exp(Glast).reshape({B, H, Dk, 1}) * in.s0;
  }
  return {out, fin};
}

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_TRUE(std::isfinite(a[i])) << "element " << i;
    num = std::max(num, std::fabs(a[i] - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return num / std::max(den, 1e-300);
}
double rel_err(const Tensor& a, const Tensor& b) { return rel_err(a.to_vector(), b.to_vector()); }

LinearAttentionResult run(const Inputs& in, int64_t chunk = 64) {
  return linear_attention(in.q, in.k, in.v, in.gate, in.s0, in.scale, chunk);
}

// Chunkwise f64 and f32 against the recurrence (f32 against the oracle of its own rounded inputs).
void expect_matches_recurrence(const Inputs& in64, int64_t chunk, const std::string& what) {
  Ref ref = recurrent(in64);
  LinearAttentionResult r = run(in64, chunk);
  EXPECT_LE(rel_err(r.out.to_vector(), ref.out), 1e-9) << what << " f64 out";
  EXPECT_LE(rel_err(r.final_state.to_vector(), ref.fin), 1e-9) << what << " f64 final_state";
  Inputs in32{to_f32(in64.q), to_f32(in64.k), to_f32(in64.v), to_f32(in64.gate), to_f32(in64.s0), in64.scale};
  Ref ref32 = recurrent({to_f64(in32.q), to_f64(in32.k), to_f64(in32.v), to_f64(in32.gate), to_f64(in32.s0),
                         in64.scale});
  LinearAttentionResult r32 = run(in32, chunk);
  EXPECT_EQ(r32.out.dtype(), DType::f32);
  EXPECT_LE(rel_err(r32.out.to_vector(), ref32.out), 1e-4) << what << " f32 out";
  EXPECT_LE(rel_err(r32.final_state.to_vector(), ref32.fin), 1e-4) << what << " f32 final_state";
}

TEST(LinearAttention, ForwardMatchesRecurrence) {
  uint64_t seed = 100;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla})
    for (bool with_s0 : {false, true})
      for (int64_t T : {1, 63, 64, 65, 200})
        for (int64_t D : {16, 64}) {
          const int64_t B = D == 16 ? 2 : 1, H = 2;
          Inputs in = make_inputs(kind, B, H, T, D, D, with_s0, seed += 10);
          expect_matches_recurrence(in, 64, std::string(kind_name(kind)) + (with_s0 ? " s0" : "") +
                                                " T=" + std::to_string(T) + " D=" + std::to_string(D));
        }
}

TEST(LinearAttention, ForwardKeyAndValueDimsDiffer) {
  uint64_t seed = 900;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla}) {
    expect_matches_recurrence(make_inputs(kind, 1, 2, 130, 16, 40, true, seed += 10), 64,
                              std::string(kind_name(kind)) + " Dk=16 Dv=40");
    expect_matches_recurrence(make_inputs(kind, 2, 1, 70, 40, 8, false, seed += 10), 64,
                              std::string(kind_name(kind)) + " Dk=40 Dv=8");
  }
}

TEST(LinearAttention, ChunkSizeInvariance) {
  uint64_t seed = 1000;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla})
    for (int64_t chunk : {1, 3, 16, 17, 33, 64, 300}) {
      Inputs in = make_inputs(kind, 1, 2, 100, 8, 5, true, seed += 10, 1.0);
      expect_matches_recurrence(in, chunk, std::string(kind_name(kind)) + " chunk=" + std::to_string(chunk));
    }
}

// Strong GLA decays (uniform in [-8, 0]) with exact zeros and -30s: nothing overflows.
TEST(LinearAttention, GateStress) {
  Inputs in = make_inputs(Kind::gla, 1, 2, 150, 32, 16, true, 2000, 5, -8.0, 0.0);
  std::vector<double> g = in.gate.to_vector();
  for (size_t i = 0; i < g.size(); i += 7) g[i] = 0.0;
  for (size_t i = 3; i < g.size(); i += 11) g[i] = -30.0;
  in.gate = from_vector(g, in.gate.shape(), DType::f64);
  expect_matches_recurrence(in, 64, "gla stress");
  Inputs weak = make_inputs(Kind::gla, 1, 2, 150, 32, 16, true, 2100, 5, -0.01, 0.0);
  expect_matches_recurrence(weak, 64, "gla weak");
}

TEST(LinearAttention, EmptySequenceKeepsState) {
  Inputs in = make_inputs(Kind::fixed, 1, 2, 0, 4, 3, true, 2200);
  LinearAttentionResult r = run(in);
  EXPECT_EQ(r.out.shape(), (Shape{1, 2, 0, 3}));
  EXPECT_EQ(r.final_state.to_vector(), in.s0.to_vector());
}

// Finite differences of every input through both outputs (cat), only out, only final_state.
void gradcheck_all(Kind kind, int64_t T, int64_t chunk, int64_t H, uint64_t seed) {
  Inputs in = make_inputs(kind, 1, H, T, 3, 2, true, seed, 1.0, -1.0, -0.05);
  const double s = in.scale;
  V xs{in.q, in.k, in.v, in.s0};
  if (in.gate.defined()) xs.push_back(in.gate);
  auto call = [kind, s, chunk](const V& x) {
    return linear_attention(x[0], x[1], x[2], kind == Kind::plain ? Tensor() : x[4], x[3], s, chunk);
  };
  SCOPED_TRACE(std::string(kind_name(kind)) + " T=" + std::to_string(T) + " chunk=" + std::to_string(chunk));
  expect_gradcheck([&](const V& x) {
    LinearAttentionResult r = call(x);
    return cat({r.out.reshape({-1}), r.final_state.reshape({-1})}, 0);
  }, xs);
  expect_gradcheck([&](const V& x) { return call(x).out; }, xs);
  expect_gradcheck([&](const V& x) { return call(x).final_state; }, xs);
}

TEST(LinearAttention, GradCheck) {
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla}) gradcheck_all(kind, 11, 4, 2, 3000);
  gradcheck_all(Kind::gla, 45, 36, 1, 3100);  // GLA sub-blocks of 16 below the diagonal
  gradcheck_all(Kind::fixed, 7, 64, 1, 3200);  // T < chunk
}

// Analytic gradients equal autograd through the quadratic composition (mid-size).
void expect_grads_match_quadratic(Kind kind, bool with_s0, int64_t T, int64_t chunk, uint64_t seed) {
  Inputs in = make_inputs(kind, 2, 2, T, 8, 6, with_s0, seed, 1.0);
  V xs{in.q, in.k, in.v};
  if (in.gate.defined()) xs.push_back(in.gate);
  if (in.s0.defined()) xs.push_back(in.s0);
  for (Tensor& x : xs) x.requires_grad_();
  Tensor wo = randn({2, 2, T, 6}, seed + 7, DType::f64), wf = randn({2, 2, 8, 6}, seed + 8, DType::f64);
  auto grads = [&](const LinearAttentionResult& r) {
    for (Tensor& x : xs) x.zero_grad();
    add(sum(r.out * wo), sum(r.final_state * wf)).backward();
    V g;
    for (Tensor& x : xs) g.push_back(x.grad());
    return g;
  };
  LinearAttentionResult mine = run(in, chunk), oracle = quadratic(in);
  const std::string what = std::string(kind_name(kind)) + (with_s0 ? " s0" : "") + " chunk=" + std::to_string(chunk);
  EXPECT_LE(rel_err(mine.out, oracle.out), 1e-9) << what;
  EXPECT_LE(rel_err(mine.final_state, oracle.final_state), 1e-9) << what;
  V gm = grads(mine), go = grads(oracle);
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_TRUE(gm[i].defined() && go[i].defined()) << what << " input " << i;
    EXPECT_EQ(gm[i].shape(), xs[i].shape());
    EXPECT_LE(rel_err(gm[i], go[i]), 1e-9) << what << " gradient of input " << i;
  }
}

TEST(LinearAttention, GradientsMatchQuadraticForm) {
  uint64_t seed = 4000;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla})
    for (bool with_s0 : {false, true}) expect_grads_match_quadratic(kind, with_s0, 50, 16, seed += 10);
  expect_grads_match_quadratic(Kind::gla, true, 50, 40, seed += 10);   // sub-blocks 16, 16, 8
  expect_grads_match_quadratic(Kind::gla, false, 100, 64, seed += 10);  // default chunk, 4 sub-blocks
}

// The f32 backward agrees with the f64 one on the same (f32-rounded) inputs.
TEST(LinearAttention, Float32GradientsMatchFloat64) {
  uint64_t seed = 4500;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla}) {
    Inputs in = make_inputs(kind, 1, 2, 130, 32, 24, true, seed += 10);
    Inputs in32{to_f32(in.q), to_f32(in.k), to_f32(in.v), to_f32(in.gate), to_f32(in.s0), in.scale};
    Inputs in64{to_f64(in32.q), to_f64(in32.k), to_f64(in32.v), to_f64(in32.gate), to_f64(in32.s0), in.scale};
    Tensor wo = randn({1, 2, 130, 24}, seed + 5, DType::f64), wf = randn({1, 2, 32, 24}, seed + 6, DType::f64);
    auto grads = [&](Inputs& x, DType dt) {
      V xs{x.q, x.k, x.v, x.s0};
      if (x.gate.defined()) xs.push_back(x.gate);
      for (Tensor& t : xs) t.requires_grad_();
      LinearAttentionResult r = run(x);
      add(sum(r.out * wo.to(dt)), sum(r.final_state * wf.to(dt))).backward();
      V g;
      for (Tensor& t : xs) g.push_back(t.grad());
      return g;
    };
    V g32 = grads(in32, DType::f32), g64 = grads(in64, DType::f64);
    for (size_t i = 0; i < g32.size(); ++i) {
      EXPECT_EQ(g32[i].dtype(), DType::f32);
      EXPECT_LE(rel_err(g32[i], g64[i]), 1e-4) << kind_name(kind) << " input " << i;
    }
  }
}

// Running [0, N) equals running [0, k) then [k, N) from the carried final state: values and
// gradients (the second part's initial_state gradient flows back into the first part).
TEST(LinearAttention, SplitEquality) {
  const int64_t N = 150;
  uint64_t seed = 5000;
  for (Kind kind : {Kind::plain, Kind::fixed, Kind::gla}) {
    Inputs in = make_inputs(kind, 1, 2, N, 16, 8, true, seed += 10, 1.0);
    V xs{in.q, in.k, in.v, in.s0};
    if (in.gate.defined()) xs.push_back(in.gate);
    for (Tensor& x : xs) x.requires_grad_();
    Tensor wo = randn({1, 2, N, 8}, seed + 5, DType::f64), wf = randn({1, 2, 16, 8}, seed + 6, DType::f64);
    auto grads_of = [&](const Tensor& out, const Tensor& fin) {
      for (Tensor& x : xs) x.zero_grad();
      add(sum(out * wo), sum(fin * wf)).backward();
      V g;
      for (Tensor& x : xs) g.push_back(x.grad());
      return g;
    };
    LinearAttentionResult full_run = run(in);
    V g_full = grads_of(full_run.out, full_run.final_state);
    for (int64_t k : {1, 37, 64, 100, 128, 149}) {
      auto part = [&](int64_t t0, int64_t len, const Tensor& s0) {
        Tensor gate = kind == Kind::gla ? in.gate.narrow(2, t0, len) : in.gate;
        return linear_attention(in.q.narrow(2, t0, len), in.k.narrow(2, t0, len), in.v.narrow(2, t0, len),
                                gate, s0, in.scale);
      };
      LinearAttentionResult a = part(0, k, in.s0);
      LinearAttentionResult b = part(k, N - k, a.final_state);
      Tensor out = cat({a.out, b.out}, 2);
      const std::string what = std::string(kind_name(kind)) + " k=" + std::to_string(k);
      EXPECT_LE(rel_err(out, full_run.out), 1e-12) << what;
      EXPECT_LE(rel_err(b.final_state, full_run.final_state), 1e-12) << what;
      V g_split = grads_of(out, b.final_state);
      for (size_t i = 0; i < xs.size(); ++i) EXPECT_LE(rel_err(g_split[i], g_full[i]), 1e-12) << what << " input " << i;
    }
  }
}

TEST(LinearAttention, ThreadCountInvariance) {
  Inputs in = make_inputs(Kind::gla, 2, 3, 90, 8, 8, true, 6000);
  V xs{in.q, in.k, in.v, in.gate, in.s0};
  auto go = [&] {
    for (Tensor& x : xs) x.requires_grad_().zero_grad();
    LinearAttentionResult r = run(in, 32);
    add(sum(r.out * r.out), sum(r.final_state)).backward();
    V got{r.out.detach(), r.final_state.detach()};
    for (Tensor& x : xs) got.push_back(x.grad());
    return got;
  };
  const int before = num_threads();
  set_num_threads(1);
  V one = go();
  set_num_threads(2);
  V two = go();
  set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i].to_vector(), two[i].to_vector()) << "result " << i;
}

TEST(LinearAttention, NoGradRecordsNothing) {
  Inputs in = make_inputs(Kind::fixed, 1, 2, 10, 4, 4, true, 6100);
  in.q.requires_grad_();
  {
    NoGradGuard ng;
    EXPECT_FALSE(run(in).out.requires_grad());
  }
  LinearAttentionResult r = run(in);
  EXPECT_TRUE(r.out.requires_grad());
  EXPECT_TRUE(r.final_state.requires_grad());
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("linear_attention"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(LinearAttention, ErrorMessages) {
  Inputs in = make_inputs(Kind::gla, 2, 3, 5, 4, 6, true, 7000);
  const Tensor& q = in.q;
  const Tensor &k = in.k, &v = in.v, &g = in.gate, &s0 = in.s0;
  expect_error([&] { linear_attention(q.reshape({6, 5, 4}), k, v, g, s0); }, "[6,5,4]");
  expect_error([&] { linear_attention(q, k.narrow(3, 0, 3), v, g, s0); }, "k [2,3,5,3] must match q [2,3,5,4]");
  expect_error([&] { linear_attention(q, k, v.narrow(2, 0, 4), g, s0); }, "v [2,3,4,6]");
  expect_error([&] { linear_attention(q, k, v, zeros({2}, DType::f64), s0); }, "got [2]");
  expect_error([&] { linear_attention(q, k, v, g, zeros({2, 3, 6, 4}, DType::f64)); },
               "initial_state must be [B, H, Dk, Dv] = [2,3,4,6], got [2,3,6,4]");
  expect_error([&] { linear_attention(q, k, v, g, s0, 1.0, 0); }, "chunk must be >= 1, got 0");
  expect_error([&] { linear_attention(q.to(DType::f32), k, v, g, s0); }, "dtypes differ");
  std::vector<double> gv = g.to_vector();
  gv[17] = 0.25;
  expect_error([&] { linear_attention(q, k, v, from_vector(gv, g.shape(), DType::f64), s0); },
               "found 0.25 at flat index 17");
  expect_error([&] { linear_attention(q, k, v, from_vector({-0.1, 0.5, -0.2}, {3}, DType::f64), s0); },
               "must be finite and <= 0");
  expect_error([&] { linear_attention(q, k, v, full({3}, std::nan(""), DType::f64), s0); },
               "must be finite and <= 0");
}

}  // namespace
}  // namespace skein
