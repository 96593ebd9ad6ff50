// staged_comm.cpp — StagedComm (parallel/staged_comm.h): stage in, host call, stage out.
#include "parallel/staged_comm.h"
#include <functional>
#include "core/backend.h"

namespace skein {

namespace {

size_t nbytes(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

// A host copy of t (always a fresh tensor: the host call may write it).
Tensor stage_in(const Tensor& t) { return t.device() == Device::cpu ? t.clone() : t.to(Device::cpu); }

// A host tensor with t's dtype and element count, for a result.
Tensor host_like(const Tensor& t) { return Tensor::empty({t.numel()}, t.dtype(), Device::cpu); }

// dst (on its device) = the bytes of host.
void stage_out(const Tensor& dst, const Tensor& host) {
  if (dst.numel() == 0) return;
  if (dst.device() == Device::cpu) return copy_bytes(dst, host.view(dst.shape()));
  backend(dst.device()).copy(dst.raw_data(), host.raw_data(), nbytes(dst), CopyKind::host_to_device);
}

// The host request, then the copy back once it completes.
struct StagedRequest final : RequestImpl {
  Request inner;
  std::function<void()> done;
  StagedRequest(Request r, std::function<void()> d) : inner(std::move(r)), done(std::move(d)) {}
  bool test() override {
    if (!inner.test()) return false;
    done();
    return true;
  }
  void wait() override {
    inner.wait();
    done();
  }
};

// Blocking: run the host call now and copy back; else a request that copies back when done.
Request finish(Request host_req, bool blocking, std::function<void()> done) {
  if (blocking) {
    host_req.wait();
    done();
    return Request();
  }
  return Request(std::make_unique<StagedRequest>(std::move(host_req), std::move(done)));
}

}  // namespace

StagedComm::StagedComm(std::unique_ptr<Communicator> host, Device device) : host_(std::move(host)), device_(device) {
  SKEIN_CHECK(host_ && host_->device() == Device::cpu, "StagedComm: the host communicator must work on cpu tensors");
}

std::unique_ptr<Communicator> StagedComm::split(int color, int key) {
  return std::make_unique<StagedComm>(host_->split(color, key), device_);
}

Request StagedComm::do_all_reduce(const Tensor& t, ReduceOp op, bool blocking) {
  Tensor h = stage_in(t);
  return finish(host_->iall_reduce(h, op), blocking, [t, h] { stage_out(t, h); });
}

Request StagedComm::do_all_gather(const Tensor& in, const Tensor& out, bool blocking) {
  Tensor hin = stage_in(in), hout = host_like(out);
  return finish(host_->iall_gather_into(hin, hout), blocking, [out, hout] { stage_out(out, hout); });
}

Request StagedComm::do_reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op, bool blocking) {
  Tensor hin = stage_in(in), hout = host_like(out);
  return finish(host_->ireduce_scatter_into(hin, hout, op), blocking, [out, hout] { stage_out(out, hout); });
}

Request StagedComm::do_reduce(const Tensor& in, const Tensor& out, int root, ReduceOp op, bool blocking) {
  Tensor hin = stage_in(in), hout = host_like(out);
  const bool mine = rank() == root;  // only the root's output is written
  return finish(host_->ireduce_into(hin, hout, root, op), blocking, [out, hout, mine] {
    if (mine) stage_out(out, hout);
  });
}

Request StagedComm::do_broadcast(const Tensor& t, int root, bool blocking) {
  Tensor h = stage_in(t);
  return finish(host_->ibroadcast(h, root), blocking, [t, h] { stage_out(t, h); });
}

Request StagedComm::do_send(const Tensor& t, int dst, int tag, bool blocking) {
  Tensor h = stage_in(t);
  return finish(host_->isend(h, dst, tag), blocking, [h] {});
}

Request StagedComm::do_recv(const Tensor& t, int src, int tag, bool blocking) {
  Tensor h = host_like(t);
  return finish(host_->irecv(h, src, tag), blocking, [t, h] { stage_out(t, h); });
}

void StagedComm::do_sendrecv(const Tensor& send_t, int dst, const Tensor& recv_t, int src, int tag) {
  Tensor hs = stage_in(send_t), hr = host_like(recv_t);
  host_->sendrecv(hs, dst, hr, src, tag);
  stage_out(recv_t, hr);
}

}  // namespace skein
