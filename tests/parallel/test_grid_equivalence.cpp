// test_grid_equivalence.cpp — every parallel mode equals one process: for each grid that fits
// the world (dp2, tp2, sp2 with Ring (zigzag) and with LASP-2H; sp4, dp2×sp2, tp2×sp2,
// dp2×tp2 on 4 ranks) a HybridLM built on that grid takes one training step's forward and
// backward on its part of a global batch — the trainer's recipe: dp rows, sp slice of every
// sequence, tp shard of the model, loss weighted by the global token count, gradients averaged
// over dp × sp (DistributedOptimizer) — and its loss and EVERY parameter gradient (a sharded
// one: its slice) equal the one-process model's on the whole batch. Models: LLLS with each
// linear variant, and MS (MoM + softmax). Ignored targets are spread unevenly. The same under
// train.precision=bf16-mixed, with gradients reduced in f32 and in bf16 (GridEquivalenceBf16).
#include <gtest/gtest.h>
#include <cmath>
#include "helpers.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "core/precision.h"
#include "optim/clip.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/lasp2.h"
#include "parallel/model_parallel.h"

namespace skein {
namespace {

using test::rel_diff;
using test::world;

constexpr int64_t kB = 4, kT = 16, kV = 30;  // vocab not a multiple of tp: padded

ModelConfig grid_model(const std::string& pattern, const std::string& variant, DType dt) {
  ModelConfig c;
  c.vocab_size = kV;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.layer_pattern = pattern;
  c.linear_variant = variant;
  c.mlp_hidden = 24;
  c.chunk_size = 4;
  c.mom_memories = 3;
  c.mom_topk = 2;
  c.dtype = dt;
  return c;
}

struct GlobalBatch {
  Tensor ids, targets;  // [kB, kT]
};

GlobalBatch make_batch() {
  const int64_t ignored[kB] = {0, 5, 9, 2};
  std::vector<double> ids, tgt;
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t t = 0; t < kT; ++t) {
      ids.push_back(static_cast<double>((b * 31 + t * 7 + 3) % kV));
      tgt.push_back(t < ignored[b] ? -100.0 : static_cast<double>((b * 13 + t * 5 + 1) % kV));
    }
  return {from_vector(ids, {kB, kT}, DType::i64), from_vector(tgt, {kB, kT}, DType::i64)};
}

// This rank's share of the global batch: its rows (dp) and its slice of each sequence (sp).
GlobalBatch rank_share(const GlobalBatch& g, const ProcessGrid& grid) {
  const int64_t rows = kB / grid.dp(), cols = kT / grid.sp();
  auto cut = [&](const Tensor& t) {
    return t.narrow(0, grid.dp_rank() * rows, rows).narrow(1, grid.sp_rank() * cols, cols).contiguous();
  };
  return {cut(g.ids), cut(g.targets)};
}

struct GridCase {
  int dp, sp, tp;
  std::string softmax_sp;
};

// ||a - b||_2 / ||b||_2 (0 when both are zero). f64 is the exactness proof (max-abs relative,
// 1e-10). In f32 a few small parameters (the delta rule's beta projection, gated DeltaNet's
// per-head A_log and dt_bias: sums of many cancelling terms) carry rounding noise near 1e-5
// in the one-process f32 run itself, so the f32 check measures both runs against the f64
// truth (the same parameters in f64) and asks the parallel run's L2 error to be within 1e-5,
// or within 3x the one-process f32 run's own error where that is larger (gated DeltaNet: the
// one-process f32 run is 2-3e-5 off on A_log / dt_bias; the parallel runs 2-7e-5: the same
// rounding, summed in another order — f64 shows both are the same function to 1e-10).
double l2_rel(const Tensor& a, const Tensor& b) {
  const Tensor d = sub(a.to(DType::f64), b.to(DType::f64)), b64 = b.to(DType::f64);
  const double num = std::sqrt(sum(mul(d, d)).item());
  const double den = std::sqrt(sum(mul(b64, b64)).item());
  return den == 0 ? num : num / den;
}

// The one-process loss (lm + aux as the trainer weighs it) and gradients.
double one_process(HybridLM& m, const GlobalBatch& g) {
  LossParts l = m.loss(g.ids, g.targets);
  Tensor total = l.aux.defined() ? add(l.lm, mul(l.aux, m.cfg.mom_aux_loss_scale)) : l.lm;
  total.backward();
  return l.lm.item();
}

// recompute / fused_head: the grid model's activation-memory settings (the one-process
// reference stays plain, so the check covers both at once).
void expect_grid_equals_one_process(const GridCase& gc, const std::string& pattern, const std::string& variant,
                                    DType dt, Recompute recompute = Recompute::none, bool fused_head = false,
                                    int64_t conv_size = 4, const std::string& short_conv = "auto",
                                    bool overlap = false) {
  SCOPED_TRACE(testing::Message() << pattern << " " << variant << " conv " << short_conv << "/" << conv_size << " dp"
                                  << gc.dp << " sp" << gc.sp << " tp" << gc.tp << " " << gc.softmax_sp << " "
                                  << dtype_name(dt) << " recompute " << static_cast<int>(recompute)
                                  << (fused_head ? " fused head" : "") << (overlap ? " overlap" : ""));
  const double tol = dt == DType::f64 ? 1e-10 : 1e-5;
  ModelConfig cfg = grid_model(pattern, variant, dt);
  cfg.conv_size = conv_size;
  cfg.short_conv = short_conv;
  const GlobalBatch g = make_batch();
  HybridLM ref(cfg);
  const double ref_loss = one_process(ref, g);
  const auto ref_params = ref.named_parameters();
  ModelConfig cfg64 = cfg;
  cfg64.dtype = DType::f64;
  HybridLM truth(cfg64);
  truth.load_state_dict(ref.state_dict());
  one_process(truth, g);
  const auto truth_params = truth.named_parameters();

  ProcessGrid grid(world(), gc.dp, gc.sp, gc.tp);
  Lasp2Options lasp2;
  lasp2.overlap = overlap;
  HybridLM model(cfg, std::make_shared<CommModelParallel>(grid, gc.softmax_sp, lasp2));
  model.set_recompute(recompute);
  model.fused_head = fused_head;
  const GlobalBatch mine = rank_share(g, grid);
  const Tensor &ids = mine.ids, &tgt = mine.targets;
  Communicator& group = grid.dp_sp_comm();
  const TokenScale ts = global_token_scale(group, count_targets(tgt));
  DataParallelOptions dpo;
  dpo.overlap = overlap;
  dpo.bucket_bytes = overlap ? 2048 : dpo.bucket_bytes;  // several buckets, launched during backward
  DistributedOptimizer opt(grid, model.named_parameters(), model.tp_splits(),
                           std::make_unique<AdamW>(model.named_parameters()), false, {}, dpo);
  opt.arm();
  LossParts l = model.loss(ids, tgt);
  Tensor total = mul(l.lm, ts.scale);
  if (l.aux.defined()) total = add(total, mul(l.aux, cfg.mom_aux_loss_scale * group.size()));
  total.backward();
  opt.reduce();
  const double loss = global_mean_loss(group, ts.local ? l.lm.item() : 0.0, ts.local);
  EXPECT_LE(std::fabs(loss - ref_loss), tol * std::fabs(ref_loss)) << loss << " vs " << ref_loss;

  const auto params = model.named_parameters();
  const auto splits = model.tp_splits();
  ASSERT_EQ(params.size(), ref_params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].first;
    ASSERT_EQ(name, ref_params[i].first);
    const Tensor& full = ref_params[i].second.grad();
    ASSERT_TRUE(full.defined()) << name;
    ASSERT_TRUE(params[i].second.grad().defined()) << name;
    const Tensor expect = tp_shard(full, splits.at(name), grid.tp_rank(), grid.tp());
    const Tensor& got = params[i].second.grad();
    if (dt == DType::f64) {
      EXPECT_LE(rel_diff(got, expect), tol) << name;
    } else {
      const Tensor exact = tp_shard(truth_params[i].second.grad(), splits.at(name), grid.tp_rank(), grid.tp());
      const double floor = l2_rel(expect, exact);  // the one-process f32 run's own error on this shard
      EXPECT_LE(l2_rel(got, exact), std::max(tol, 3 * floor)) << name << " (one-process f32 error " << floor << ")";
    }
  }
  // The clipped norm is the one-process norm (replicated parameters counted once).
  const double norm = opt.clip(1e300);
  const double ref_norm = std::sqrt(grad_squared_norm(ref.parameters()));
  EXPECT_LE(std::fabs(norm - ref_norm), tol * ref_norm) << norm << " vs " << ref_norm;
}

