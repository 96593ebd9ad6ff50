// communicator.cpp — the Communicator front end (argument checks, byte counting), Request,
// CommStats, and the single-process backend.
#include "parallel/communicator.h"
#include <cstring>
#include <exception>
#include <sstream>

namespace skein {

const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::sum ? "sum" : "max"; }

// ---- CommStats -----------------------------------------------------------------------------
void CommStats::add(const std::string& kind, int64_t sent, int64_t received) {
  CommCounter& c = counters_[kind];
  c.calls += 1;
  c.bytes_sent += sent;
  c.bytes_received += received;
}

CommCounter CommStats::get(const std::string& kind) const {
  auto it = counters_.find(kind);
  return it == counters_.end() ? CommCounter{} : it->second;
}

int64_t CommStats::total_sent() const {
  int64_t n = 0;
  for (const auto& [k, c] : counters_) n += c.bytes_sent;
  return n;
}

int64_t CommStats::total_received() const {
  int64_t n = 0;
  for (const auto& [k, c] : counters_) n += c.bytes_received;
  return n;
}

std::string CommStats::str() const {
  std::ostringstream os;
  const char* sep = "";
  for (const auto& [k, c] : counters_) {
    os << sep << k << ": " << c.calls << " calls, " << c.bytes_sent << " B sent, " << c.bytes_received
       << " B received";
    sep = "; ";
  }
  return os.str();
}

