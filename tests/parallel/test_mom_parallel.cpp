// test_mom_parallel.cpp — MoM under sequence parallelism (every memory's recurrence through
// LASP-2, all of them in one all-gather: lasp2_segments), tensor parallelism (heads split)
// and data parallelism, against one process on the whole global batch: a MoM layer (the
// gated_delta, delta, decay and plain memories, shared memory on and off) and the models "M"
// and "LM" — output, aux loss, loss and EVERY parameter gradient; a routing where some
// memories get no tokens on some ranks; the layer's gather bytes independent of T; and
// lasp2_segments against the single-process ops, empty pieces included.
// Every rank builds the same full inputs (fixed seeds), runs the reference, then its own
// block through the parallel model; the gradients of the dp x sp ranks are summed (each
// holds the part through its own tokens) and compared with its tp shard of the reference's.
#include <gtest/gtest.h>
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "core/ops.h"
#include "helpers.h"
#include "layers/model.h"
#include "layers/mom.h"
#include "parallel/collective_ops.h"
#include "parallel/conv_halo.h"
#include "parallel/grid.h"
#include "parallel/lasp2.h"
#include "parallel/vocab_parallel.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

// The ModelParallel hooks over a grid's communicators: Megatron f / g and the vocabulary-
// parallel cross-entropy on tp, LASP-2 and the short convs' halo on sp, batch_sum on dp x sp.
class GridParallel final : public ModelParallel {
 public:
  explicit GridParallel(const ProcessGrid& g)
      : ModelParallel(g.tp_rank(), g.tp(), g.sp_rank(), g.sp()), grid_(g) {}
  Tensor tp_copy(const Tensor& x) const override { return identity_allreduce_backward_op(grid_.tp_comm(), x); }
  Tensor tp_sum(const Tensor& x) const override { return all_reduce_op(grid_.tp_comm(), x); }
  Tensor vocab_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_start, int64_t vocab_size,
                             int64_t ignore_index) const override {
    return vocab_parallel_cross_entropy(grid_.tp_comm(), logits, targets, vocab_start, vocab_size, ignore_index);
  }
  LinearAttentionResult linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_gate,
                                         const Tensor& init, double scale, int64_t chunk) const override {
    SKEIN_CHECK(!init.defined(), "GridParallel::linear_attention: no initial state under sp");
    return lasp2_linear_attention(grid_.sp_comm(), q, k, v, log_gate, scale, chunk);
  }
  LinearAttentionResult delta_rule(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                   const Tensor& log_alpha, const Tensor& init, double scale,
                                   int64_t chunk) const override {
    SKEIN_CHECK(!init.defined(), "GridParallel::delta_rule: no initial state under sp");
    return lasp2_delta_rule(grid_.sp_comm(), q, k, v, beta, log_alpha, scale, chunk);
  }
  std::vector<LinearAttentionResult> segment_recurrences(const std::vector<Recurrence>& segments, double scale,
                                                         int64_t chunk) const override {
    return lasp2_segments(grid_.sp_comm(), segments, scale, chunk);
  }
  std::vector<Tensor> conv_prefixes(const std::vector<Tensor>& xs, int64_t width) const override {
    return conv_halo(grid_.sp_comm(), xs, width);  // the short convs' halo (MoM's default)
  }
  Tensor batch_sum(const Tensor& x) const override { return all_reduce_op(grid_.dp_sp_comm(), x); }

 private:
  const ProcessGrid& grid_;
};

struct Layout {
  int dp, sp, tp;
};
// The (dp, sp, tp) splits of the world tested here.
std::vector<Layout> layouts() {
  if (world().size() == 2) return {{1, 2, 1}, {1, 1, 2}, {2, 1, 1}};
  if (world().size() == 4) return {{1, 4, 1}, {1, 2, 2}, {2, 2, 1}, {1, 1, 4}};
  return {{1, world().size(), 1}};
}
std::string layout_name(const Layout& l) {
  return "dp" + std::to_string(l.dp) + " sp" + std::to_string(l.sp) + " tp" + std::to_string(l.tp);
}

