// main.cpp — test_parallel's main (the binary runs under `mpirun -np 2` and `-np 4`):
// initialises MPI, runs every test on every rank, prints gtest output on rank 0 only (the
// other ranks print just their failures, prefixed with the rank), reports after each test
// which ranks failed, and all-reduces the failure count so every rank exits with the same
// status. `test_parallel --throw-on-rank R` instead throws on rank R inside
// abort_on_exception while the other ranks wait in a barrier (test_abort.cpp runs it);
// `test_parallel --bench` prints collective and data-parallel timings (bench.cpp),
// `--bench-overlap [reps]` the fraction of communication that overlap hides (bench_overlap.cpp).
#include <gtest/gtest.h>
#include <mpi.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "core/ops.h"
#include "helpers.h"
#include "parallel/data_parallel.h"
#include "parallel/runtime.h"

namespace {

int g_rank = 0;
}  // namespace

namespace skein::test {
int run_bench();  // bench.cpp
int run_bench_overlap(int reps);  // bench_overlap.cpp
}

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", g_rank, r.file_name() ? r.file_name() : "?",
                 r.line_number(), r.summary());
    std::fflush(stderr);
  }
};

// Every rank reaches the end of every test (collectives keep them in step), so one
// all-gather per test tells rank 0 where it failed.
class FailureAgreement : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    const std::vector<int> failed = skein::test::ranks_where(info.result()->Failed());
    if (g_rank != 0 || failed.empty()) return;
    std::string list;
    for (int r : failed) list += skein::detail::concat(" ", r);
    std::printf("[  RANKS   ] %s.%s failed on rank(s)%s\n", info.test_suite_name(), info.name(), list.c_str());
    std::fflush(stdout);
  }
};

int throw_on_rank(int victim) {
  return skein::abort_on_exception([&]() -> int {
    if (g_rank == victim) throw skein::Error(skein::detail::concat("deliberate failure on rank ", victim));
    MPI_Barrier(MPI_COMM_WORLD);  // without MPI_Abort the survivors would wait here forever
    return 0;
  });
}

// Two parameters, one bucket each (bucket 0 = b, the last registered). Every rank arms an
// overlapped GradReducer; the survivors' backward reaches both (both buckets launched from the
// hook) and they wait in reduce(); the victim's backward reaches only b (bucket 0 in flight),
// then it throws: without MPI_Abort the survivors would wait for bucket 1 forever.
int throw_in_overlap(int victim) {
  return skein::abort_on_exception([&]() -> int {
    using namespace skein;
    Tensor a = from_vector({1.0, 2.0}, {2}, DType::f64).requires_grad_();
    Tensor b = from_vector({3.0, 4.0}, {2}, DType::f64).requires_grad_();
    GradReducer reducer(test::world(), {{"a", a}, {"b", b}}, {16, true});
    reducer.arm();
    if (g_rank == victim) {
      sum(mul(b, b)).backward();
      throw Error(detail::concat("deliberate failure on rank ", victim, " with ",
                                 reducer.last_overlap().launched_in_backward, " bucket(s) in flight"));
    }
    sum(add(mul(a, a), mul(b, b))).backward();
    reducer.reduce();
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  skein::MpiRuntime mpi(argc, argv);
  g_rank = mpi.world_rank();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--throw-on-rank") == 0) return throw_on_rank(std::atoi(argv[i + 1]));
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--throw-in-overlap") == 0) return throw_in_overlap(std::atoi(argv[i + 1]));
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--bench") == 0) return skein::abort_on_exception(skein::test::run_bench);
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--bench-overlap") == 0)
      return skein::abort_on_exception([&] { return skein::test::run_bench_overlap(i + 1 < argc ? std::atoi(argv[i + 1]) : 5); });

  ::testing::InitGoogleTest(&argc, argv);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (g_rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter);
  }
  listeners.Append(new FailureAgreement);
  const int local_failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int failed = 0;
  MPI_Allreduce(&local_failed, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0 && failed > 0) std::printf("test_parallel: failures on %d rank(s)\n", failed);
  return failed > 0 ? 1 : 0;
}