// ---- Request -------------------------------------------------------------------------------
Request& Request::operator=(Request&& other) {
  if (this != &other) {
    wait();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Request::~Request() {
  if (!impl_) return;
  if (std::uncaught_exceptions() > 0) {
    (void)impl_.release();  // leaked on purpose: see the header
    return;
  }
  try {
    impl_->wait();
  } catch (...) {
    // A destructor must not throw; the error already reached whoever waits next.
  }
}

bool Request::test() {
  if (impl_ && impl_->test()) impl_.reset();
  return impl_ == nullptr;
}

void Request::wait() {
  if (!impl_) return;
  impl_->wait();
  impl_.reset();
}

void wait_all(std::vector<Request>& requests) {
  for (Request& r : requests) r.wait();
}

// ---- front end: checks and byte counts ---------------------------------------------------
void Communicator::check_tensor(const Tensor& t, const char* op) const {
  SKEIN_CHECK(t.defined(), backend_name(), " ", op, ": the tensor is undefined");
  SKEIN_CHECK(t.is_contiguous(), backend_name(), " ", op, ": tensor ", shape_str(t.shape()),
              " is not contiguous");
  SKEIN_CHECK(t.device() == device(), backend_name(), " ", op, ": tensor ", shape_str(t.shape()), " is on ",
              device_name(t.device()), " but this communicator works on ", device_name(device()));
}

void Communicator::check_peer(int peer, const char* op, const char* what) const {
  SKEIN_CHECK(peer >= 0 && peer < size(), backend_name(), " ", op, ": ", what, " ", peer,
              " is out of range for a communicator of size ", size());
}

namespace {
int64_t nbytes(const Tensor& t) { return t.numel() * static_cast<int64_t>(dtype_size(t.dtype())); }

// bf16 has one reduction: the f32-accumulating sum (see the header).
void check_bf16_op(const Communicator& c, const Tensor& t, ReduceOp op, const char* what) {
  SKEIN_CHECK(!t.defined() || t.dtype() != DType::bf16 || op == ReduceOp::sum, c.backend_name(), " ", what, ": ",
              reduce_op_name(op), " over bf16 is not supported (bf16 reduces with sum only)");
}
}  // namespace

// Each prepare_* checks one call's arguments and counts its bytes (see the header's table).
void Communicator::prepare_all_reduce(const Tensor& t) {
  check_tensor(t, "all_reduce");
  const int64_t p = size(), chunk = (t.numel() + p - 1) / p;
  const int64_t b = 2 * (p - 1) * chunk * static_cast<int64_t>(dtype_size(t.dtype()));
  stats_.add("all_reduce", b, b);
}

void Communicator::prepare_all_gather(const Tensor& in, const Tensor& out) {
  check_tensor(in, "all_gather");
  check_tensor(out, "all_gather");
  SKEIN_CHECK(in.dtype() == out.dtype() && out.numel() == in.numel() * size(), backend_name(),
              " all_gather: output ", shape_str(out.shape()), " ", dtype_name(out.dtype()), " must hold ", size(),
              " x input ", shape_str(in.shape()), " ", dtype_name(in.dtype()));
  SKEIN_CHECK(!in.same_storage(out), backend_name(), " all_gather: input and output share storage");
  const int64_t b = (size() - 1) * nbytes(in);
  stats_.add("all_gather", b, b);
}

void Communicator::prepare_reduce_scatter(const Tensor& in, const Tensor& out) {
  check_tensor(in, "reduce_scatter");
  check_tensor(out, "reduce_scatter");
  SKEIN_CHECK(in.dtype() == out.dtype() && in.numel() == out.numel() * size(), backend_name(),
              " reduce_scatter: input ", shape_str(in.shape()), " ", dtype_name(in.dtype()), " must hold ", size(),
              " x output ", shape_str(out.shape()), " ", dtype_name(out.dtype()));
  SKEIN_CHECK(!in.same_storage(out), backend_name(), " reduce_scatter: input and output share storage");
  const int64_t b = (size() - 1) * nbytes(out);
  stats_.add("reduce_scatter", b, b);
}

void Communicator::prepare_broadcast(const Tensor& t, int root) {
  check_tensor(t, "broadcast");
  check_peer(root, "broadcast", "root");
  const bool moves = size() > 1;
  stats_.add("broadcast", moves && rank() == root ? nbytes(t) : 0, moves && rank() != root ? nbytes(t) : 0);
}

void Communicator::prepare_reduce(const Tensor& in, const Tensor& out, int root) {
  check_tensor(in, "reduce");
  check_tensor(out, "reduce");
  check_peer(root, "reduce", "root");
  SKEIN_CHECK(in.dtype() == out.dtype() && in.numel() == out.numel(), backend_name(), " reduce: output ",
              shape_str(out.shape()), " ", dtype_name(out.dtype()), " must match input ", shape_str(in.shape()), " ",
              dtype_name(in.dtype()));
  SKEIN_CHECK(!in.same_storage(out), backend_name(), " reduce: input and output share storage");
  const int64_t p = size(), block = (in.numel() + p - 1) / p * static_cast<int64_t>(dtype_size(in.dtype()));
  const int64_t rs = (p - 1) * block, gathered = p > 1 ? (rank() == root ? (p - 1) * block : block) : 0;
  stats_.add("reduce", rs + (rank() == root ? 0 : gathered), rs + (rank() == root ? gathered : 0));
}

void Communicator::prepare_p2p(const Tensor& t, int peer, bool sending) {
  check_tensor(t, sending ? "send" : "recv");
  check_peer(peer, sending ? "send" : "recv", sending ? "destination" : "source");
  stats_.add(sending ? "send" : "recv", sending ? nbytes(t) : 0, sending ? 0 : nbytes(t));
}

void Communicator::all_reduce(const Tensor& t, ReduceOp op) {
  check_bf16_op(*this, t, op, "all_reduce");
  prepare_all_reduce(t);
  do_all_reduce(t, op, true).wait();
}

Request Communicator::iall_reduce(const Tensor& t, ReduceOp op) {
  check_bf16_op(*this, t, op, "all_reduce");
  prepare_all_reduce(t);
  return do_all_reduce(t, op, false);
}

Tensor Communicator::all_gather(const Tensor& in) {
  SKEIN_CHECK(in.defined(), backend_name(), " all_gather: the tensor is undefined");
  Shape shape = in.shape();
  shape.insert(shape.begin(), size());
  Tensor out = Tensor::empty(shape, in.dtype(), device());
  all_gather_into(in, out);
  return out;
}

void Communicator::all_gather_into(const Tensor& in, const Tensor& out) {
  prepare_all_gather(in, out);
  do_all_gather(in, out, true).wait();
}

Request Communicator::iall_gather_into(const Tensor& in, const Tensor& out) {
  prepare_all_gather(in, out);
  return do_all_gather(in, out, false);
}

Tensor Communicator::reduce_scatter(const Tensor& in, ReduceOp op) {
  SKEIN_CHECK(in.defined() && in.dim() >= 1 && in.size(0) % size() == 0, backend_name(),
              " reduce_scatter: input ", in.defined() ? shape_str(in.shape()) : "undefined",
              " needs a leading dim divisible by the communicator size ", size());
  Shape shape = in.shape();
  shape[0] /= size();
  Tensor out = Tensor::empty(shape, in.dtype(), device());
  reduce_scatter_into(in, out, op);
  return out;
}

void Communicator::reduce_scatter_into(const Tensor& in, const Tensor& out, ReduceOp op) {
  check_bf16_op(*this, in, op, "reduce_scatter");
  prepare_reduce_scatter(in, out);
  do_reduce_scatter(in, out, op, true).wait();
}

Request Communicator::ireduce_scatter_into(const Tensor& in, const Tensor& out, ReduceOp op) {
  check_bf16_op(*this, in, op, "reduce_scatter");
  prepare_reduce_scatter(in, out);
  return do_reduce_scatter(in, out, op, false);
}

void Communicator::reduce_into(const Tensor& in, const Tensor& out, int root, ReduceOp op) {
  check_bf16_op(*this, in, op, "reduce");
  prepare_reduce(in, out, root);
  do_reduce(in, out, root, op, true).wait();
}

Request Communicator::ireduce_into(const Tensor& in, const Tensor& out, int root, ReduceOp op) {
  check_bf16_op(*this, in, op, "reduce");
  prepare_reduce(in, out, root);
  return do_reduce(in, out, root, op, false);
}

void Communicator::broadcast(const Tensor& t, int root) {
  prepare_broadcast(t, root);
  do_broadcast(t, root, true).wait();
}

Request Communicator::ibroadcast(const Tensor& t, int root) {
  prepare_broadcast(t, root);
  return do_broadcast(t, root, false);
}

void Communicator::send(const Tensor& t, int dst, int tag) {
  prepare_p2p(t, dst, true);
  do_send(t, dst, tag, true).wait();
}

Request Communicator::isend(const Tensor& t, int dst, int tag) {
  prepare_p2p(t, dst, true);
  return do_send(t, dst, tag, false);
}

void Communicator::recv(const Tensor& t, int src, int tag) {
  prepare_p2p(t, src, false);
  do_recv(t, src, tag, true).wait();
}

Request Communicator::irecv(const Tensor& t, int src, int tag) {
  prepare_p2p(t, src, false);
  return do_recv(t, src, tag, false);
}

void Communicator::sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) {
  check_tensor(send_t, "sendrecv");
  check_tensor(recv_t, "sendrecv");
  check_peer(dst, "sendrecv", "destination");
  check_peer(src, "sendrecv", "source");
  SKEIN_CHECK(!send_t.same_storage(recv_t), backend_name(), " sendrecv: send and receive buffers share storage");
  stats_.add("sendrecv", nbytes(send_t), nbytes(recv_t));
  do_sendrecv(send_t, dst, recv_t, src, tag);
}

void Communicator::barrier() {
  stats_.add("barrier", 0, 0);
  do_barrier();
}

// ---- SingleProcessComm ---------------------------------------------------------------------
void copy_bytes(const Tensor& dst, const Tensor& src) {
  SKEIN_ASSERT(dst.dtype() == src.dtype() && dst.numel() == src.numel() && dst.is_contiguous() &&
               src.is_contiguous() && dst.device() == Device::cpu && src.device() == Device::cpu);
  if (dst.raw_data() != src.raw_data() && src.numel() > 0)
    std::memcpy(dst.raw_data(), src.raw_data(), static_cast<size_t>(nbytes(src)));
}

std::unique_ptr<Communicator> SingleProcessComm::split(int color, int) {
  SKEIN_CHECK(color >= 0, "single split: color must be >= 0, got ", color);
  return std::make_unique<SingleProcessComm>();
}

Request SingleProcessComm::do_all_reduce(const Tensor&, ReduceOp, bool) { return Request(); }

Request SingleProcessComm::do_all_gather(const Tensor& in, const Tensor& out, bool) {
  copy_bytes(out, in);
  return Request();
}

Request SingleProcessComm::do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp, bool) {
  copy_bytes(out, in);
  return Request();
}

