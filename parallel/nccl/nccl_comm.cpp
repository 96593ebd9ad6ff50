// nccl_comm.cpp — NcclComm: each Communicator call as one NCCL call on the comm's stream.
// NCCL has no message tags: point-to-point messages between two ranks match in order.
// Ordering: skein's compute stream (core/cuda/runtime.h) is a non-blocking stream, so nothing
// orders it against other streams implicitly: every call first makes the communication
// stream wait for an event recorded on the compute stream (the tensors it reads are written
// there); its completion is observed through the stream / an event, and wait() returns only
// when the result is in place. While waiting, the communicator's asynchronous error is
// polled (ncclCommGetAsyncError): a peer that died or a network error becomes ncclCommAbort
// and a skein::Error naming the call and NCCL's last error, instead of a hang (the launcher's
// abort_on_exception then takes the job down). UNVERIFIED: compiled, never run on a GPU.
#include "parallel/nccl/nccl_comm.h"
#include <cuda_runtime.h>
#include <nccl.h>
#include <thread>
#include "core/cuda/runtime.h"

namespace skein {

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  SKEIN_CHECK(r == ncclSuccess, "nccl: ", what, " failed: ", ncclGetErrorString(r));
}

void check_cuda(cudaError_t e, const char* what) {
  SKEIN_CHECK(e == cudaSuccess, "nccl: ", what, " failed: ", cudaGetErrorString(e));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    // bf16 sums (parallel.grad_reduce_dtype=bf16): NCCL's own bf16 reduction adds pairs in f32
    // and rounds back (a bf16 add, or widen-add-round before sm_80), the combine MpiComm's
    // user-defined op does. UNVERIFIED: no GPU has run a bf16 NCCL reduce of ours; and the
    // GradReducer / Zero1AdamW buffers are host buffers today, so they reach it only once the
    // trainer's grid runs over NCCL (launch/parallel_options.h: resolve_backend).
    case DType::bf16: return ncclBfloat16;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::sum ? ncclSum : ncclMax; }

size_t count(const Tensor& t) { return static_cast<size_t>(t.numel()); }

// Throws (after aborting the communicator) when NCCL reports an asynchronous error on comm.
void check_async(ncclComm_t comm, const char* what) {
  ncclResult_t async = ncclSuccess;
  check_nccl(ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError");
  if (async == ncclSuccess || async == ncclInProgress) return;
  const std::string last = ncclGetLastError(comm);
  ncclCommAbort(comm);  // frees its resources; the job is going down
  throw Error(detail::concat("nccl: ", what, " failed asynchronously: ", ncclGetErrorString(async),
                             last.empty() ? "" : " (" + last + ")"));
}

// Polls `ready` (a cudaEventQuery / cudaStreamQuery) until it is not cudaErrorNotReady,
// checking the communicator's asynchronous error in between.
template <typename Query>
void poll_until_done(ncclComm_t comm, const char* what, Query ready) {
  for (;;) {
    const cudaError_t e = ready();
    if (e != cudaErrorNotReady) return check_cuda(e, what);
    check_async(comm, what);
    std::this_thread::yield();
  }
}

// An enqueued operation: the event recorded after it, and the tensors it uses.
struct EventRequest final : RequestImpl {
  cudaEvent_t event = nullptr;
  ncclComm_t comm = nullptr;
  std::vector<Tensor> keep;
  const char* what;
  explicit EventRequest(const char* w) : what(w) {}
  ~EventRequest() override {
    if (event) cudaEventDestroy(event);
  }
  bool test() override {
    const cudaError_t e = cudaEventQuery(event);
    if (e == cudaErrorNotReady) {
      check_async(comm, what);
      return false;
    }
    check_cuda(e, what);
    return true;
  }
  void wait() override {
    poll_until_done(comm, what, [&] { return cudaEventQuery(event); });
  }
};

}  // namespace

struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0, rank = 0, size = 1;
  void* scratch = nullptr;  // one float on the device, for barrier()
  cudaEvent_t compute_done = nullptr;  // recorded on the compute stream before each call

  ~Impl() {
    if (scratch) cudaFree(scratch);
    if (comm) ncclCommDestroy(comm);
    if (compute_done) cudaEventDestroy(compute_done);
    if (stream) cudaStreamDestroy(stream);
  }
  void make_stream() {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&compute_done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaMalloc(&scratch, sizeof(float)), "cudaMalloc");
    check_cuda(cudaMemset(scratch, 0, sizeof(float)), "cudaMemset");
  }
};

NcclComm::NcclComm(MpiComm& mpi, int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->rank = mpi.rank();
  impl_->size = mpi.size();
  impl_->make_stream();
  ncclUniqueId id;
  if (mpi.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi.handle()), "MPI_Bcast (NCCL unique id)");
  check_nccl(ncclCommInitRank(&impl_->comm, impl_->size, id, impl_->rank), "ncclCommInitRank");
}

NcclComm::NcclComm(int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->make_stream();
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_nccl(ncclCommInitRank(&impl_->comm, 1, id, 0), "ncclCommInitRank");
}

