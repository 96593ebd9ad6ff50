// runtime.cpp — MpiRuntime and abort_on_exception.
#include "parallel/runtime.h"
#include <mpi.h>
#include <cstdio>
#include <exception>
#include "core/error.h"

namespace skein {

namespace {
bool mpi_live() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}
}  // namespace

MpiRuntime::MpiRuntime(int& argc, char**& argv) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw Error("MpiRuntime: MPI_Init_thread failed");
    owns_ = true;
    SKEIN_CHECK(provided >= MPI_THREAD_FUNNELED, "MpiRuntime: MPI provides thread level ", provided,
                " but skein needs MPI_THREAD_FUNNELED");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiRuntime::~MpiRuntime() {
  if (owns_ && mpi_live()) MPI_Finalize();
}

int world_rank() {
  int r = 0;
  if (mpi_live()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int abort_on_exception(const std::function<int()>& body) {
  const char* what = nullptr;
  std::string msg;
  try {
    return body();
  } catch (const std::exception& e) {
    msg = e.what();
    what = msg.c_str();
  } catch (...) {
    what = "unknown exception";
  }
  std::fprintf(stderr, "skein: rank %d: %s\n", world_rank(), what);
  std::fflush(stderr);
  int size = 1;
  if (mpi_live()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

}  // namespace skein
