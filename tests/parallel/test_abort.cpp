// test_abort.cpp — an exception on one rank ends the whole job quickly (also with an
// overlapped gradient all-reduce in flight: --throw-in-overlap): rank 0 runs
// `mpirun -np 2 test_parallel --throw-on-rank 1` (rank 1 throws inside abort_on_exception
// while rank 0 waits in a barrier) and checks the exit status is non-zero, the message
// "skein: rank 1: ..." is printed, and it all took under 10 s. The other ranks of this
// job wait in a sleeping barrier meanwhile. The child gets a clean environment (this job's
// OMPI_* / PMIX_* variables would make its mpirun think it is part of this job).
// SKEIN_MPIRUN overrides the mpirun used (default: mpirun on PATH).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include "helpers.h"

namespace skein {
namespace {

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Runs `mpirun -np 2 test_parallel <flag> 1` on rank 0 and checks it ends non-zero, within
// 10 s, printing `expect`.
void expect_job_aborts(const std::string& flag, const std::string& expect) {
  if (test::world().rank() == 0) {
    const std::string log = "/tmp/skein_abort_test_" + std::to_string(getpid()) + ".log";
    const std::string cmd = "env -i PATH='" + env_or("PATH", "/usr/bin:/bin") + "' HOME='" + env_or("HOME", "/tmp") +
                            "' LD_LIBRARY_PATH='" + env_or("LD_LIBRARY_PATH", "") +
                            "' ASAN_OPTIONS='" + env_or("ASAN_OPTIONS", "") +
                            "' OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SKEIN_NUM_THREADS=1"
                            " OPENBLAS_NUM_THREADS=1 timeout 20 " + env_or("SKEIN_MPIRUN", "mpirun") +
                            " --oversubscribe -np 2 '" + self_exe() + "' " + flag + " 1 > " + log + " 2>&1";
    const auto t0 = std::chrono::steady_clock::now();
    const int status = std::system(cmd.c_str());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::stringstream out;
    out << std::ifstream(log).rdbuf();
    std::remove(log.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << cmd;
    EXPECT_NE(WEXITSTATUS(status), 0) << out.str();
    EXPECT_NE(WEXITSTATUS(status), 124) << "timed out (the survivors hung):\n" << out.str();
    EXPECT_NE(out.str().find(expect), std::string::npos) << out.str();
    EXPECT_LT(seconds, 10.0) << out.str();
    std::printf("[ abort    ] %s: the job exited with %d after %.2f s\n", flag.c_str(), WEXITSTATUS(status), seconds);
  }
  test::sleepy_barrier(test::world().handle());
}

TEST(Abort, ExceptionOnOneRankEndsTheJobWithItsMessage) {
  expect_job_aborts("--throw-on-rank", "skein: rank 1: deliberate failure on rank 1");
}

// The same while an overlapped gradient all-reduce is in flight on the failing rank and the
// others wait in GradReducer::reduce for a bucket it never starts.
TEST(Abort, ExceptionWithAnOverlappedBucketInFlightEndsTheJob) {
  expect_job_aborts("--throw-in-overlap", "skein: rank 1: deliberate failure on rank 1 with 1 bucket(s) in flight");
}

}  // namespace
}  // namespace skein
