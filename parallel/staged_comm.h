// staged_comm.h — StagedComm: the Communicator for device tensors over a host communicator
// (MpiComm): every call copies its device inputs into host staging tensors, runs the host
// collective (blocking or non-blocking, the host backend's algorithms and byte counts), and
// copies the results back into the device tensors (a non-blocking call when its Request
// completes). It is how ranks that SHARE a GPU communicate (NCCL refuses two ranks on one
// device): `mpirun -np 2|4` on a one-GPU machine runs every grid mode with the model on the
// GPU. Device -> host copies synchronise the compute stream (the data is final); host ->
// device copies go through the CUDA backend's pinned staging ring in stream order, so the
// kernels after the call see the result. With device cpu it stages through host copies
// too, which is how its logic is tested without a GPU (tests/parallel/test_staged_comm.cpp).
// UNVERIFIED on a GPU: no GPU was available when it was written.
#pragma once
#include <memory>
#include "parallel/communicator.h"

namespace skein {

class StagedComm final : public Communicator {
 public:
  // host: a communicator on cpu tensors (owned); device: where this communicator's tensors live.
  StagedComm(std::unique_ptr<Communicator> host, Device device);

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const char* backend_name() const override { return "staged"; }
  Device device() const override { return device_; }
  Communicator& host() { return *host_; }
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  Request do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) override;
  Request do_all_gather(const Tensor& in, const Tensor& out, bool blocking) override;
  Request do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) override;
  Request do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) override;
  Request do_broadcast(const Tensor& t, int root, bool blocking) override;
  Request do_send(const Tensor& t, int dst, int tag, bool blocking) override;
  Request do_recv(const Tensor& t, int src, int tag, bool blocking) override;
  void do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) override;
  void do_barrier() override { host_->barrier(); }

 private:
  std::unique_ptr<Communicator> host_;
  Device device_;
};

}  // namespace skein
