// test_bf16_reduce.cpp — gradients reduced in bf16 (parallel.grad_reduce_dtype=bf16):
//  * MpiComm's bf16 sum (all_reduce, reduce_scatter, reduce; blocking and not): with 2 ranks
//    exactly bf16(f32(a) + f32(b)) (one f32 add, one rounding); with 4 within the p - 1
//    roundings' bound of the exact sum, and the same bits on every rank; max is refused;
//    the byte counters count 2 bytes an element.
//  * GradReducer with reduce_dtype bf16 (blocking and overlapped buckets): every gradient is
//    the average of the ranks' bf16-rounded gradients — bit for bit with 2 ranks — and sends
//    half the bytes of the f32 reduce.
//  * Zero1AdamW with reduce_dtype bf16: its shard gradients are GradReducer's bf16 averages.
#include <gtest/gtest.h>
#include <cmath>
#include "core/ops.h"
#include "helpers.h"
#include "model_batch.h"
#include "parallel/data_parallel.h"
#include "parallel/flat.h"
#include "parallel/zero.h"

namespace skein {
namespace {

using test::world;

constexpr double kUnitRoundoff = 1.0 / 256;  // bf16: 8 significant bits, |round(x) - x| <= 2^-8 |x|

// Rank r's element i: 8 significant bits at most (exact in bf16), signs and magnitudes mixed,
// so that the sums need rounding.
float value(int r, int64_t i) {
  const double m = 1.0 + static_cast<double>((r * 37 + i * 11) % 97) / 128.0;
  return static_cast<float>(((r + i) % 3 == 0 ? -m : m) * std::ldexp(1.0, static_cast<int>(i % 7) - 3));
}

Tensor make_bf16(int r, int64_t n, int64_t first = 0) {
  Tensor t = Tensor::empty({n}, DType::bf16);
  for (int64_t i = 0; i < n; ++i) t.data<bf16>()[i] = f32_to_bf16(value(r, first + i));
  return t;
}

// Checks got[i] (bf16) against the sum over ranks of value(q, first + i): exact pairwise
// rounding with 2 ranks, the (p - 1)-roundings bound otherwise.
void expect_bf16_sums(const Tensor& got, int64_t first, const char* what) {
  const int p = world().size();
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = bf16_to_f32(got.data<bf16>()[i]);
    if (p == 2) {
      const float want = bf16_to_f32(f32_to_bf16(value(0, first + i) + value(1, first + i)));
      EXPECT_EQ(g, want) << what << " i=" << i;
    } else {
      double exact = 0, mag = 0;
      for (int q = 0; q < p; ++q) exact += value(q, first + i), mag += std::fabs(value(q, first + i));
      EXPECT_LE(std::fabs(g - exact), (p - 1) * kUnitRoundoff * mag * 1.01) << what << " i=" << i;
    }
  }
}

TEST(Bf16Reduce, SumsWidenAddInF32AndRoundOnce) {
  const int p = world().size(), r = world().rank();
  const int64_t n = 37;
  for (bool nonblocking : {false, true}) {
    SCOPED_TRACE(nonblocking ? "non-blocking" : "blocking");
    Tensor t = make_bf16(r, n);
    if (nonblocking) world().iall_reduce(t).wait();
    else world().all_reduce(t);
    expect_bf16_sums(t, 0, "all_reduce");
    // Every rank holds the same bits.
    const Tensor all = world().all_gather(t);
    for (int q = 0; q < p; ++q)
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(all.data<bf16>()[q * n + i], t.data<bf16>()[i]) << "rank " << q;

    Tensor in = make_bf16(r, p * n), out = Tensor::empty({n}, DType::bf16);
    if (nonblocking) world().ireduce_scatter_into(in, out).wait();
    else world().reduce_scatter_into(in, out);
    expect_bf16_sums(out, r * n, "reduce_scatter");

    for (int root = 0; root < p; ++root) {
      Tensor red = zeros({n}, DType::f32).to(DType::bf16);
      if (nonblocking) world().ireduce_into(make_bf16(r, n), red, root).wait();
      else world().reduce_into(make_bf16(r, n), red, root);
      if (r == root) expect_bf16_sums(red, 0, "reduce");
    }
  }
  // Chunked blocking all-reduce (pieces of 3 elements) gives the same bits as one call.
  auto c = MpiComm::world();
  c->set_chunk_bytes(6);
  Tensor t = make_bf16(r, n), whole = make_bf16(r, n);
  c->all_reduce(t);
  world().all_reduce(whole);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(t.data<bf16>()[i], whole.data<bf16>()[i]) << "chunked i=" << i;
}

TEST(Bf16Reduce, MaxIsRefusedAndBytesAreHalved) {
  const int p = world().size();
  try {
    world().all_reduce(make_bf16(0, 4), ReduceOp::max);
    ADD_FAILURE() << "no error for a bf16 max";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("all_reduce: max over bf16 is not supported"), std::string::npos) << e.what();
  }
  auto c = MpiComm::world();
  const int64_t n = 1000, chunk = (n + p - 1) / p;
  c->all_reduce(make_bf16(0, n));
  EXPECT_EQ(c->stats().get("all_reduce").bytes_sent, 2 * (p - 1) * chunk * 2);  // 2 B an element
}