constexpr int64_t kB = 2, kT = 12;  // the global batch: 2 sequences of 12 tokens

ModelConfig mom_config(const std::string& variant, bool shared, DType dt) {
  ModelConfig c;
  c.vocab_size = 24;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_layers = 1;
  c.mlp_hidden = 16;
  c.layer_pattern = "M";
  c.mom_memories = 4;
  c.mom_topk = 2;
  c.mom_shared_memory = shared;
  c.mom_variant = variant;
  c.mom_aux_loss_scale = 0.5;  // visible in the gradients
  c.linear_output_gate = true;
  c.chunk_size = 2;            // chunk, rank and segment boundaries do not line up
  c.init_std = 0.3;
  c.dtype = dt;
  return c;
}

// This rank's block of a [B, T, ...] tensor: its dp rank's sequences, its sp rank's slice.
Tensor local(const Tensor& t, const ProcessGrid& g) {
  const int64_t b = t.size(0) / g.dp(), n = t.size(1) / g.sp();
  return t.narrow(0, g.dp_rank() * b, b).narrow(1, g.sp_rank() * n, n).contiguous();
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to(DType::f64).contiguous().to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// Every parameter's gradient summed over dp x sp (times `weight`) against this rank's tp
// shard of the reference's. Collective: no ASSERTs.
void expect_gradients(const Module& mine, const Module& ref, const ProcessGrid& g, double weight, double tol) {
  const std::map<std::string, Tensor> want_all = ref.state_dict();
  const std::map<std::string, TpSplit> splits = mine.tp_splits();
  EXPECT_EQ(mine.named_parameters().size(), want_all.size());
  for (const auto& [name, p] : mine.named_parameters()) {
    Tensor grad = p.grad().defined() ? p.grad().contiguous().clone() : zeros_like(p);
    g.dp_sp_comm().all_reduce(grad);
    mul_(grad, weight);
    const Tensor& ref_p = want_all.at(name);
    const Tensor full = ref_p.grad().defined() ? ref_p.grad() : zeros_like(ref_p);
    Tensor want = tp_shard(full, splits.at(name), g.tp_rank(), g.tp());
    // Relative to the largest entry of the WHOLE gradient: a one-head shard of A_log may hold
    // only small entries, where f32 rounding alone is ~1e-5 of the shard's own maximum.
    const double shard_max = max_abs(want), full_max = max_abs(full);
    EXPECT_LT(full_max > 0 ? rel_diff(grad, want) * shard_max / full_max : rel_diff(grad, want), tol) << name;
  }
}

// Inputs [kB, kT, d]; `forced`: x[.., 0] = -3 in the first half of each sequence and
// x[.., 3] = -3 in the second, for a router whose logit m is 4 x[m]: memory 0 then gets no
// token from the first half, memory 3 none from the second.
Tensor layer_input(int64_t d, DType dt, bool forced) {
  Tensor x = randn({kB, kT, d}, 41, DType::f64);
  if (!forced) return x.to(dt);
  std::vector<double> v = x.to_vector();
  for (int64_t r = 0; r < kB * kT; ++r) v[r * d + (r % kT < kT / 2 ? 0 : 3)] = -3.0;
  return from_vector(v, {kB, kT, d}, dt);
}

void force_router(MoM& m) {
  Tensor w = zeros(m.router->weight.shape(), m.router->weight.dtype());
  for (int64_t j = 0; j < m.n_memories; ++j) w.data<double>()[j * w.size(1) + j] = 4.0;
  copy_(m.router->weight, w);
}

// One MoM layer: loss = Σ out ⊙ w_out + aux_scale * aux on the reference; each rank's loss is
// its tokens' share of the first term plus the whole second (its gradient is the rank's part).
void check_layer(const ProcessGrid& g, const ModelConfig& c, double tol, bool forced = false) {
  SCOPED_TRACE(c.mom_variant + (c.mom_shared_memory ? " shared" : "") + " " + dtype_name(c.dtype) +
               (forced ? " forced routing" : ""));
  Generator g_ref(7);
  MoM ref(c, g_ref, 0.1);
  Tensor x = layer_input(c.d_model, c.dtype, forced).requires_grad_();
  Tensor w_out = randn({kB, kT, c.d_model}, 42, c.dtype);
  if (forced) force_router(ref);
  Tensor ref_out = ref.forward(x, nullptr);
  Tensor ref_aux = mom_aux_loss({&ref});
  add(sum(mul(ref_out, w_out)), mul(ref_aux, c.mom_aux_loss_scale)).backward();

  GridParallel par(g);
  Generator g_mine(7);
  MoM mine(c, g_mine, 0.1, &par);
  if (forced) force_router(mine);
  Tensor xl = local(x.detach(), g).requires_grad_();
  Tensor out = mine.forward(xl, nullptr);
  Tensor aux = mom_aux_loss({&mine});
  add(sum(mul(out, local(w_out, g))), mul(aux, c.mom_aux_loss_scale)).backward();

  EXPECT_LT(rel_diff(out, local(ref_out.detach(), g)), tol) << "out";
  EXPECT_LT(rel_diff(aux, ref_aux), tol) << "aux";
  EXPECT_LT(rel_diff(xl.grad(), local(x.grad(), g)), tol) << "dx";
  expect_gradients(mine, ref, g, 1.0, tol);
  if (forced && g.sp() > 1) {  // the case the routing was made for: empty memories on this rank
    const int64_t M = c.mom_memories;
    const bool first_half = g.sp_rank() < g.sp() / 2;
    for (int64_t b = 0; b < kB / g.dp(); ++b) {
      EXPECT_TRUE(mine.last_segments[b * M + (first_half ? 0 : 3)].empty()) << "batch " << b;
      EXPECT_FALSE(mine.last_segments[b * M + (first_half ? 3 : 0)].empty()) << "batch " << b;
    }
  }
}

TEST(MomParallel, LayerMatchesOneProcessF64) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(layout_name(l));
    ProcessGrid g(world(), l.dp, l.sp, l.tp);
    for (const char* variant : {"gated_delta", "delta", "decay", "plain"})
      for (bool shared : {true, false}) check_layer(g, mom_config(variant, shared, DType::f64), 1e-10);
  }
}

