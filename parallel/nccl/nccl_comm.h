// nccl_comm.h — NcclComm: the Communicator over NCCL for CUDA tensors (built only when
// CMake finds CUDA and NCCL; SKEIN_HAVE_NCCL is then defined). One NCCL communicator and
// one CUDA stream per NcclComm (the communication stream); every call is enqueued on that
// stream after an event recorded on skein's compute stream (core/cuda/runtime.h), so it
// reads what the kernels before it wrote. Blocking calls wait for the stream; non-blocking
// ones record a CUDA event, and the Request's test() is cudaEventQuery, wait() polls it.
// Every wait polls ncclCommGetAsyncError: an asynchronous failure (a peer gone, a network
// error) aborts the communicator and throws skein::Error naming the call and NCCL's last
// error. Byte counts are the front end's (CommStats), as for every backend.
// UNVERIFIED: compiles and links; no GPU has run it (tests/parallel/test_nccl.cpp skips).
// reference: https://docs.nvidia.com/deeplearning/nccl/user-guide/docs/examples.html
// ("Example 2: One Device per Process or Thread": the unique id broadcast over MPI).
#pragma once
#include <memory>
#include "parallel/communicator.h"
#include "parallel/mpi_comm.h"

namespace skein {

class NcclComm final : public Communicator {
 public:
  // Collective over `mpi`: selects CUDA device `device`, rank 0 makes the NCCL unique id,
  // MPI broadcasts it, and every rank joins with its MPI rank.
  NcclComm(MpiComm& mpi, int device);
  // A world of one on CUDA device `device`, without MPI (the unique id made locally): tests.
  explicit NcclComm(int device);
  ~NcclComm() override;

  int rank() const override;
  int size() const override;
  const char* backend_name() const override { return "nccl"; }
  Device device() const override { return Device::cuda; }
  void* stream() const;  // the cudaStream_t every call is enqueued on
  // ncclCommSplit (NCCL >= 2.18): collective over this communicator.
  std::unique_ptr<Communicator> split(int color, int key) override;

  struct Impl;

 protected:
  Request do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) override;
  Request do_all_gather(const Tensor& in, const Tensor& out, bool blocking) override;
  Request do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) override;
  Request do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) override;
  Request do_broadcast(const Tensor& t, int root, bool blocking) override;
  Request do_send(const Tensor& t, int dst, int tag, bool blocking) override;
  Request do_recv(const Tensor& t, int src, int tag, bool blocking) override;
  void do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) override;
  void do_barrier() override;

 private:
  explicit NcclComm(std::unique_ptr<Impl> impl);
  // Makes the communication stream wait for the work queued so far on the compute stream.
  void after_compute();
  // Completes the call just enqueued: synchronises (blocking) or returns an event request.
  Request finish(std::vector<Tensor> keep, bool blocking, const char* what);
  std::unique_ptr<Impl> impl_;
};

}  // namespace skein
