// mpi_comm.cpp — MpiComm: each Communicator call as one MPI call (blocking or MPI_I*).
#include "parallel/mpi_comm.h"
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace skein {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(detail::concat("mpi: ", what, " failed: ", std::string(msg, static_cast<size_t>(len))));
}

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::bf16: return MPI_UINT16_T;  // moved as bits; reduced by bf16_sum_op below
  }
  return MPI_DATATYPE_NULL;
}

// The bf16 sum (communicator.h): MPI has no bf16 type, so bf16 moves as 2-byte words and
// reduces with this user-defined, commutative op. Each call combines two partial sums: both
// widened to f32 (exact), added in f32, rounded back (nearest-even, core/bf16.h).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

// Created once, on first use (MPI is initialised by then); MPI_Finalize releases it.
MPI_Op bf16_sum_op() {
  static const MPI_Op op = [] {
    MPI_Op o = MPI_OP_NULL;
    check_mpi(MPI_Op_create(&bf16_sum, /*commute=*/1, &o), "MPI_Op_create");
    return o;
  }();
  return op;
}

// The front end refused every op but sum for bf16 (Communicator::check_bf16_op).
MPI_Op mpi_op(ReduceOp op, DType t) {
  if (t == DType::bf16) return bf16_sum_op();
  return op == ReduceOp::sum ? MPI_SUM : MPI_MAX;
}

// MPI counts are int: larger messages would need derived types, which nothing here sends.
int mpi_count(int64_t n, const char* op) {
  SKEIN_CHECK(n <= INT_MAX, "mpi ", op, ": ", n, " elements exceed MPI's int count (", INT_MAX, ")");
  return static_cast<int>(n);
}

// One pending MPI operation and the tensors it reads or writes (kept alive until done).
struct MpiRequest final : RequestImpl {
  MPI_Request req = MPI_REQUEST_NULL;
  std::vector<Tensor> keep;
  const char* what;
  explicit MpiRequest(const char* w) : what(w) {}
  bool test() override {
    int flag = 0;
    check_mpi(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), what);
    return flag != 0;
  }
  void wait() override { check_mpi(MPI_Wait(&req, MPI_STATUS_IGNORE), what); }
};

}  // namespace

std::unique_ptr<MpiComm> MpiComm::world() {
  int init = 0;
  MPI_Initialized(&init);
  SKEIN_CHECK(init, "MpiComm::world: MPI is not initialised (create an MpiRuntime first)");
  MPI_Comm dup;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup");
  return std::make_unique<MpiComm>(dup, true);
}

MpiComm::MpiComm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && !finalized) MPI_Comm_free(&comm_);
}

int MpiComm::local_size() const {
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

void MpiComm::set_chunk_bytes(int64_t bytes) {
  SKEIN_CHECK(bytes > 0, "MpiComm::set_chunk_bytes: need > 0 bytes, got ", bytes);
  chunk_bytes_ = bytes;
}

std::unique_ptr<Communicator> MpiComm::split(int color, int key) {
  SKEIN_CHECK(color >= 0, "mpi split: color must be >= 0, got ", color);
  MPI_Comm sub;
  check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  auto child = std::make_unique<MpiComm>(sub, true);
  child->chunk_bytes_ = chunk_bytes_;
  return child;
}

Request MpiComm::do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) {
  const int n = mpi_count(t.numel(), "all_reduce");
  if (blocking) {
    const int64_t esize = static_cast<int64_t>(dtype_size(t.dtype()));
    const int64_t piece = std::max<int64_t>(1, chunk_bytes_ / esize);
    char* data = static_cast<char*>(t.raw_data());
    for (int64_t at = 0; at < n; at += piece) {  // pieces: see set_chunk_bytes
      const int len = static_cast<int>(std::min<int64_t>(piece, n - at));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + at * esize, len, mpi_type(t.dtype()), mpi_op(op, t.dtype()), comm_),
                "MPI_Allreduce");
    }
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Iallreduce");
  r->keep = {t};
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), n, mpi_type(t.dtype()), mpi_op(op, t.dtype()), comm_, &r->req),
            "MPI_Iallreduce");
  return Request(std::move(r));
}