std::vector<GridCase> grids_for_world() {
  if (world().size() == 2)
    return {{2, 1, 1, "ring"}, {1, 1, 2, "ring"}, {1, 2, 1, "ring"}, {1, 2, 1, "lasp2h"}};
  if (world().size() == 4)
    return {{1, 4, 1, "ring"}, {1, 4, 1, "lasp2h"}, {2, 2, 1, "ring"}, {1, 2, 2, "ring"}, {2, 1, 2, "lasp2h"}};
  return {};
}

class GridEquivalence : public testing::TestWithParam<std::string> {};

TEST_P(GridEquivalence, LLLSLossAndEveryGradientEqualOneProcess) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (DType dt : {DType::f64, DType::f32})
    for (const GridCase& gc : grids_for_world()) expect_grid_equals_one_process(gc, "LLLS", GetParam(), dt);
}

INSTANTIATE_TEST_SUITE_P(Variants, GridEquivalence,
                         testing::Values("plain", "decay", "gla", "delta", "gated_delta"));

TEST(GridEquivalenceMoM, MSLossAndEveryGradientEqualOneProcess) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (DType dt : {DType::f64, DType::f32})
    for (const GridCase& gc : grids_for_world()) expect_grid_equals_one_process(gc, "MS", "decay", dt);
}

