// test_staged_comm.cpp — StagedComm (the device-tensor communicator over MPI, for ranks that
// share a GPU), tested through its cpu staging path: every collective and point-to-point call
// gives the direct MPI result, a non-blocking result appears only when its request completes,
// split works, and a HybridLM on a grid built over a StagedComm world (LASP-2 + Ring, gradient
// buckets overlapped) has the loss and gradients of the same grid over plain MPI (f64, to 1e-13:
// bit-equal on 2 ranks; on 4 Open MPI may sum in another order on another communicator).
// The GPU path (device copies) is UNVERIFIED: no GPU was available.
#include <gtest/gtest.h>
#include <cmath>
#include "helpers.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "parallel/data_parallel.h"
#include "parallel/distributed_optimizer.h"
#include "parallel/model_parallel.h"
#include "parallel/staged_comm.h"

namespace skein {
namespace {

using test::world;

std::unique_ptr<StagedComm> staged_world() { return std::make_unique<StagedComm>(world().split(0, world().rank()), Device::cpu); }

TEST(StagedComm, CollectivesAndMessagesEqualMpi) {
  auto s = staged_world();
  const int p = s->size(), r = s->rank();
  EXPECT_EQ(r, world().rank());
  Tensor t = full({4}, r + 1.0, DType::f64);
  Request req = s->iall_reduce(t);
  EXPECT_EQ(t.at({0}), r + 1.0);  // staged: written back only when the request completes
  req.wait();
  EXPECT_EQ(t.at({3}), p * (p + 1) / 2.0);
  Tensor g = s->all_gather(full({2}, r, DType::f32));
  for (int q = 0; q < p; ++q) EXPECT_EQ(g.at({q, 1}), q);
  Tensor rs = zeros({3}, DType::f32);
  s->reduce_scatter_into(full({3 * p}, 2.0, DType::f32), rs);
  EXPECT_EQ(rs.at({2}), 2.0 * p);
  Tensor red = full({2}, -1.0, DType::f64);
  s->ireduce_into(full({2}, 1.0, DType::f64), red, p - 1).wait();
  EXPECT_EQ(red.at({0}), r == p - 1 ? p : -1.0);  // only the root's output written
  Tensor b = full({3}, r, DType::i64);
  s->broadcast(b, p - 1);
  EXPECT_EQ(b.at({2}), p - 1);
  Tensor in = zeros({2}, DType::f32);
  s->sendrecv(full({2}, r, DType::f32), (r + 1) % p, in, (r + p - 1) % p);
  EXPECT_EQ(in.at({1}), (r + p - 1) % p);
  Tensor got = zeros({2}, DType::f32);
  Request rq = s->irecv(got, (r + p - 1) % p, 7);
  s->isend(full({2}, 10.0 + r, DType::f32), (r + 1) % p, 7).wait();
  rq.wait();
  EXPECT_EQ(got.at({0}), 10.0 + (r + p - 1) % p);
  auto half = s->split(r % 2, r);
  EXPECT_STREQ(half->backend_name(), "staged");
  EXPECT_EQ(half->size(), (p + 1 - r % 2) / 2);
  half->barrier();
}

// Loss and gradients of one training step's forward and backward on `grid` (every rank the
// same tokens, sliced by sp; dp rows), with overlapped buckets.
struct StepResult {
  double loss = 0;
  std::vector<Tensor> grads;
};
StepResult grid_step(Communicator& w, int dp, int sp) {
  ModelConfig c;
  c.vocab_size = 30;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_layers = 2;
  c.layer_pattern = "LS";
  c.linear_variant = "decay";
  c.mlp_hidden = 24;
  c.chunk_size = 4;
  c.dtype = DType::f64;
  ProcessGrid grid(w, dp, sp, 1);
  Lasp2Options lo;
  lo.overlap = true;
  HybridLM model(c, std::make_shared<CommModelParallel>(grid, "ring", lo));
  const int64_t B = 2, T = 16, rows = B / dp, cols = T / sp;
  std::vector<double> ids, tgt;
  for (int64_t i = 0; i < B * T; ++i) {
    ids.push_back(static_cast<double>((i * 7 + 3) % 30));
    tgt.push_back(static_cast<double>((i * 5 + 1) % 30));
  }
  auto slice = [&](const std::vector<double>& v) {
    return from_vector(v, {B, T}, DType::i64).narrow(0, grid.dp_rank() * rows, rows).narrow(1, grid.sp_rank() * cols, cols).contiguous();
  };
  DataParallelOptions dpo;
  dpo.overlap = true;
  dpo.bucket_bytes = 2048;
  DistributedOptimizer opt(grid, model.named_parameters(), model.tp_splits(), std::make_unique<AdamW>(model.named_parameters()),
                           false, {}, dpo);
  opt.arm();
  LossParts l = model.loss(slice(ids), slice(tgt));
  l.lm.backward();
  opt.reduce();
  StepResult out{l.lm.item(), {}};
  for (const auto& [name, p] : model.named_parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

TEST(StagedComm, GridStepEqualsPlainMpi) {
  const int p = world().size();
  if (p != 2 && p != 4) GTEST_SKIP() << "needs 2 or 4 ranks";
  for (auto [dp, sp] : {std::pair{1, p}, std::pair{2, p / 2}}) {
    SCOPED_TRACE(testing::Message() << "dp" << dp << " sp" << sp);
    auto s = staged_world();
    const StepResult direct = grid_step(world(), dp, sp), staged = grid_step(*s, dp, sp);
    const double tol = p == 2 ? 0.0 : 1e-13;
    EXPECT_LE(std::fabs(staged.loss - direct.loss), tol * std::fabs(direct.loss));
    ASSERT_EQ(staged.grads.size(), direct.grads.size());
    for (size_t i = 0; i < direct.grads.size(); ++i) EXPECT_LE(test::rel_diff(staged.grads[i], direct.grads[i]), tol) << i;
  }
}

}  // namespace
}  // namespace skein