Request MpiComm::do_all_gather(const Tensor& in, const Tensor& out, bool blocking) {
  const int n = mpi_count(in.numel(), "all_gather");
  mpi_count(out.numel(), "all_gather");
  const MPI_Datatype ty = mpi_type(in.dtype());
  if (blocking) {
    check_mpi(MPI_Allgather(in.raw_data(), n, ty, out.raw_data(), n, ty, comm_), "MPI_Allgather");
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Iallgather");
  r->keep = {in, out};
  check_mpi(MPI_Iallgather(in.raw_data(), n, ty, out.raw_data(), n, ty, comm_, &r->req), "MPI_Iallgather");
  return Request(std::move(r));
}

Request MpiComm::do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) {
  const int n = mpi_count(out.numel(), "reduce_scatter");
  mpi_count(in.numel(), "reduce_scatter");
  const MPI_Datatype ty = mpi_type(in.dtype());
  if (blocking) {
    // MPI_Reduce_scatter with equal counts, not MPI_Reduce_scatter_block: the same result,
    // but Open MPI 4.1's tuned component runs it ~3x faster (25 MiB on 2 ranks: 7 vs 20 ms).
    const size_t esize = dtype_size(in.dtype());
    const int64_t piece = std::max<int64_t>(1, chunk_bytes_ / static_cast<int64_t>(esize * size_));
    if (n <= piece) {
      const std::vector<int> counts(static_cast<size_t>(size_), n);
      check_mpi(MPI_Reduce_scatter(in.raw_data(), out.raw_data(), counts.data(), ty, mpi_op(op, in.dtype()), comm_),
                "MPI_Reduce_scatter");
      return Request();
    }
    // In pieces: elements [at, at + len) of every rank's block, packed side by side.
    std::vector<char> packed(static_cast<size_t>(piece * size_) * esize);
    const char* src = static_cast<const char*>(in.raw_data());
    char* dst = static_cast<char*>(out.raw_data());
    for (int64_t at = 0; at < n; at += piece) {
      const int len = static_cast<int>(std::min<int64_t>(piece, n - at));
      for (int q = 0; q < size_; ++q)
        std::memcpy(packed.data() + static_cast<size_t>(q) * len * esize,
                    src + (static_cast<size_t>(q) * n + static_cast<size_t>(at)) * esize, len * esize);
      const std::vector<int> counts(static_cast<size_t>(size_), len);
      check_mpi(MPI_Reduce_scatter(packed.data(), dst + at * static_cast<int64_t>(esize), counts.data(), ty,
                                   mpi_op(op, in.dtype()), comm_),
                "MPI_Reduce_scatter");
    }
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Ireduce_scatter_block");
  r->keep = {in, out};
  check_mpi(MPI_Ireduce_scatter_block(in.raw_data(), out.raw_data(), n, ty, mpi_op(op, in.dtype()), comm_, &r->req),
            "MPI_Ireduce_scatter_block");
  return Request(std::move(r));
}

Request MpiComm::do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) {
  const int n = mpi_count(in.numel(), "reduce");
  const MPI_Datatype ty = mpi_type(in.dtype());
  if (blocking) {
    check_mpi(MPI_Reduce(in.raw_data(), out.raw_data(), n, ty, mpi_op(op, in.dtype()), root, comm_), "MPI_Reduce");
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Ireduce");
  r->keep = {in, out};
  check_mpi(MPI_Ireduce(in.raw_data(), out.raw_data(), n, ty, mpi_op(op, in.dtype()), root, comm_, &r->req),
            "MPI_Ireduce");
  return Request(std::move(r));
}

Request MpiComm::do_broadcast(const Tensor& t, int root, bool blocking) {
  const int n = mpi_count(t.numel(), "broadcast");
  if (blocking) {
    check_mpi(MPI_Bcast(t.raw_data(), n, mpi_type(t.dtype()), root, comm_), "MPI_Bcast");
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Ibcast");
  r->keep = {t};
  check_mpi(MPI_Ibcast(t.raw_data(), n, mpi_type(t.dtype()), root, comm_, &r->req), "MPI_Ibcast");
  return Request(std::move(r));
}

Request MpiComm::do_send(const Tensor& t, int dst, int tag, bool blocking) {
  const int n = mpi_count(t.numel(), "send");
  if (blocking) {
    check_mpi(MPI_Send(t.raw_data(), n, mpi_type(t.dtype()), dst, tag, comm_), "MPI_Send");
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Isend");
  r->keep = {t};
  check_mpi(MPI_Isend(t.raw_data(), n, mpi_type(t.dtype()), dst, tag, comm_, &r->req), "MPI_Isend");
  return Request(std::move(r));
}

Request MpiComm::do_recv(const Tensor& t, int src, int tag, bool blocking) {
  const int n = mpi_count(t.numel(), "recv");
  if (blocking) {
    check_mpi(MPI_Recv(t.raw_data(), n, mpi_type(t.dtype()), src, tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
    return Request();
  }
  auto r = std::make_unique<MpiRequest>("MPI_Irecv");
  r->keep = {t};
  check_mpi(MPI_Irecv(t.raw_data(), n, mpi_type(t.dtype()), src, tag, comm_, &r->req), "MPI_Irecv");
  return Request(std::move(r));
}

void MpiComm::do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) {
  check_mpi(MPI_Sendrecv(send_t.raw_data(), mpi_count(send_t.numel(), "sendrecv"), mpi_type(send_t.dtype()), dst,
                         tag, recv_t.raw_data(), mpi_count(recv_t.numel(), "sendrecv"), mpi_type(recv_t.dtype()),
                         src, tag, comm_, MPI_STATUS_IGNORE),
            "MPI_Sendrecv");
}

void MpiComm::do_barrier() { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

}  // namespace skein