// Activation recomputation re-runs each block (its tp / sp collectives included) inside
// backward; the fused LM head replaces the cross-entropy where tp is 1.
TEST(GridEquivalenceRecompute, FullAndMlpRecomputeWithTheFusedHeadEqualOneProcess) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (const GridCase& gc : grids_for_world()) {
    expect_grid_equals_one_process(gc, "LLLS", "gated_delta", DType::f64, Recompute::full, true);
    expect_grid_equals_one_process(gc, "MS", "decay", DType::f64, Recompute::full, true);
    expect_grid_equals_one_process(gc, "LLLS", "decay", DType::f32, Recompute::mlp, true);
  }
}

// Short convs (on by default for delta, gated_delta and MoM, so the tests above cover kernel
// 4) with kernel 8: on 4 sp ranks each slice (4 tokens) is shorter than the 7 carried inputs,
// which then come from two earlier ranks; MoM's memory token lists are cut unevenly (some
// pieces empty). f64: the exactness proof. Only the grid with every rank on sp (the
// shortest slices); the other grids run kernel 4 in the tests above.
TEST(GridEquivalenceShortConv, SlicesShorterThanTheKernel) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (const GridCase& gc : grids_for_world()) {
    if (gc.sp != world().size()) continue;  // the whole world on sp: the shortest slices (ring)
    if (gc.softmax_sp != "ring") continue;
    expect_grid_equals_one_process(gc, "LLLS", "gated_delta", DType::f64, Recompute::none, false, 8);
    expect_grid_equals_one_process(gc, "LS", "decay", DType::f64, Recompute::none, false, 8, "true");
    expect_grid_equals_one_process(gc, "MS", "gated_delta", DType::f64, Recompute::none, false, 8);
  }
}

// Overlap on (parallel.overlap): gradient buckets all-reduced from the backward hook on a
// private communicator, LASP-2's state all-gather in flight during the intra-slice passes
// (each piece from a zero state plus the incoming-state term). Every linear variant (the
// delta rules take the blocking LASP-2 path but the overlapped reduce), MoM, and the
// recomputed blocks (their parameters are reported only at reduce()).
TEST(GridEquivalenceOverlap, LossAndEveryGradientEqualOneProcess) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (const GridCase& gc : grids_for_world()) {
    if (world().size() == 4 && gc.tp == 2 && gc.sp == 2) continue;  // CI time: tp x sp is covered without overlap
    for (const char* variant : {"plain", "decay", "gla", "gated_delta"})
      expect_grid_equals_one_process(gc, "LLLS", variant, DType::f64, Recompute::none, false, 4, "auto", true);
    expect_grid_equals_one_process(gc, "MS", "decay", DType::f64, Recompute::none, false, 4, "auto", true);
    expect_grid_equals_one_process(gc, "LLLS", "gla", DType::f32, Recompute::none, false, 4, "auto", true);
    expect_grid_equals_one_process(gc, "LLLS", "decay", DType::f64, Recompute::full, true, 4, "auto", true);
  }
}

