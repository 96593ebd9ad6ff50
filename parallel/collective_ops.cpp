// collective_ops.cpp — all_gather_op, all_reduce_op, identity_allreduce_backward_op
// (parallel/collective_ops.h): each forward is one collective on a contiguous copy (or view),
// each backward the conjugate collective on the incoming gradient.
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

}  // namespace skein