TEST(MomParallel, LayerMatchesOneProcessF32) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(layout_name(l));
    ProcessGrid g(world(), l.dp, l.sp, l.tp);
    check_layer(g, mom_config("gated_delta", true, DType::f32), 1e-5);
    check_layer(g, mom_config("decay", false, DType::f32), 1e-5);
  }
}

// Memory 0 gets no token on the first half of the sp ranks, memory 3 none on the second:
// their segments are empty there (state 0, identity transition) and the result stays exact.
TEST(MomParallel, MemoriesWithoutTokensOnSomeRanks) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(layout_name(l));
    ProcessGrid g(world(), l.dp, l.sp, l.tp);
    for (const char* variant : {"gated_delta", "decay"})
      check_layer(g, mom_config(variant, true, DType::f64), 1e-10, /*forced=*/true);
  }
}

// The whole model: HybridLM on this rank's block, every rank backpropagating
// c_r * lm + W * aux_scale * aux (mom.h; c_r = 1: every target counts and blocks are equal),
// gradients averaged over the W = dp * sp ranks — equal to one process on the global batch.
void check_model(const ProcessGrid& g, const ModelConfig& c, double tol) {
  SCOPED_TRACE(c.layer_pattern + " " + c.mom_variant + " " + dtype_name(c.dtype));
  std::vector<double> ids_v, tgt_v;
  for (int64_t i = 0; i < kB * kT; ++i) {
    ids_v.push_back(static_cast<double>((i * 7 + 3) % c.vocab_size));
    tgt_v.push_back(static_cast<double>((i * 5 + 1) % c.vocab_size));
  }
  const Tensor ids = from_vector(ids_v, {kB, kT}, DType::i64), tgt = from_vector(tgt_v, {kB, kT}, DType::i64);
  HybridLM ref(c);
  LossParts want = ref.loss(ids, tgt);
  want.total.backward();

  const double W = g.dp() * g.sp();
  HybridLM mine(c, std::make_shared<GridParallel>(g));
  LossParts got = mine.loss(local(ids, g), local(tgt, g));
  add(got.lm, mul(got.aux, W * c.mom_aux_loss_scale)).backward();
  Tensor lm_sum = got.lm.detach().contiguous().clone();
  g.dp_sp_comm().all_reduce(lm_sum);
  EXPECT_LT(rel_diff(mul(lm_sum, 1.0 / W), want.lm), tol) << "lm";
  EXPECT_LT(rel_diff(got.aux, want.aux), tol) << "aux";
  expect_gradients(mine, ref, g, 1.0 / W, tol);
}

