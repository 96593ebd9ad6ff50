// mpi_comm.h — MpiComm: the Communicator over an MPI communicator (Open MPI on CPU
// tensors). Blocking calls use MPI's blocking collectives (its tuned algorithms); the
// non-blocking ones MPI_I* with a Request whose test() calls MPI_Test. Errors on our
// communicators are returned (MPI_ERRORS_RETURN) and thrown as skein::Error naming the call.
// MPI must be initialised first (parallel/runtime.h: MpiRuntime).
#pragma once
#include <mpi.h>
#include "parallel/communicator.h"

namespace skein {

class MpiComm final : public Communicator {
 public:
  // A duplicate of MPI_COMM_WORLD (our traffic never mixes with anyone else's).
  static std::unique_ptr<MpiComm> world();
  // Wraps `comm`; when `owned`, MPI_Comm_free runs in the destructor (skipped once MPI is
  // finalised, so a communicator outliving MpiRuntime is harmless).
  MpiComm(MPI_Comm comm, bool owned);
  ~MpiComm() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend_name() const override { return "mpi"; }
  MPI_Comm handle() const { return comm_; }
  // How many ranks of this communicator share this node (MPI_Comm_split_type SHARED).
  int local_size() const;
  // Blocking all-reduces and reduce-scatters larger than this run as a sequence of MPI calls
  // on pieces of at most this many bytes (default 4 MiB; split children inherit it). Open
  // MPI 4.1 slows down sharply once a message outgrows the cache: 85 MB of f32 on 2 ranks
  // take ~75 ms (all-reduce) and ~140 ms (reduce-scatter) in one call, ~27 and ~30 ms in
  // 4 MiB pieces. (All-gathers do not suffer and are never split.)
  void set_chunk_bytes(int64_t bytes);
  int64_t chunk_bytes() const { return chunk_bytes_; }
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
  void do_barrier() override;

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  int64_t chunk_bytes_ = 4 << 20;
};

// Throws skein::Error "<what> failed: <MPI's message>" unless rc == MPI_SUCCESS.
void check_mpi(int rc, const char* what);

}  // namespace skein
