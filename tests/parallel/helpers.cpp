// helpers.cpp — the shared test helpers (see helpers.h).
#include "helpers.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

namespace skein::test {

MpiComm& world() {
  static std::unique_ptr<MpiComm> w = MpiComm::world();
  return *w;
}

void sleepy_barrier(MPI_Comm comm) {
  MPI_Request req;
  MPI_Ibarrier(comm, &req);
  for (int done = 0;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

double rel_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::fabs(x[i] - y[i]));
    scale = std::max(scale, std::fabs(y[i]));
  }
  return diff == 0 ? 0.0 : diff / std::max(scale, 1e-300);
}

std::vector<int> ranks_where(bool failed) {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> flags(static_cast<size_t>(size));
  int mine = failed ? 1 : 0;
  MPI_Allgather(&mine, 1, MPI_INT, flags.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::vector<int> out;
  for (int r = 0; r < size; ++r)
    if (flags[static_cast<size_t>(r)]) out.push_back(r);
  return out;
}

}  // namespace skein::test
