// grid.cpp — ProcessGrid: coordinates from the world rank and one split per axis.
#include "parallel/grid.h"
#include <sched.h>
#include <algorithm>
#include <thread>
#include "parallel/mpi_comm.h"

namespace skein {

ProcessGrid::ProcessGrid(Communicator& world, int dp, int sp, int tp) : world_(world), dp_(dp), sp_(sp), tp_(tp) {
  SKEIN_CHECK(dp >= 1 && sp >= 1 && tp >= 1, "ProcessGrid: dp, sp and tp must be >= 1, got dp=", dp, " sp=", sp,
              " tp=", tp);
  SKEIN_CHECK(static_cast<int64_t>(dp) * sp * tp == world.size(), "ProcessGrid: world size ", world.size(),
              " != dp * sp * tp = ", dp, " * ", sp, " * ", tp, " = ", static_cast<int64_t>(dp) * sp * tp,
              " (launch dp*sp*tp ranks, or change parallel.dp / parallel.sp / parallel.tp)");
  const int r = world.rank();
  tp_rank_ = r % tp;
  sp_rank_ = (r / tp) % sp;
  dp_rank_ = r / (tp * sp);
  // Every rank makes every split in the same order (each split is collective over world).
  tp_comm_ = world.split(dp_rank_ * sp + sp_rank_, tp_rank_);
  sp_comm_ = world.split(dp_rank_ * tp + tp_rank_, sp_rank_);
  dp_comm_ = world.split(sp_rank_ * tp + tp_rank_, dp_rank_);
  dp_sp_comm_ = world.split(tp_rank_, dp_rank_ * sp + sp_rank_);
  SKEIN_ASSERT(tp_comm_->size() == tp && tp_comm_->rank() == tp_rank_);
  SKEIN_ASSERT(sp_comm_->size() == sp && sp_comm_->rank() == sp_rank_);
  SKEIN_ASSERT(dp_comm_->size() == dp && dp_comm_->rank() == dp_rank_);
  SKEIN_ASSERT(dp_sp_comm_->size() == dp * sp && dp_sp_comm_->rank() == dp_rank_ * sp + sp_rank_);
}

int ProcessGrid::rank_of(int dp_rank, int sp_rank, int tp_rank) const {
  SKEIN_CHECK(dp_rank >= 0 && dp_rank < dp_ && sp_rank >= 0 && sp_rank < sp_ && tp_rank >= 0 && tp_rank < tp_,
              "ProcessGrid::rank_of: (", dp_rank, ", ", sp_rank, ", ", tp_rank, ") is outside the grid dp=", dp_,
              " sp=", sp_, " tp=", tp_);
  return (dp_rank * sp_ + sp_rank) * tp_ + tp_rank;
}

void ProcessGrid::check_seq_len(int64_t seq_len) const {
  SKEIN_CHECK(seq_len > 0 && seq_len % sp_ == 0, "ProcessGrid: sequence length ", seq_len,
              " is not divisible by sp = ", sp_, " (each sequence-parallel rank holds seq_len / sp tokens)");
}

int threads_per_rank(int local_ranks) {
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  const int allowed = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : hw;
  return std::max(1, std::min(allowed, hw / std::max(1, local_ranks)));
}

int threads_per_rank(const Communicator& comm) {
  const auto* mpi = dynamic_cast<const MpiComm*>(&comm);
  return threads_per_rank(mpi ? mpi->local_size() : 1);
}

}  // namespace skein