// train.precision=bf16-mixed (GEMM operands rounded to bf16, f32 accumulation; norms, mixers,
// loss, gradients f32) on each grid against one process in bf16-mixed: the loss and every
// gradient, with the gradients reduced in f32 and in bf16 (parallel.grad_reduce_dtype).
// Returns {the loss's relative difference, the worst gradient's L2 relative difference}.
std::pair<double, double> bf16_grid_vs_one_process(const GridCase& gc, const std::string& pattern,
                                                   const std::string& variant, DType reduce_dtype, double grad_tol) {
  const ModelConfig cfg = grid_model(pattern, variant, DType::f32);
  const GlobalBatch g = make_batch();
  HybridLM ref(cfg);
  ref.fused_head = gc.tp == 1;  // both models the trainer's way (the fused head's rows carry 1 / n unscaled)
  const double ref_loss = one_process(ref, g);
  const auto ref_params = ref.named_parameters();
  ProcessGrid grid(world(), gc.dp, gc.sp, gc.tp);
  HybridLM model(cfg, std::make_shared<CommModelParallel>(grid, gc.softmax_sp, Lasp2Options{}));
  model.fused_head = ref.fused_head;
  const GlobalBatch mine = rank_share(g, grid);
  const Tensor &ids = mine.ids, &tgt = mine.targets;
  Communicator& group = grid.dp_sp_comm();
  const TokenScale ts = global_token_scale(group, count_targets(tgt));
  DataParallelOptions dpo;
  dpo.reduce_dtype = reduce_dtype;
  DistributedOptimizer opt(grid, model.named_parameters(), model.tp_splits(),
                           std::make_unique<AdamW>(model.named_parameters()), false, {}, dpo);
  LossParts l = model.loss(ids, tgt);
  mul(l.lm, ts.scale).backward();
  opt.reduce();
  const double loss = global_mean_loss(group, ts.local ? l.lm.item() : 0.0, ts.local);
  double worst = 0;
  const auto params = model.named_parameters();
  const auto splits = model.tp_splits();
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor expect = tp_shard(ref_params[i].second.grad(), splits.at(params[i].first), grid.tp_rank(), grid.tp());
    const double d = l2_rel(params[i].second.grad(), expect);
    EXPECT_LE(d, grad_tol) << params[i].first;
    worst = std::max(worst, d);
  }
  return {std::fabs(loss - ref_loss) / std::fabs(ref_loss), worst};
}

// Tolerances (u = 2^-8, bf16's unit roundoff). The loss (a forward): 1e-5 as in f32 — rounding
// to bf16 is elementwise and every grid hands each GEMM the same f32 operands up to f32
// summation order (LASP-2's cross-slice state GEMMs stay f32, matmul_f32, as the one-process
// kernels keep them; the fused head rounds softmax - onehot before any per-rank 1 / n_r).
// Measured on 2 and 4 ranks with AMX: <= 7e-8. Gradients, f32 reduce: 1e-4. A rounding that
// sits on a bf16 boundary can flip under that f32 noise (one u-sized step of one operand
// element): the softmax layer's v_proj under Ring reaches 4.8e-6, most gradients stay below
// 5e-7; a rounding that is NOT the one process's (LASP-2's states in bf16, or 1 / n_r folded
// in before rounding) puts every gradient at 5e-3 to 9e-3. Gradients, bf16 reduce: element i
// of the average (1/q) Σ_r x_r gets each rank's operand rounded (<= u |x_r|) and each of the
// q - 1 partial sums of k operands rounded (<= u k |avg| when the ranks' gradients agree in
// sign): <= u (1 + (q (q + 1) / 2 - 1) / q) |avg| — 2u for a group of 2, 3.25u for 4
// (measured: 3.2e-3 and 4.8e-3; without the widening back to f32: 0.84).
TEST(GridEquivalenceBf16, LossAndEveryGradientEqualOneProcess) {
  if (grids_for_world().empty()) GTEST_SKIP() << "needs 2 or 4 ranks";
  const PrecisionScope scope(Precision::bf16_mixed);
  const bool root = world().rank() == 0;
  if (root && !scope.note().empty()) std::printf("%s: the f32-reduce cases are f32 tests here\n", scope.note().c_str());
  const double u = 1.0 / 256;
  for (const GridCase& gc : grids_for_world())
    for (DType rd : {DType::f32, DType::bf16}) {
      if (rd == DType::bf16 && gc.dp * gc.sp == 1) continue;  // nothing is reduced
      SCOPED_TRACE(testing::Message() << "dp" << gc.dp << " sp" << gc.sp << " tp" << gc.tp << " " << gc.softmax_sp
                                      << " reduce " << dtype_name(rd));
      const double q = gc.dp * gc.sp;  // the group the gradients are averaged over
      const double grad_tol = rd == DType::f32 ? 1e-4 : u * (1 + (q * (q + 1) / 2 - 1) / q);
      const auto [dl, dg] = bf16_grid_vs_one_process(gc, "LLLS", "gla", rd, grad_tol);
      EXPECT_LE(dl, 1e-5);
      if (root)
        std::printf("%s, dp%d sp%d tp%d %s, gradients reduced in %s: loss %.1e, worst gradient %.1e "
                    "(bound %.1e)\n", PrecisionPolicy::current().describe().c_str(), gc.dp, gc.sp, gc.tp,
                    gc.softmax_sp.c_str(), dtype_name(rd), dl, dg, grad_tol);
    }
}

}  // namespace
}  // namespace skein
