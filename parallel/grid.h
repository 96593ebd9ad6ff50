// grid.h — ProcessGrid: the world's ranks arranged as dp × sp × tp, tp innermost (tensor
// parallel neighbours on adjacent ranks, usually one node), then sp, then dp:
//   rank = (dp_rank * sp + sp_rank) * tp + tp_rank
// and one sub-communicator per axis (ranks that differ only along that axis), plus the
// dp × sp group over which weight gradients are reduced and ZeRO-1 shards.
// reference: ../shared/research/parallel_distill.md §3.3 (Megatron / picotron layout, tp-cp-dp).
// Example dp=2, sp=2, tp=2: tp groups {0,1} {2,3} {4,5} {6,7}; sp {0,2} {1,3} {4,6} {5,7};
// dp {0,4} {1,5} {2,6} {3,7}; dp×sp {0,2,4,6} {1,3,5,7}.
// Also the threads-per-rank default (cores / ranks on the node).
#pragma once
#include <cstdint>
#include <memory>
#include "parallel/communicator.h"

namespace skein {

class ProcessGrid {
 public:
  // Collective over `world` (every rank constructs it with the same numbers); `world` must
  // outlive the grid. A world size other than dp * sp * tp is a skein::Error naming all four.
  ProcessGrid(Communicator& world, int dp, int sp, int tp);

  int dp() const { return dp_; }
  int sp() const { return sp_; }
  int tp() const { return tp_; }
  int dp_rank() const { return dp_rank_; }
  int sp_rank() const { return sp_rank_; }
  int tp_rank() const { return tp_rank_; }
  // The world rank at grid coordinates (dp_rank, sp_rank, tp_rank).
  int rank_of(int dp_rank, int sp_rank, int tp_rank) const;

  Communicator& world() const { return world_; }
  Communicator& dp_comm() const { return *dp_comm_; }        // size dp, rank dp_rank
  Communicator& sp_comm() const { return *sp_comm_; }        // size sp, rank sp_rank
  Communicator& tp_comm() const { return *tp_comm_; }        // size tp, rank tp_rank
  // size dp * sp, rank dp_rank * sp + sp_rank: gradient reduce, ZeRO-1 shards, token counts.
  Communicator& dp_sp_comm() const { return *dp_sp_comm_; }

  // Errors unless sp divides seq_len (each sp rank holds seq_len / sp contiguous tokens).
  void check_seq_len(int64_t seq_len) const;

 private:
  Communicator& world_;
  int dp_, sp_, tp_;
  int dp_rank_ = 0, sp_rank_ = 0, tp_rank_ = 0;
  std::unique_ptr<Communicator> dp_comm_, sp_comm_, tp_comm_, dp_sp_comm_;
};

// Threads each rank should run: the cores it may use divided among the ranks on its node,
// min(cores this process may run on (its affinity mask), hardware threads / local_ranks),
// at least 1. (mpirun binds a rank to one core by default for -np <= 2: then this is 1;
// launch/mpirun.sh passes --bind-to none.)
int threads_per_rank(int local_ranks);
// The same with local_ranks counted on `comm` (MpiComm: MPI_Comm_split_type SHARED, which
// is collective over comm; any other backend: 1 rank).
int threads_per_rank(const Communicator& comm);

}  // namespace skein
