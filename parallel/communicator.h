// communicator.h — the Communicator interface every parallel mode talks through: rank and
// size, collectives (all-reduce, all-gather, reduce-scatter, broadcast, barrier) and
// point-to-point messages (send, recv, sendrecv), blocking and non-blocking (a Request with
// test() / wait()), on contiguous f32 / f64 / i32 / i64 tensors; split() into
// sub-communicators; and CommStats, the per-kind count of calls and bytes.
// Backends: SingleProcessComm (here; world 1), MpiComm (parallel/mpi_comm.h),
// NcclComm (parallel/nccl/nccl_comm.h, CUDA builds only).
//
// Conventions, the same on every backend:
//  * Collectives are called by every rank of the communicator, in the same order.
//  * all_gather stacks: in [...] -> out [size, ...] (rank r's tensor at out[r]); because the
//    result is contiguous, out.view({-1, ...}) is the concatenation along dim 0 for free.
//  * reduce_scatter is its inverse: in [size * n, ...] -> out [n, ...], rank r receiving the
//    reduction of rows [r n, (r + 1) n) of every rank's input.
//  * Tensors are contiguous, on the communicator's device (cpu, or cuda for NCCL). In-place
//    ops (all_reduce, broadcast, recv) write through the handle: views share the write.
//  * bf16 tensors reduce (all_reduce, reduce_scatter, reduce) with sum only: each combine of
//    two partial sums widens both to f32, adds in f32 and rounds the sum back to bf16
//    (core/bf16.h, nearest-even), so p ranks' sum is rounded p - 1 times, never accumulated
//    in bf16 arithmetic. max over bf16 is an error. (Gradients travel this way with
//    parallel.grad_reduce_dtype=bf16: half the bytes of f32; parallel/data_parallel.h.)
//  * Byte counts (CommStats) are the per-rank volume of the bandwidth-optimal (ring)
//    algorithm, so they are exact and backend-independent (what MPI actually moves depends
//    on the algorithm it picks, which is not observable): with p ranks and e bytes/element,
//      all_reduce of N elements   sent = received = 2 (p - 1) ceil(N / p) e
//      all_gather, m per rank      sent = received = (p - 1) m e
//      reduce_scatter, m out       sent = received = (p - 1) m e
//      reduce of N to a root       sent = (p - 1) ceil(N / p) e (+ ceil(N / p) e off the
//                                  root), received = the same with the roles swapped
//                                  (reduce-scatter, then a gather of the blocks to the root)
//      broadcast of N              root sends N e, every other rank receives N e
//      send / recv / sendrecv      the message bytes, sent or received
//      barrier                     0 bytes
//    Non-blocking calls count under the same kind as their blocking twins, when issued.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace skein {

enum class ReduceOp { sum, max };
const char* reduce_op_name(ReduceOp op);

// ---- statistics ----------------------------------------------------------------------------
struct CommCounter {
  int64_t calls = 0;
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
};

class CommStats {
 public:
  void add(const std::string& kind, int64_t sent, int64_t received);
  // The counter of one kind ("all_reduce", "all_gather", "reduce_scatter", "broadcast",
  // "send", "recv", "sendrecv", "barrier"); zeros when never called.
  CommCounter get(const std::string& kind) const;
  const std::map<std::string, CommCounter>& counters() const { return counters_; }
  int64_t total_sent() const;
  int64_t total_received() const;
  void reset() { counters_.clear(); }
  std::string str() const;  // "all_reduce: 3 calls, 120 B sent, 120 B received; ..."

 private:
  std::map<std::string, CommCounter> counters_;
};

// ---- requests ------------------------------------------------------------------------------
// What a backend implements for one in-flight operation. It owns (keeps alive) every buffer
// the operation reads or writes until it completes.
struct RequestImpl {
  virtual ~RequestImpl() = default;
  virtual bool test() = 0;  // progresses the backend; true once complete
  virtual void wait() = 0;
};

// The handle a non-blocking call returns. test() progresses the backend (MPI_Test: Open MPI
// has no asynchronous progress thread, so an operation advances only inside MPI calls) and
// says whether it is complete; wait() blocks until it is. The result is in place once either
// says so. A default-constructed Request is complete.
// Dropping a pending Request waits for it — except while an exception unwinds, when it is
// leaked instead (buffers kept alive, never waited), so an error on one rank reaches
// abort_on_exception (parallel/runtime.h) instead of hanging in a destructor.
class Request {
 public:
  Request() = default;
  explicit Request(std::unique_ptr<RequestImpl> impl) : impl_(std::move(impl)) {}
  Request(Request&& other) noexcept = default;
  Request& operator=(Request&& other);
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();