TEST(MomParallel, ModelMatchesOneProcess) {
  for (const Layout& l : layouts()) {
    SCOPED_TRACE(layout_name(l));
    ProcessGrid g(world(), l.dp, l.sp, l.tp);
    ModelConfig m = mom_config("gated_delta", true, DType::f64);
    check_model(g, m, 1e-10);
    ModelConfig lm = mom_config("delta", false, DType::f64);
    lm.layer_pattern = "LM";
    lm.n_layers = 2;
    lm.linear_variant = "gated_delta";
    check_model(g, lm, 1e-10);
    lm.mom_variant = "plain";
    lm.linear_variant = "decay";
    check_model(g, lm, 1e-10);
    // f32: "M" with test_tensor_parallel's init scale. (In "LM" the one-process f32 run is
    // itself ~1e-5 from the f64 truth on some memories' k_proj gradients: below the noise
    // floor of this check, so "LM" is checked in f64 above.)
    m.dtype = DType::f32;
    m.init_std = 0.1;
    check_model(g, m, 1e-5);
  }
}

// One forward of a MoM layer moves exactly one all-gather over sp: every (batch, memory)
// segment's [state | transition] and the shared memory's, whatever T is.
TEST(MomParallel, GatherBytesIndependentOfT) {
  const int W = world().size();
  ProcessGrid g(world(), 1, W, 1);
  GridParallel par(g);
  for (bool conv : {false, true}) {
  ModelConfig c = mom_config("gated_delta", true, DType::f64);
  c.short_conv = conv ? "true" : "false";
  const int64_t M = c.mom_memories, H = c.n_heads, hd = c.head_dim(), K = c.conv_size;
  // delta rule: P = Dk; (batch, memory) segments have B = 1, the shared memory B = kB.
  const int64_t lasp2 = (W - 1) * (kB * M + kB) * H * hd * (hd + hd) * 8;
  // the short convs' halo: K-1 rows of q, k, v of every segment, plus each piece's length
  const int64_t streams = 3 * (kB * M + 1), halo = (W - 1) * (3 * (kB * M + kB) * (K - 1) * H * hd + streams) * 8;
  const int64_t want = lasp2 + (conv ? halo : 0);
  SCOPED_TRACE(conv ? "short conv" : "no conv");
  for (int64_t T : {kT, 2 * kT}) {
    Generator gen(7);
    MoM mom(c, gen, 0.1, &par);
    Tensor x = randn({kB, T / W, c.d_model}, 43 + g.sp_rank(), DType::f64);
    g.sp_comm().stats().reset();
    Tensor out = mom.forward(x, nullptr);
    const CommStats fwd = g.sp_comm().stats();
    sum(out).backward();
    EXPECT_EQ(fwd.get("all_gather").calls, conv ? 2 : 1) << "T=" << T;
    EXPECT_EQ(fwd.total_sent(), want) << "T=" << T << ": " << fwd.str();
    EXPECT_EQ(g.sp_comm().stats().get("reduce_scatter").bytes_sent, want) << "T=" << T;
  }
  }
}