// The rank's gradients of the tiny model on its share of the global batch (global-token
// scaled, as the trainer backpropagates them).
void backward_local(HybridLM& m) {
  const test::Batch2 b = test::local_batch(test::global_batch(0), world().rank(), world().size());
  const TokenScale s = global_token_scale(world(), count_targets(b.targets));
  mul(m.loss(b.ids, b.targets).total, s.scale).backward();
}

// Every rank's unreduced gradients, all parameters end to end: [p, numel] f32.
Tensor gathered_local_grads(const NamedParams& params) {
  int64_t numel = 0;
  for (const auto& [name, t] : params) numel += t.numel();
  Tensor flat = zeros({numel}, DType::f32);
  int64_t at = 0;
  for (const auto& [name, t] : params) pack_grad(t, flat, at), at += t.numel();
  return world().all_gather(flat).view({world().size(), numel});
}

// The bf16 average of element k: p == 2 exactly as GradReducer computes it, else the f32
// average of the rounded operands with its bound.
struct Expected {
  float value;
  double bound;
};
Expected bf16_average(const Tensor& local, int64_t k) {
  const int p = static_cast<int>(local.size(0));
  const float* g = local.data<float>();
  const int64_t numel = local.size(1);
  if (p == 2) {
    const float a = bf16_to_f32(f32_to_bf16(g[k])), b = bf16_to_f32(f32_to_bf16(g[numel + k]));
    return {bf16_to_f32(f32_to_bf16(a + b)) * 0.5f, 0.0};
  }
  double sum = 0, mag = 0;
  for (int q = 0; q < p; ++q) {
    const double x = bf16_to_f32(f32_to_bf16(g[q * numel + k]));
    sum += x, mag += std::fabs(x);
  }
  return {static_cast<float>(sum / p), (p - 1) * kUnitRoundoff * mag * 1.01 / p + 1e-30};
}

void expect_bf16_averages(const NamedParams& got, const Tensor& local, const char* what) {
  int64_t at = 0;
  for (const auto& [name, t] : got) {
    ASSERT_TRUE(t.grad().defined()) << name;
    const float* g = t.grad().contiguous().data<float>();
    int bad = 0;
    for (int64_t i = 0; i < t.numel() && bad < 3; ++i) {
      const Expected e = bf16_average(local, at + i);
      if (std::fabs(g[i] - e.value) > e.bound) {
        ADD_FAILURE() << what << " " << name << "[" << i << "] = " << g[i] << ", want " << e.value << " +- " << e.bound;
        ++bad;
      }
    }
    at += t.numel();
  }
}

