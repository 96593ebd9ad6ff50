// test_nccl_single.cpp — on one GPU, one process (skipped without a GPU; UNVERIFIED until a GPU
// runs it): NcclComm with one rank (init, every collective and its byte count, a non-blocking
// request, split, and the error path of a device that does not exist), and StagedComm over a
// world of one on CUDA tensors (the staging copies that ranks sharing a GPU go through).
#include <gtest/gtest.h>
#include "core/ops.h"
#include "parallel/staged_comm.h"
#include "tests/cuda/cuda_compare.h"
#ifdef SKEIN_HAVE_NCCL
#include "parallel/nccl/nccl_comm.h"
#endif

namespace skein {
namespace {

Tensor dev(const Tensor& t) { return t.to(Device::cuda); }
Tensor host(const Tensor& t) { return t.to(Device::cpu); }

// Every call of a world of one on device tensors: identities and copies.
void world_of_one(Communicator& c) {
  Tensor t = dev(full({5}, 3.0, DType::f32));
  c.all_reduce(t);
  EXPECT_EQ(host(t).at({4}), 3.0);
  Request r = c.iall_reduce(t, ReduceOp::max);
  r.wait();
  EXPECT_EQ(host(t).at({0}), 3.0);
  Tensor g = c.all_gather(dev(full({2}, 7.0, DType::f64)));
  EXPECT_EQ(g.shape(), (Shape{1, 2}));
  EXPECT_EQ(host(g).at({0, 1}), 7.0);
  Tensor rs = dev(zeros({3}, DType::f32));
  c.reduce_scatter_into(dev(full({3}, 2.0, DType::f32)), rs);
  EXPECT_EQ(host(rs).at({2}), 2.0);
  Tensor red = dev(zeros({3}, DType::f32));
  c.ireduce_into(dev(full({3}, 4.0, DType::f32)), red, 0).wait();
  EXPECT_EQ(host(red).at({1}), 4.0);
  Tensor b = dev(full({2}, 5.0, DType::i64));
  c.broadcast(b, 0);
  EXPECT_EQ(host(b).at({1}), 5.0);
  Tensor got = dev(zeros({2}, DType::f32));
  c.sendrecv(dev(full({2}, 9.0, DType::f32)), 0, got, 0);
  EXPECT_EQ(host(got).at({0}), 9.0);
  c.barrier();
  EXPECT_EQ(c.stats().get("all_reduce").calls, 2);
  EXPECT_EQ(c.stats().get("all_reduce").bytes_sent, 0);  // (p - 1) = 0: nothing moves
}

TEST(NcclSingle, EveryCollectiveOnOneRank) {
  SKEIN_REQUIRE_GPU();
#ifdef SKEIN_HAVE_NCCL
  NcclComm c(0);
  EXPECT_EQ(c.size(), 1);
  world_of_one(c);
  auto sub = c.split(0, 0);
  EXPECT_EQ(sub->size(), 1);
  // The error path: a device that does not exist is an error naming the CUDA call.
  try {
    NcclComm bad(1 << 20);
    ADD_FAILURE() << "no error for device 1048576";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cudaSetDevice"), std::string::npos) << e.what();
  }
#else
  GTEST_SKIP() << "built without NCCL";
#endif
}

TEST(StagedCuda, WorldOfOneOnDeviceTensors) {
  SKEIN_REQUIRE_GPU();
  StagedComm c(std::make_unique<SingleProcessComm>(), Device::cuda);
  EXPECT_EQ(c.device(), Device::cuda);
  world_of_one(c);
}

}  // namespace
}  // namespace skein