// lasp2_segments on its own: three segments of different kinds, one empty on some ranks,
// against the core ops on each whole segment (out pieces, final states, input gradients).
TEST(MomParallel, Lasp2SegmentsMatchWholeSegments) {
  const int W = world().size(), r = world().rank();
  const int64_t H = 2, D = 4;
  const DType dt = DType::f64;
  // Piece lengths per rank: segment 0 has 3 on every rank, segment 1 is empty on even ranks,
  // segment 2 has r + 1.
  auto len = [&](int i, int q) -> int64_t { return i == 0 ? 3 : i == 1 ? (q % 2 ? 2 : 0) : q + 1; };
  auto start = [&](int i, int q) {
    int64_t s = 0;
    for (int j = 0; j < q; ++j) s += len(i, j);
    return s;
  };
  std::vector<Recurrence> whole(3), pieces(3);
  std::vector<std::vector<Tensor>> leaves(3);
  std::vector<LinearAttentionResult> ref(3);
  Tensor ref_loss;
  for (int i = 0; i < 3; ++i) {
    const int64_t T = start(i, W);
    const uint64_t s = 60 + 10 * i;
    Recurrence& w = whole[i];
    w.q = randn({1, H, T, D}, s, dt);
    w.k = l2_normalize(randn({1, H, T, D}, s + 1, dt));
    w.v = randn({1, H, T, D}, s + 2, dt);
    if (i == 0) w.gate = uniform({1, H, T, D}, s + 3, -0.3, 0.0, dt);  // GLA
    if (i >= 1) w.beta = uniform({1, H, T}, s + 4, 0.1, 0.9, dt);     // delta rule
    if (i == 2) w.gate = uniform({1, H, T}, s + 5, -0.3, 0.0, dt);     // gated
    for (Tensor* t : {&w.q, &w.k, &w.v, &w.beta, &w.gate})
      if (t->defined()) *t = t->detach().clone().requires_grad_();
    ref[i] = run_recurrence(w, 0.5, 2);
    Tensor term = add(sum(mul(ref[i].out, randn(ref[i].out.shape(), s + 6, dt))),
                      sum(mul(ref[i].final_state, randn({1, H, D, D}, s + 7, dt))));
    ref_loss = ref_loss.defined() ? add(ref_loss, term) : term;
    Recurrence& p = pieces[i];
    auto cut = [&](const Tensor& t) {
      if (!t.defined()) return t;
      Tensor c = t.detach().narrow(2, start(i, r), len(i, r)).contiguous().requires_grad_();
      leaves[i].push_back(c);
      return c;
    };
    p = {cut(w.q), cut(w.k), cut(w.v), cut(w.beta), cut(w.gate), Tensor()};
  }
  ref_loss.backward();
  std::vector<LinearAttentionResult> got = lasp2_segments(world(), pieces, 0.5, 2);
  Tensor loss;
  for (int i = 0; i < 3; ++i) {  // the final-state term is split evenly over the ranks
    const int64_t T = start(i, W);
    Tensor w_out = randn({1, H, T, D}, 60 + 10 * i + 6, dt).narrow(2, start(i, r), len(i, r));
    Tensor term = add(sum(mul(got[i].out, w_out)),
                      mul(sum(mul(got[i].final_state, randn({1, H, D, D}, 60 + 10 * i + 7, dt))), 1.0 / W));
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("segment " + std::to_string(i));
    EXPECT_EQ(got[i].out.shape(), (Shape{1, H, len(i, r), D}));
    if (len(i, r) > 0) {
      EXPECT_LT(rel_diff(got[i].out, ref[i].out.narrow(2, start(i, r), len(i, r)).contiguous()), 1e-10);
    }
    EXPECT_LT(rel_diff(got[i].final_state, ref[i].final_state), 1e-10);
    size_t li = 0;
    for (Tensor* t : {&whole[i].q, &whole[i].k, &whole[i].v, &whole[i].beta, &whole[i].gate}) {
      if (!t->defined()) continue;
      const Tensor& mine = leaves[i][li++];
      if (len(i, r) == 0) continue;
      Tensor want = t->grad().narrow(2, start(i, r), len(i, r)).contiguous();
      EXPECT_LT(rel_diff(mine.grad().defined() ? mine.grad() : zeros_like(want), want), 1e-10) << "input " << li;
    }
  }
}

}  // namespace
}  // namespace skein
