// test_nccl.cpp — NcclComm on CUDA tensors (built only with SKEIN_HAVE_NCCL; skipped unless
// every rank can have a GPU of its own): all-reduce, all-gather, reduce-scatter, reduce,
// broadcast, sendrecv and a split, against the values the MPI tests use. UNVERIFIED: no
// GPU has run it.
#include <gtest/gtest.h>
#ifdef SKEIN_HAVE_NCCL
#include <cuda_runtime.h>
#include "core/backend.h"
#include "core/ops.h"
#include "helpers.h"
#include "parallel/nccl/nccl_comm.h"

namespace skein {
namespace {

Tensor to_device(const Tensor& host) { return host.to(Device::cuda); }
Tensor to_host(const Tensor& dev) { return dev.to(Device::cpu); }

TEST(Nccl, CollectivesOnDeviceTensors) {
  MpiComm& w = test::world();
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
  int ok = gpus >= w.local_size() ? 1 : 0;  // NCCL needs a distinct GPU per rank
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, w.handle());
  if (!ok) GTEST_SKIP() << "needs one GPU per rank (" << gpus << " visible)";
  const int p = w.size(), r = w.rank();
  NcclComm c(w, r % gpus);
  Tensor t = to_device(full({8}, r + 1.0, DType::f32));
  c.all_reduce(t);
  EXPECT_EQ(to_host(t).at({7}), p * (p + 1) / 2.0);
  Tensor g = c.all_gather(to_device(full({2}, r, DType::f64)));
  for (int q = 0; q < p; ++q) EXPECT_EQ(to_host(g).at({q, 1}), q);
  Tensor rs = to_device(zeros({3}, DType::f32));
  c.ireduce_scatter_into(to_device(full({3 * p}, 1.0, DType::f32)), rs).wait();
  EXPECT_EQ(to_host(rs).at({2}), p);
  Tensor red = to_device(zeros({3}, DType::f32));
  c.ireduce_into(to_device(full({3}, r + 1.0, DType::f32)), red, p - 1).wait();  // ZeRO-1's overlapped reduce
  if (r == p - 1) {
    EXPECT_EQ(to_host(red).at({2}), p * (p + 1) / 2.0);
  }
  Tensor b = to_device(full({4}, r, DType::i64));
  c.broadcast(b, p - 1);
  EXPECT_EQ(to_host(b).at({0}), p - 1);
  Tensor in = to_device(zeros({2}, DType::f32));
  c.sendrecv(to_device(full({2}, r, DType::f32)), (r + 1) % p, in, (r + p - 1) % p);
  EXPECT_EQ(to_host(in).at({1}), (r + p - 1) % p);
  auto sub = c.split(r % 2, r);
  EXPECT_EQ(sub->size(), (p + 1 - r % 2) / 2);
  c.barrier();
}

}  // namespace
}  // namespace skein
#endif