Request SingleProcessComm::do_reduce(const Tensor& in, const Tensor& out, int, ReduceOp, bool) {
  copy_bytes(out, in);
  return Request();
}

Request SingleProcessComm::do_broadcast(const Tensor&, int, bool) { return Request(); }

Request SingleProcessComm::do_send(const Tensor& t, int, int tag, bool) {
  (*mailbox_)[tag].push_back(t.clone());
  return Request();
}

namespace {
// Takes the oldest message with `tag` into t; false when none is waiting.
bool take(std::map<int, std::vector<Tensor>>& box, const Tensor& t, int tag) {
  auto it = box.find(tag);
  if (it == box.end() || it->second.empty()) return false;
  Tensor m = it->second.front();
  SKEIN_CHECK(m.numel() == t.numel() && m.dtype() == t.dtype(), "single recv: the message with tag ", tag, " is ",
              shape_str(m.shape()), " ", dtype_name(m.dtype()), " but the receive buffer is ", shape_str(t.shape()),
              " ", dtype_name(t.dtype()));
  copy_bytes(t, m);
  it->second.erase(it->second.begin());
  return true;
}

struct MailboxRecv final : RequestImpl {
  std::shared_ptr<std::map<int, std::vector<Tensor>>> box;
  Tensor t;
  int tag;
  MailboxRecv(std::shared_ptr<std::map<int, std::vector<Tensor>>> b, Tensor t_, int tag_)
      : box(std::move(b)), t(std::move(t_)), tag(tag_) {}
  bool test() override { return take(*box, t, tag); }
  void wait() override {
    SKEIN_CHECK(take(*box, t, tag), "single recv: no message with tag ", tag,
                " was sent (waiting would deadlock a world of one)");
  }
};
}  // namespace

Request SingleProcessComm::do_recv(const Tensor& t, int, int tag, bool blocking) {
  if (blocking) {
    SKEIN_CHECK(take(*mailbox_, t, tag), "single recv: no message with tag ", tag,
                " was sent (a blocking recv would deadlock a world of one)");
    return Request();
  }
  if (take(*mailbox_, t, tag)) return Request();
  return Request(std::make_unique<MailboxRecv>(mailbox_, t, tag));
}

void SingleProcessComm::do_sendrecv(const Tensor& send_t, int, const Tensor& recv_t, int, int) {
  SKEIN_CHECK(send_t.numel() == recv_t.numel() && send_t.dtype() == recv_t.dtype(),
              "single sendrecv: sending ", shape_str(send_t.shape()), " ", dtype_name(send_t.dtype()),
              " to itself but receiving into ", shape_str(recv_t.shape()), " ", dtype_name(recv_t.dtype()));
  copy_bytes(recv_t, send_t);
}

}  // namespace skein
