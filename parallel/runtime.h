// runtime.h — process-level MPI launch helpers: MpiRuntime (RAII MPI_Init_thread /
// MPI_Finalize) and abort_on_exception, which turns an exception on any rank into
// "skein: rank R: <message>" on stderr and MPI_Abort(MPI_COMM_WORLD, 1), so a failing job
// exits non-zero at once instead of hanging the other ranks in their next collective.
//
// A main() for an MPI program:
//   int main(int argc, char** argv) {
//     skein::MpiRuntime mpi(argc, argv);
//     return skein::abort_on_exception([&] { return real_main(argc, argv); });
//   }
#pragma once
#include <functional>

namespace skein {

class MpiRuntime {
 public:
  // Initialises MPI with MPI_THREAD_FUNNELED (only the main thread calls MPI; the thread
  // pool never does) unless it already is; then this object does not finalise it either.
  MpiRuntime(int& argc, char**& argv);
  ~MpiRuntime();  // MPI_Finalize, when this object initialised MPI and it is not finalised
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int world_rank() const { return rank_; }
  int world_size() const { return size_; }

 private:
  bool owns_ = false;
  int rank_ = 0, size_ = 1;
};

// Runs body and returns its exit code. On an exception: prints "skein: rank R: <what>" to
// stderr and, when MPI is initialised (and not finalised) with more than one rank, calls
// MPI_Abort(MPI_COMM_WORLD, 1), which ends every rank; with one rank (or no MPI) it returns 1.
int abort_on_exception(const std::function<int()>& body);

// The world rank (0 when MPI is not initialised), for rank-0-only logging.
int world_rank();

}  // namespace skein
