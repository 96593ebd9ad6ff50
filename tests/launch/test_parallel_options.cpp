// test_parallel_options.cpp — the parallel section's communication keys become the options of
// the gradient reducer and LASP-2 (bucket MiB -> bytes, overlap, bench_skip_comm, the gradients'
// wire dtype), and parallel.backend resolves to MPI, or stops with an error naming the key and
// the reason.
#include <gtest/gtest.h>
#include <string>
#include "launch/parallel_options.h"

namespace skein {
namespace {

std::string error_of(const ParallelConfig& p, Device d, int local_ranks, int gpus, bool nccl) {
  try {
    resolve_backend(p, d, local_ranks, gpus, nccl);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ParallelOptions, KeysBecomeReducerAndLasp2Options) {
  ParallelConfig p;
  EXPECT_TRUE(p.overlap);  // the default
  p.bucket_mb = 0.5;
  p.bench_skip_comm = true;
  const DataParallelOptions d = data_parallel_options(p);
  EXPECT_EQ(d.bucket_bytes, 512 * 1024);
  EXPECT_TRUE(d.overlap);
  EXPECT_TRUE(d.skip_comm);
  p.overlap = false;
  const Lasp2Options l = lasp2_options(p);
  EXPECT_FALSE(l.overlap);
  EXPECT_TRUE(l.skip_comm);
  EXPECT_EQ(d.reduce_dtype, DType::f32);  // parallel.grad_reduce_dtype's default
  p.grad_reduce_dtype = "bf16";
  EXPECT_EQ(data_parallel_options(p).reduce_dtype, DType::bf16);
  p.grad_reduce_dtype = "fp16";  // a value set around the config loader's schema check
  try {
    data_parallel_options(p);
    ADD_FAILURE() << "no error for parallel.grad_reduce_dtype=fp16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.grad_reduce_dtype must be f32 or bf16, got 'fp16'"),
              std::string::npos) << e.what();
  }
}

TEST(ParallelOptions, BackendResolution) {
  ParallelConfig p;
  EXPECT_EQ(resolve_backend(p, Device::cpu, 2, 0, false), "mpi");
  EXPECT_EQ(resolve_backend(p, Device::cuda, 8, 8, true), "mpi");  // auto: MPI until the grid runs over NCCL
  p.backend = "mpi";
  EXPECT_EQ(resolve_backend(p, Device::cuda, 4, 1, true), "mpi");
  p.backend = "nccl";
  EXPECT_NE(error_of(p, Device::cpu, 2, 0, true).find("parallel.backend=nccl: the model is on cpu"), std::string::npos);
  EXPECT_NE(error_of(p, Device::cuda, 2, 2, false).find("built without NCCL"), std::string::npos);
  EXPECT_NE(error_of(p, Device::cuda, 4, 1, true).find("4 ranks share 1 GPU(s)"), std::string::npos);
  EXPECT_NE(error_of(p, Device::cuda, 2, 2, true).find("does not run over NCCL yet"), std::string::npos);
}

}  // namespace
}  // namespace skein