  bool test();
  void wait();
  bool done() const { return impl_ == nullptr; }

 private:
  std::unique_ptr<RequestImpl> impl_;  // null once complete
};

// Waits for every request, in order.
void wait_all(std::vector<Request>& requests);

// ---- the interface -------------------------------------------------------------------------
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend_name() const = 0;  // "single", "mpi", "nccl"
  virtual Device device() const { return Device::cpu; }

  // Every rank's t reduced element-wise into every rank's t.  t: [...]
  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum);
  Request iall_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum);
  // in: [...] -> a new [size, ...] tensor, rank r's input at index r.
  Tensor all_gather(const Tensor& in);
  // in: [...], out: size * in.numel() elements (any shape, e.g. [size, ...] or [size * n]).
  void all_gather_into(const Tensor& in, const Tensor& out);
  Request iall_gather_into(const Tensor& in, const Tensor& out);
  // in: [size * n, ...] -> a new [n, ...] tensor: this rank's block of the reduction.
  Tensor reduce_scatter(const Tensor& in, ReduceOp op = ReduceOp::sum);
  // in: size * out.numel() elements; out: this rank's block (elements [r m, (r + 1) m)).
  void reduce_scatter_into(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  Request ireduce_scatter_into(const Tensor& in, const Tensor& out, ReduceOp op = ReduceOp::sum);
  // Every rank's in reduced element-wise into root's out (same dtype and numel; only root's
  // out is written). ZeRO-1's overlapped reduce: one per rank's shard, launched as the
  // shard's gradients become final.  in: [...], out: [...]
  void reduce_into(const Tensor& in, const Tensor& out, int root, ReduceOp op = ReduceOp::sum);
  Request ireduce_into(const Tensor& in, const Tensor& out, int root, ReduceOp op = ReduceOp::sum);
  // root's t copied into every rank's t.  t: [...]
  void broadcast(const Tensor& t, int root);
  Request ibroadcast(const Tensor& t, int root);
  // Point to point; recv writes into t, whose shape and dtype must match what was sent.
  void send(const Tensor& t, int dst, int tag = 0);
  void recv(const Tensor& t, int src, int tag = 0);
  Request isend(const Tensor& t, int dst, int tag = 0);
  Request irecv(const Tensor& t, int src, int tag = 0);
  // Sends `send_t` to dst while receiving `recv_t` from src (no ordering deadlock: the ring
  // shift of Ring Attention is sendrecv(k, next, k_in, prev)).
  void sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag = 0);
  void barrier();

  // A sub-communicator of the ranks that pass the same color (>= 0), ordered by key (ties by
  // rank). Collective over this communicator. The child has its own, fresh CommStats.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  CommStats& stats() { return stats_; }
  const CommStats& stats() const { return stats_; }

 protected:
  // The backend half of each call, after the arguments were checked and the bytes counted.
  // blocking: complete before returning (return Request{}); else return the pending request.
  virtual Request do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) = 0;
  virtual Request do_all_gather(const Tensor& in, const Tensor& out, bool blocking) = 0;
  virtual Request do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) = 0;
  virtual Request do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) = 0;
  virtual Request do_broadcast(const Tensor& t, int root, bool blocking) = 0;
  virtual Request do_send(const Tensor& t, int dst, int tag, bool blocking) = 0;
  virtual Request do_recv(const Tensor& t, int src, int tag, bool blocking) = 0;
  virtual void do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) = 0;
  virtual void do_barrier() = 0;

 private:
  void check_tensor(const Tensor& t, const char* op) const;
  void prepare_all_reduce(const Tensor& t);
  void prepare_all_gather(const Tensor& in, const Tensor& out);
  void prepare_reduce_scatter(const Tensor& in, const Tensor& out);
  void prepare_broadcast(const Tensor& t, int root);
  void prepare_reduce(const Tensor& in, const Tensor& out, int root);
  void prepare_p2p(const Tensor& t, int peer, bool sending);
  void check_peer(int peer, const char* op, const char* what) const;
  CommStats stats_;
};

// ---- the single-process backend ------------------------------------------------------------
// World of one: collectives are identities or copies, point-to-point goes through a local
// mailbox (a send to self is queued; a recv takes the oldest message with that tag). A
// blocking recv with no message waiting is an error (it would deadlock).
class SingleProcessComm final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* backend_name() const override { return "single"; }
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
  void do_barrier() override {}

 private:
  std::shared_ptr<std::map<int, std::vector<Tensor>>> mailbox_ =
      std::make_shared<std::map<int, std::vector<Tensor>>>();
};

// Copies the bytes of src into dst (same dtype and numel; contiguous; any shapes; cpu).
void copy_bytes(const Tensor& dst, const Tensor& src);

}  // namespace skein
