// helpers.h — shared pieces of the MPI test suite: the world communicator, a barrier that
// sleeps instead of spinning (for ranks that wait on a child job), and tensor comparisons.
#pragma once
#include <string>
#include <vector>
#include "core/tensor.h"
#include "parallel/mpi_comm.h"

namespace skein::test {

// A duplicate of MPI_COMM_WORLD, made on first use, shared by every test.
MpiComm& world();
// MPI_Ibarrier polled every few milliseconds (leaves the cores to other processes).
void sleepy_barrier(MPI_Comm comm);
// max |a - b| / max |b| (elementwise over equal shapes; 0 when both are all zero).
double rel_diff(const Tensor& a, const Tensor& b);
// The ranks (of world) on which `failed` is true, gathered to every rank.
std::vector<int> ranks_where(bool failed);

}  // namespace skein::test
