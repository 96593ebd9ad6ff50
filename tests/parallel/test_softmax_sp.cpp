// test_softmax_sp.cpp — sequence-parallel softmax attention (parallel/softmax_sp.h) against
// softmax_attention on the whole sequence in one process: every rank builds the same full
// inputs, runs the reference, then its contiguous slice through LASP-2H, Ring and zigzag Ring,
// and compares its output slice and the gradients of its q, k, v slices (f64 and f32, GQA,
// slices not a multiple of the 64-row kernel block, sliding windows); and the bytes one call
// moves, per kind, against the formulas of softmax_sp.h (linear in T; the zigzag re-layout
// counted apart, under "sendrecv").
#include <gtest/gtest.h>
#include <string>
#include <vector>
#include "core/ops.h"
#include "helpers.h"
#include "parallel/softmax_sp.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

enum class Method { lasp2h, ring, zigzag };
const char* method_name(Method m) {
  switch (m) {
    case Method::lasp2h: return "lasp2h";
    case Method::ring: return "ring";
    case Method::zigzag: return "zigzag";
  }
  return "?";
}
const Method kMethods[] = {Method::lasp2h, Method::ring, Method::zigzag};

constexpr int64_t kB = 2, kD = 8, kDv = 6;
constexpr double kScale = 0.4;

struct Case {
  int64_t T;  // tokens per rank
  int64_t H, Hkv, window;
};

Tensor run(Communicator& sp, Method m, const Tensor& q, const Tensor& k, const Tensor& v,
           int64_t window) {
  if (m == Method::lasp2h) return lasp2h_attention(sp, q, k, v, kScale, window);
  return ring_attention(sp, q, k, v, kScale, window, m == Method::zigzag);
}

// The whole sequence's q, k, v (the same on every rank: fixed seeds), as leaves.
std::vector<Tensor> full_inputs(const Case& c, int64_t N, DType dt) {
  std::vector<Tensor> x{randn({kB, c.H, N, kD}, 31, dt), randn({kB, c.Hkv, N, kD}, 32, dt),
                        randn({kB, c.Hkv, N, kDv}, 33, dt)};
  for (Tensor& t : x) t.requires_grad_();
  return x;
}

// No ASSERTs before the last collective: a rank leaving early would hang the others.
void check_method(Method m, const Case& c, DType dt, double tol) {
  SCOPED_TRACE(detail::concat(method_name(m), " ", dtype_name(dt), " T=", c.T, " H=", c.H,
                              " Hkv=", c.Hkv, " window=", c.window));
  const int W = world().size(), r = world().rank();
  const int64_t N = W * c.T;
  std::vector<Tensor> full = full_inputs(c, N, dt);
  const Tensor ref = softmax_attention(full[0], full[1], full[2], kScale, true, c.window, 0);
  const Tensor w_out = randn(ref.shape(), 34, dt);
  sum(mul(ref, w_out)).backward();

  std::vector<Tensor> mine;
  for (const Tensor& t : full) mine.push_back(t.detach().narrow(2, r * c.T, c.T).contiguous().requires_grad_());
  const Tensor got = run(world(), m, mine[0], mine[1], mine[2], c.window);
  sum(mul(got, w_out.narrow(2, r * c.T, c.T).contiguous())).backward();

  EXPECT_LT(rel_diff(got, ref.narrow(2, r * c.T, c.T).contiguous()), tol) << "out";
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    const Tensor g = mine[i].grad();
    EXPECT_TRUE(g.defined()) << names[i];
    if (!g.defined()) continue;
    EXPECT_LT(rel_diff(g, full[i].grad().narrow(2, r * c.T, c.T).contiguous()), tol) << names[i];
  }
}

// 70 tokens per rank: two 64-row kernel blocks, the second partial (zigzag halves of 35).
TEST(SoftmaxSp, MatchesSingleProcessF64) {
  for (Method m : kMethods) check_method(m, {70, 2, 2, 0}, DType::f64, 1e-10);
}

TEST(SoftmaxSp, GroupedQueryHeadsF64) {
  for (Method m : kMethods) check_method(m, {10, 4, 2, 0}, DType::f64, 1e-10);
  for (Method m : kMethods) check_method(m, {6, 4, 1, 0}, DType::f64, 1e-10);
}

TEST(SoftmaxSp, MatchesSingleProcessF32) {
  for (Method m : kMethods) check_method(m, {70, 4, 2, 0}, DType::f32, 1e-5);
}

// Windows shorter than a slice, across one slice boundary, and across several.
TEST(SoftmaxSp, SlidingWindow) {
  for (Method m : kMethods)
    for (int64_t window : {3, 13, 25}) check_method(m, {10, 4, 2, window}, DType::f64, 1e-10);
}

// With a world of one every method is the local op.
TEST(SoftmaxSp, SingleProcessCommIsTheLocalOp) {
  SingleProcessComm one;
  const Case c{12, 4, 2, 0};
  std::vector<Tensor> x = full_inputs(c, c.T, DType::f64);
  const Tensor want = softmax_attention(x[0], x[1], x[2], kScale);
  for (Method m : kMethods) {
    EXPECT_LT(rel_diff(run(one, m, x[0], x[1], x[2], 0), want), 1e-12) << method_name(m);
  }
}