NcclComm::NcclComm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclComm::~NcclComm() = default;

int NcclComm::rank() const { return impl_->rank; }
int NcclComm::size() const { return impl_->size; }
void* NcclComm::stream() const { return impl_->stream; }

std::unique_ptr<Communicator> NcclComm::split(int color, int key) {
  SKEIN_CHECK(color >= 0, "nccl split: color must be >= 0, got ", color);
  auto child = std::make_unique<Impl>();
  child->device = impl_->device;
  child->make_stream();
  check_nccl(ncclCommSplit(impl_->comm, color, key, &child->comm, nullptr), "ncclCommSplit");
  check_nccl(ncclCommUserRank(child->comm, &child->rank), "ncclCommUserRank");
  check_nccl(ncclCommCount(child->comm, &child->size), "ncclCommCount");
  return std::unique_ptr<Communicator>(new NcclComm(std::move(child)));
}

void NcclComm::after_compute() {
  check_cuda(cudaEventRecord(impl_->compute_done, cuda::stream()), "cudaEventRecord (compute stream)");
  check_cuda(cudaStreamWaitEvent(impl_->stream, impl_->compute_done, 0), "cudaStreamWaitEvent");
}

Request NcclComm::finish(std::vector<Tensor> keep, bool blocking, const char* what) {
  if (blocking) {
    poll_until_done(impl_->comm, what, [&] { return cudaStreamQuery(impl_->stream); });
    return Request();
  }
  auto r = std::make_unique<EventRequest>(what);
  r->comm = impl_->comm;
  r->keep = std::move(keep);
  check_cuda(cudaEventCreateWithFlags(&r->event, cudaEventDisableTiming), "cudaEventCreate");
  check_cuda(cudaEventRecord(r->event, impl_->stream), "cudaEventRecord");
  return Request(std::move(r));
}

Request NcclComm::do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) {
  after_compute();
  check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), count(t), nccl_type(t.dtype()), nccl_op(op), impl_->comm,
                           impl_->stream),
             "ncclAllReduce");
  return finish({t}, blocking, "ncclAllReduce");
}

Request NcclComm::do_all_gather(const Tensor& in, const Tensor& out, bool blocking) {
  after_compute();
  check_nccl(ncclAllGather(in.raw_data(), out.raw_data(), count(in), nccl_type(in.dtype()), impl_->comm, impl_->stream),
             "ncclAllGather");
  return finish({in, out}, blocking, "ncclAllGather");
}

Request NcclComm::do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) {
  after_compute();
  check_nccl(ncclReduceScatter(in.raw_data(), out.raw_data(), count(out), nccl_type(in.dtype()), nccl_op(op),
                               impl_->comm, impl_->stream),
             "ncclReduceScatter");
  return finish({in, out}, blocking, "ncclReduceScatter");
}

Request NcclComm::do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) {
  after_compute();
  check_nccl(ncclReduce(in.raw_data(), out.raw_data(), count(in), nccl_type(in.dtype()), nccl_op(op), root,
                        impl_->comm, impl_->stream),
             "ncclReduce");
  return finish({in, out}, blocking, "ncclReduce");
}

Request NcclComm::do_broadcast(const Tensor& t, int root, bool blocking) {
  after_compute();
  check_nccl(ncclBroadcast(t.raw_data(), t.raw_data(), count(t), nccl_type(t.dtype()), root, impl_->comm,
                           impl_->stream),
             "ncclBroadcast");
  return finish({t}, blocking, "ncclBroadcast");
}

Request NcclComm::do_send(const Tensor& t, int dst, int, bool blocking) {
  after_compute();
  check_nccl(ncclSend(t.raw_data(), count(t), nccl_type(t.dtype()), dst, impl_->comm, impl_->stream), "ncclSend");
  return finish({t}, blocking, "ncclSend");
}

Request NcclComm::do_recv(const Tensor& t, int src, int, bool blocking) {
  after_compute();
  check_nccl(ncclRecv(t.raw_data(), count(t), nccl_type(t.dtype()), src, impl_->comm, impl_->stream), "ncclRecv");
  return finish({t}, blocking, "ncclRecv");
}

void NcclComm::do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int) {
  after_compute();
  // Grouped, so neither side waits for the other's send to be posted first.
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  check_nccl(ncclSend(send_t.raw_data(), count(send_t), nccl_type(send_t.dtype()), dst, impl_->comm, impl_->stream),
             "ncclSend");
  check_nccl(ncclRecv(recv_t.raw_data(), count(recv_t), nccl_type(recv_t.dtype()), src, impl_->comm, impl_->stream),
             "ncclRecv");
  check_nccl(ncclGroupEnd(), "ncclGroupEnd");
  finish({}, true, "ncclSend/ncclRecv");
}

void NcclComm::do_barrier() {
  after_compute();
  check_nccl(ncclAllReduce(impl_->scratch, impl_->scratch, 1, ncclFloat32, ncclSum, impl_->comm, impl_->stream),
             "ncclAllReduce (barrier)");
  finish({}, true, "barrier");
}

}  // namespace skein
