// collective_ops.cpp — all_gather_op, all_reduce_op, identity_allreduce_backward_op,
// all_gather_last_dim_op (parallel/collective_ops.h): each forward is one collective on a
// contiguous copy (or view), each backward the conjugate collective on the incoming gradient
// (all_gather_last_dim_op's is a local slice).
#include "parallel/collective_ops.h"
#include "core/autograd.h"
#include "core/ops.h"

namespace skein {

namespace {

void check_input(const Communicator& comm, const Tensor& x, const char* op) {
  SKEIN_CHECK(x.defined(), op, ": the input is undefined");
  SKEIN_CHECK(x.device() == comm.device(), op, ": input ", shape_str(x.shape()), " is on ",
              device_name(x.device()), ", the ", comm.backend_name(), " communicator on ",
              device_name(comm.device()));
}

// A contiguous copy that an in-place collective may overwrite (never the caller's storage).
Tensor writable(const Tensor& g) { return g.is_contiguous() ? g.clone() : g.contiguous(); }

}  // namespace

Tensor all_gather_op(Communicator& comm, const Tensor& x) {
  check_input(comm, x, "all_gather_op");
  Tensor out = comm.all_gather(x.contiguous().detach());
  const Shape shape = x.shape();
  return record("all_gather", out, {x}, [&comm, shape](const Tensor& g) {
    // g: [W, ...] -> [1, ...] (this rank's row, summed over ranks) -> x's shape.
    Tensor mine = comm.reduce_scatter(g.contiguous());
    return std::vector<Tensor>{mine.view(shape)};
  });
}

PendingGather start_all_gather_op(Communicator& comm, const Tensor& x, bool skip_comm) {
  check_input(comm, x, "start_all_gather_op");
  PendingGather p;
  p.comm_ = &comm;
  p.x_ = x;
  Tensor in = x.contiguous().detach();
  Shape shape = x.shape();
  shape.insert(shape.begin(), comm.size());
  if (skip_comm) {
    Shape one = x.shape();
    one.insert(one.begin(), 1);
    p.out_ = in.view(one).expand(shape).contiguous();
  } else {
    p.out_ = Tensor::empty(shape, x.dtype(), x.device());
    p.req_ = comm.iall_gather_into(in, p.out_);
  }
  return p;
}

Tensor PendingGather::finish() {
  SKEIN_ASSERT(comm_ != nullptr, "PendingGather.finish: called twice or on a gather never started");
  req_.wait();
  Communicator& comm = *comm_;
  comm_ = nullptr;
  const Shape shape = x_.shape();
  return record("all_gather", out_, {x_}, [&comm, shape](const Tensor& g) {
    Tensor mine = comm.reduce_scatter(g.contiguous());
    return std::vector<Tensor>{mine.view(shape)};
  });
}

Tensor all_reduce_op(Communicator& comm, const Tensor& x) {
  check_input(comm, x, "all_reduce_op");
  Tensor out = writable(x.detach());
  comm.all_reduce(out);
  return record("all_reduce", out, {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor identity_allreduce_backward_op(Communicator& comm, const Tensor& x) {
  check_input(comm, x, "identity_allreduce_backward_op");
  return record("identity_allreduce_backward", x.detach(), {x}, [&comm](const Tensor& g) {
    Tensor total = writable(g);
    comm.all_reduce(total);
    return std::vector<Tensor>{total};
  });
}

Tensor all_gather_last_dim_op(Communicator& comm, const Tensor& x) {
  check_input(comm, x, "all_gather_last_dim_op");
  SKEIN_CHECK(x.dim() >= 1, "all_gather_last_dim_op: the input must have a last dim, got ", shape_str(x.shape()));
  const int64_t last = x.dim() - 1, n = x.size(last), rank = comm.rank();
  // [W, ..., n] -> [..., W, n] -> [..., W * n]
  Tensor stacked = comm.all_gather(x.contiguous().detach());
  Shape order;
  for (int64_t d = 1; d <= last; ++d) order.push_back(d);
  order.push_back(0);
  order.push_back(last + 1);
  Shape shape = x.shape();
  shape[static_cast<size_t>(last)] = comm.size() * n;
  Tensor out = stacked.permute(order).contiguous().view(shape);
  return record("all_gather_last_dim", out, {x}, [last, n, rank](const Tensor& g) {
    return std::vector<Tensor>{g.narrow(last, rank * n, n).contiguous()};
  });
}

}  // namespace skein
