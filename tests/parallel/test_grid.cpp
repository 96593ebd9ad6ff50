// test_grid.cpp — ProcessGrid on every factorisation of the world size: coordinates,
// rank_of, and collectives on each sub-communicator (tp, sp, dp, dp×sp) against the
// members the layout formula predicts; the bad-world-size and sequence-length errors; the
// threads-per-rank helper.
#include <gtest/gtest.h>
#include <tuple>
#include "core/ops.h"
#include "helpers.h"
#include "parallel/grid.h"

namespace skein {
namespace {

using test::world;

std::vector<std::tuple<int, int, int>> factorisations(int n) {
  std::vector<std::tuple<int, int, int>> out;
  for (int dp = 1; dp <= n; ++dp)
    for (int sp = 1; dp * sp <= n; ++sp)
      if (n % (dp * sp) == 0) out.emplace_back(dp, sp, n / (dp * sp));
  return out;
}

// Sums the world ranks of a group with an all-reduce and gathers them in group order.
void expect_group(Communicator& c, const std::vector<int>& members, const char* axis) {
  ASSERT_EQ(c.size(), static_cast<int>(members.size())) << axis;
  Tensor me = from_vector({static_cast<double>(world().rank())}, {1}, DType::i64);
  Tensor sum = me.clone();
  c.all_reduce(sum);
  Tensor all = c.all_gather(me);
  int64_t want = 0;
  for (int m : members) want += m;
  EXPECT_EQ(sum.at({0}), want) << axis;
  for (size_t q = 0; q < members.size(); ++q) EXPECT_EQ(all.at({static_cast<int64_t>(q), 0}), members[q]) << axis;
  // The non-blocking path on the sub-communicator too.
  Tensor mx = me.clone();
  c.iall_reduce(mx, ReduceOp::max).wait();
  EXPECT_EQ(mx.at({0}), *std::max_element(members.begin(), members.end())) << axis;
}

TEST(Grid, LayoutAndSubCommunicators) {
  const int n = world().size(), r = world().rank();
  for (auto [dp, sp, tp] : factorisations(n)) {
    SCOPED_TRACE(testing::Message() << "dp=" << dp << " sp=" << sp << " tp=" << tp);
    ProcessGrid g(world(), dp, sp, tp);
    EXPECT_EQ(g.tp_rank(), r % tp);
    EXPECT_EQ(g.sp_rank(), (r / tp) % sp);
    EXPECT_EQ(g.dp_rank(), r / (tp * sp));
    EXPECT_EQ(g.rank_of(g.dp_rank(), g.sp_rank(), g.tp_rank()), r);
    EXPECT_EQ(g.tp_comm().rank(), g.tp_rank());
    EXPECT_EQ(g.sp_comm().rank(), g.sp_rank());
    EXPECT_EQ(g.dp_comm().rank(), g.dp_rank());
    EXPECT_EQ(g.dp_sp_comm().rank(), g.dp_rank() * sp + g.sp_rank());
    std::vector<int> tpm, spm, dpm, dpspm;
    for (int t = 0; t < tp; ++t) tpm.push_back((g.dp_rank() * sp + g.sp_rank()) * tp + t);
    for (int s = 0; s < sp; ++s) spm.push_back((g.dp_rank() * sp + s) * tp + g.tp_rank());
    for (int d = 0; d < dp; ++d) dpm.push_back((d * sp + g.sp_rank()) * tp + g.tp_rank());
    for (int d = 0; d < dp; ++d)
      for (int s = 0; s < sp; ++s) dpspm.push_back((d * sp + s) * tp + g.tp_rank());
    expect_group(g.tp_comm(), tpm, "tp");
    expect_group(g.sp_comm(), spm, "sp");
    expect_group(g.dp_comm(), dpm, "dp");
    expect_group(g.dp_sp_comm(), dpspm, "dp_sp");
    // Each sub-communicator counts its own bytes: one i64 all-gather on a group of m ranks.
    EXPECT_EQ(g.tp_comm().stats().get("all_gather").bytes_sent, (tp - 1) * 8);
  }
}

TEST(Grid, ExampleFromTheDesign) {
  if (world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  ProcessGrid g(world(), 2, 1, 2);  // tp pairs {0,1} {2,3}; dp pairs {0,2} {1,3}
  const int r = world().rank();
  expect_group(g.tp_comm(), r < 2 ? std::vector<int>{0, 1} : std::vector<int>{2, 3}, "tp");
  expect_group(g.dp_comm(), r % 2 == 0 ? std::vector<int>{0, 2} : std::vector<int>{1, 3}, "dp");
}

TEST(Grid, BadWorldSizeNamesAllFourNumbers) {
  const int n = world().size();
  try {
    ProcessGrid g(world(), n + 1, 3, 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("world size " + std::to_string(n)), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(n + 1) + " * 3 * 1 = " + std::to_string(3 * (n + 1))), std::string::npos) << m;
  }
  EXPECT_THROW(ProcessGrid(world(), 0, n, 1), Error);
}

TEST(Grid, SequenceLengthMustDivideBySp) {
  const int n = world().size();
  if (n == 1) GTEST_SKIP() << "sp = 1 divides every length";
  ProcessGrid g(world(), 1, n, 1);
  EXPECT_NO_THROW(g.check_seq_len(n * 16));
  try {
    g.check_seq_len(n * 16 + 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(std::to_string(n * 16 + 1)), std::string::npos) << m;
    EXPECT_NE(m.find("sp = " + std::to_string(n)), std::string::npos) << m;
  }
}

TEST(Grid, SingleProcessGrid) {
  SingleProcessComm one;
  ProcessGrid g(one, 1, 1, 1);
  EXPECT_EQ(g.dp_comm().size(), 1);
  EXPECT_THROW(ProcessGrid(one, 2, 1, 1), Error);
}

TEST(Grid, ThreadsPerRank) {
  EXPECT_GE(threads_per_rank(1), 1);
  EXPECT_EQ(threads_per_rank(1 << 20), 1);  // more ranks than cores: still one thread
  EXPECT_GE(threads_per_rank(world()), 1);
  EXPECT_LE(threads_per_rank(world()), threads_per_rank(1));
}

}  // namespace
}  // namespace skein