TEST(SoftmaxSp, BadArgumentsAreErrors) {
  const Case c{5, 4, 2, 0};
  std::vector<Tensor> x = full_inputs(c, c.T, DType::f64);
  try {
    ring_attention(world(), x[0], x[1], x[2], kScale, 0, true);
    ADD_FAILURE() << "an odd T with zigzag was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ring_attention"), std::string::npos) << msg;
    EXPECT_NE(msg.find("even"), std::string::npos) << msg;
  }
  EXPECT_THROW(lasp2h_attention(world(), x[0], x[1].narrow(2, 0, 4), x[2], kScale), Error);
  EXPECT_THROW(ring_attention(world(), x[0], x[1], x[2], kScale, -1, false), Error);
}

// ---- communication volume ---------------------------------------------------------------------

struct Bytes {
  CommStats fwd, all;  // after the forward; after forward and backward
};

Bytes measure(Method m, const Case& c) {
  const int r = world().rank();
  std::vector<Tensor> full = full_inputs(c, world().size() * c.T, DType::f64);
  std::vector<Tensor> mine;
  for (const Tensor& t : full) mine.push_back(t.detach().narrow(2, r * c.T, c.T).contiguous().requires_grad_());
  world().stats().reset();
  const Tensor out = run(world(), m, mine[0], mine[1], mine[2], c.window);
  Bytes b;
  b.fwd = world().stats();
  sum(out).backward();
  b.all = world().stats();
  return b;
}

// The halves of rank r's slice that change owner in the zigzag re-layout: it holds global
// chunks 2r, 2r+1 of 2W and needs chunks r, 2W-1-r.
int64_t moved_halves(int r, int W) {
  int64_t n = 0;
  for (int64_t c : {2 * r, 2 * r + 1}) n += (c != r && c != 2 * W - 1 - r) ? 1 : 0;
  return n;
}

// Per rank and call, with e = 8 (f64) and Dkv = D + Dv:
//   block = B Hkv T Dkv e;  lasp2h fwd: all_gather (W-1) block, bwd: reduce_scatter (W-1) block;
//   ring fwd: W-1 sends of a block, bwd: 2 (W-1) more; zigzag: ring + "sendrecv" of
//   moved_halves (T/2) B (H D + Hkv Dkv + H Dv) e in forward and the same in backward.
TEST(SoftmaxSp, BytesPerCallMatchTheFormulasAndGrowLinearlyInT) {
  const int W = world().size(), r = world().rank();
  for (Method m : kMethods) {
    std::vector<int64_t> fwd_total;
    for (int64_t T : {8, 16}) {
      SCOPED_TRACE(detail::concat(method_name(m), " T=", T));
      const Case c{T, 4, 2, 0};
      const Bytes b = measure(m, c);
      const int64_t block = kB * c.Hkv * T * (kD + kDv) * 8;
      const int64_t relayout = moved_halves(r, W) * (T / 2) * kB *
                               (c.H * kD + c.Hkv * (kD + kDv) + c.H * kDv) * 8;
      if (m == Method::lasp2h) {
        EXPECT_EQ(b.fwd.get("all_gather").calls, 1);
        EXPECT_EQ(b.fwd.get("all_gather").bytes_sent, (W - 1) * block);
        EXPECT_EQ(b.fwd.total_sent(), (W - 1) * block) << b.fwd.str();
        EXPECT_EQ(b.all.get("reduce_scatter").bytes_sent, (W - 1) * block);
        EXPECT_EQ(b.all.total_sent(), 2 * (W - 1) * block) << b.all.str();
      } else {
        EXPECT_EQ(b.fwd.get("send").calls, W - 1);
        EXPECT_EQ(b.fwd.get("send").bytes_sent, (W - 1) * block);
        EXPECT_EQ(b.fwd.get("recv").bytes_received, (W - 1) * block);
        EXPECT_EQ(b.all.get("send").bytes_sent, 3 * (W - 1) * block) << b.all.str();
        EXPECT_EQ(b.all.get("recv").bytes_received, 3 * (W - 1) * block) << b.all.str();
        const int64_t zz = m == Method::zigzag ? relayout : 0;
        EXPECT_EQ(b.fwd.get("sendrecv").bytes_sent, zz) << b.fwd.str();
        EXPECT_EQ(b.fwd.get("sendrecv").bytes_received, zz) << b.fwd.str();
        EXPECT_EQ(b.all.get("sendrecv").bytes_sent, 2 * zz) << b.all.str();
        EXPECT_EQ(b.fwd.total_sent(), (W - 1) * block + zz) << b.fwd.str();
        EXPECT_EQ(b.all.total_sent(), 3 * (W - 1) * block + 2 * zz) << b.all.str();
      }
      fwd_total.push_back(b.fwd.total_sent());
    }
    EXPECT_EQ(fwd_total[1], 2 * fwd_total[0]) << method_name(m);
  }
}

// The re-layout's moved halves per rank, by hand: W = 2 keeps chunks 0 and 2 (1 and 3 swap);
// W = 4 keeps chunks 0 (rank 0) and 5 (rank 2).
TEST(SoftmaxSp, ZigzagMovedHalvesPerRank) {
  const int W = world().size();
  const std::vector<int64_t> want = W == 2 ? std::vector<int64_t>{1, 1}
                                    : W == 4 ? std::vector<int64_t>{1, 2, 1, 2}
                                             : std::vector<int64_t>{};
  for (size_t r = 0; r < want.size(); ++r) {
    EXPECT_EQ(moved_halves(static_cast<int>(r), W), want[r]) << "rank " << r;
  }
}

}  // namespace
}  // namespace skein
