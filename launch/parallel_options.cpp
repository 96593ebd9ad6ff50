// parallel_options.cpp — config -> GradReducer / LASP-2 options, and parallel.backend.
#include "launch/parallel_options.h"
#include <cmath>

namespace skein {

DataParallelOptions data_parallel_options(const ParallelConfig& p) {
  DataParallelOptions o;
  o.bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(std::llround(p.bucket_mb * (1 << 20))));
  o.overlap = p.overlap;
  o.skip_comm = p.bench_skip_comm;
  SKEIN_CHECK(p.grad_reduce_dtype == "f32" || p.grad_reduce_dtype == "bf16",
              "parallel.grad_reduce_dtype must be f32 or bf16, got '", p.grad_reduce_dtype, "'");
  o.reduce_dtype = p.grad_reduce_dtype == "bf16" ? DType::bf16 : DType::f32;
  return o;
}

Lasp2Options lasp2_options(const ParallelConfig& p) {
  Lasp2Options o;
  o.overlap = p.overlap;
  o.skip_comm = p.bench_skip_comm;
  return o;
}

std::string resolve_backend(const ParallelConfig& p, Device device, int local_ranks, int gpus, bool nccl_built) {
  const bool own_gpu = device == Device::cuda && local_ranks <= gpus;
  std::string b = p.backend;
  // auto: MPI until the grid runs over NCCL (then: own_gpu && nccl_built ? "nccl" : "mpi").
  if (b == "auto") b = "mpi";
  if (b == "nccl") {
    SKEIN_CHECK(device == Device::cuda, "parallel.backend=nccl: the model is on ", device_name(device),
                "; NCCL communicates CUDA tensors (set train.device=cuda or parallel.backend=mpi)");
    SKEIN_CHECK(nccl_built, "parallel.backend=nccl: this skein was built without NCCL (set parallel.backend=mpi)");
    SKEIN_CHECK(own_gpu, "parallel.backend=nccl: ", local_ranks, " ranks share ", gpus, " GPU(s) on this node; NCCL "
                "needs one GPU per rank (set parallel.backend=mpi)");
    SKEIN_CHECK(false, "parallel.backend=nccl: the trainer's process grid does not run over NCCL yet (NcclComm "
                "compiles but has never run on a GPU); set parallel.backend=mpi");
  }
  return b;
}

}  // namespace skein