TEST(Bf16Reduce, GradReducerAveragesTheRoundedGradients) {
  if (test::kBatch % world().size()) GTEST_SKIP() << "needs a rank count dividing " << test::kBatch;
  HybridLM plain(test::tiny_model(DType::f32));
  backward_local(plain);
  const Tensor local = gathered_local_grads(plain.named_parameters());
  for (bool overlap : {false, true}) {
    SCOPED_TRACE(overlap ? "overlap" : "blocking");
    HybridLM m(test::tiny_model(DType::f32)), f32_model(test::tiny_model(DType::f32));
    DataParallelOptions o;
    o.bucket_bytes = 2048;  // several buckets
    o.overlap = overlap;
    o.reduce_dtype = DType::bf16;
    GradReducer reducer(world(), m.named_parameters(), o);
    reducer.arm();
    backward_local(m);
    const CommCounter before = world().stats().get("all_reduce");
    reducer.reduce();
    const CommCounter after = world().stats().get("all_reduce");
    expect_bf16_averages(m.named_parameters(), local, "GradReducer");
    // The wire really was bf16: the f32 reduce differs (by bf16 rounding, not more).
    GradReducer f32_reducer(world(), f32_model.named_parameters(), {2048});
    backward_local(f32_model);
    const CommCounter f32_before = world().stats().get("all_reduce");
    f32_reducer.reduce();
    const CommCounter f32_after = world().stats().get("all_reduce");
    double worst = 0;
    for (size_t i = 0; i < m.named_parameters().size(); ++i)
      worst = std::max(worst, test::rel_diff(m.named_parameters()[i].second.grad(),
                                             f32_model.named_parameters()[i].second.grad()));
    EXPECT_GT(worst, 0.0);
    EXPECT_LE(worst, 2 * world().size() * kUnitRoundoff);
    if (!overlap) {  // (overlap: the buckets go through a private communicator)
      // Half the bytes: the gradient all-reduces move 2 B an element; the presence vector is
      // the same i64 all-reduce in both.
      const int64_t bf16_sent = after.bytes_sent - before.bytes_sent;
      const int64_t f32_sent = f32_after.bytes_sent - f32_before.bytes_sent;
      const int64_t p = world().size(), np = static_cast<int64_t>(m.named_parameters().size());
      const int64_t presence = 2 * (p - 1) * ((np + p - 1) / p) * 8;
      EXPECT_EQ(2 * (bf16_sent - presence), f32_sent - presence);
    }
  }
}

TEST(Bf16Reduce, Zero1ShardsHoldTheSameBf16Averages) {
  if (test::kBatch % world().size()) GTEST_SKIP() << "needs a rank count dividing " << test::kBatch;
  HybridLM plain(test::tiny_model(DType::f32));
  backward_local(plain);
  const Tensor local = gathered_local_grads(plain.named_parameters());
  const NamedParams params = plain.named_parameters();
  for (bool overlap : {false, true}) {
    SCOPED_TRACE(overlap ? "overlap" : "blocking");
    HybridLM m(test::tiny_model(DType::f32));
    DataParallelOptions o;
    o.overlap = overlap;
    o.reduce_dtype = DType::bf16;
    Zero1AdamW zero(world(), m.named_parameters(), {}, o);
    zero.arm();
    backward_local(m);
    zero.reduce_grads();
    // The shard's pieces, in parameter order: piece j covers [max(lo, off_i), min(hi, end_i)).
    const int64_t lo = world().rank() * zero.shard_numel();
    int64_t off = 0;
    size_t j = 0;
    const NamedParams& pieces = zero.shard_optimizer().params();
    for (const auto& [name, t] : params) {
      const int64_t a = std::max(lo, off), b = std::min(lo + zero.shard_numel(), off + t.numel());
      if (a < b) {
        ASSERT_LT(j, pieces.size());
        ASSERT_EQ(pieces[j].first, name);
        const Tensor& g = pieces[j].second.grad();
        ASSERT_TRUE(g.defined()) << name;
        for (int64_t k = a; k < b; ++k) {
          const Expected e = bf16_average(local, k);
          ASSERT_LE(std::fabs(g.data<float>()[k - a] - e.value), e.bound) << name << " flat " << k;
        }
        ++j;
      }
      off += t.numel();
    }
    EXPECT_EQ(j, pieces.size());
  }
}

TEST(Bf16Reduce, NonF32ParametersAreAnErrorNamingTheKey) {
  HybridLM m(test::tiny_model(DType::f64));
  DataParallelOptions o;
  o.reduce_dtype = DType::bf16;
  for (int who = 0; who < 2; ++who) {
    try {
      if (who == 0) {
        GradReducer r(world(), m.named_parameters(), o);
      } else {
        Zero1AdamW z(world(), m.named_parameters(), {}, o);
      }
      ADD_FAILURE() << "no error for bf16 reduce of f64 parameters";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("parallel.grad_reduce_dtype=bf16 rounds f32 gradients"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace skein
