// parallel_options.h — the parallel section's communication settings turned into the options
// of the pieces that communicate: GradReducer's buckets, overlap and wire dtype
// (parallel.bucket_mb, parallel.overlap, parallel.bench_skip_comm, parallel.grad_reduce_dtype), LASP-2's all-gather (parallel.overlap,
// parallel.bench_skip_comm), and the backend a run uses (parallel.backend).
#pragma once
#include <string>
#include "configs/config.h"
#include "core/tensor.h"
#include "parallel/data_parallel.h"
#include "parallel/lasp2.h"

namespace skein {

DataParallelOptions data_parallel_options(const ParallelConfig& p);
Lasp2Options lasp2_options(const ParallelConfig& p);

// parallel.backend for a run on `device`: "mpi" or "nccl". Today the trainer's grid
// communicates through MPI only, so auto resolves to MPI and an explicit "nccl" is an error
// naming the key and the reason (no CUDA model, no NCCL built in, ranks sharing a GPU, or the
// grid not wired to NcclComm yet: it compiles but has never run, UNVERIFIED without a GPU).
// Once wired, auto = NCCL for CUDA tensors when every rank on the node has its own GPU
// (local_ranks <= gpus) and NCCL is built in.
std::string resolve_backend(const ParallelConfig& p, Device device, int local_ranks, int gpus, bool nccl_built);

}  // namespace skein
