// flat.cpp — gradient and value packing for the flat communication buffers.
#include "parallel/flat.h"
#include <cstring>
#include "core/ops.h"

namespace skein {

namespace {

void check_slot(const Tensor& t, const Tensor& buf, int64_t offset, const char* op) {
  SKEIN_ASSERT(buf.is_contiguous() && buf.device() == Device::cpu && t.device() == Device::cpu, op);
  SKEIN_ASSERT(t.dtype() == buf.dtype(), op, ": dtype ", dtype_name(t.dtype()), " vs buffer ",
               dtype_name(buf.dtype()));
  SKEIN_ASSERT(offset >= 0 && offset + t.numel() <= buf.numel(), op, ": slot [", offset, ", ",
               offset + t.numel(), ") outside a buffer of ", buf.numel());
}

char* slot_ptr(const Tensor& buf, int64_t offset) {
  return static_cast<char*>(buf.raw_data()) + offset * static_cast<int64_t>(dtype_size(buf.dtype()));
}

size_t slot_bytes(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

}  // namespace

void check_reduce_dtype(DType reduce_dtype, const NamedParams& params, const char* who) {
  SKEIN_CHECK(reduce_dtype == DType::f32 || reduce_dtype == DType::bf16, who, ": parallel.grad_reduce_dtype must be "
              "f32 or bf16, got ", dtype_name(reduce_dtype));
  if (reduce_dtype == DType::f32) return;
  for (const auto& [name, p] : params)
    SKEIN_CHECK(!p.defined() || p.dtype() == DType::f32, who, ": parallel.grad_reduce_dtype=bf16 rounds f32 "
                "gradients, but parameter '", name, "' is ", dtype_name(p.dtype()), " (model.dtype=",
                dtype_name(p.dtype()), "): use parallel.grad_reduce_dtype=f32");
}

void pack_grad(const Tensor& param, const Tensor& buf, int64_t offset) {
  check_slot(param, buf, offset, "pack_grad");
  Tensor g = param.grad();
  if (!g.defined()) {
    std::memset(slot_ptr(buf, offset), 0, slot_bytes(param));
    return;
  }
  SKEIN_CHECK(g.shape() == param.shape() && g.dtype() == param.dtype(), "data parallel: gradient ",
              shape_str(g.shape()), " ", dtype_name(g.dtype()), " does not match its parameter ",
              shape_str(param.shape()), " ", dtype_name(param.dtype()));
  Tensor c = g.contiguous();
  std::memcpy(slot_ptr(buf, offset), c.raw_data(), slot_bytes(c));
}

void unpack_grad(const Tensor& param, const Tensor& buf, int64_t offset, double scale) {
  check_slot(param, buf, offset, "unpack_grad");
  Tensor g = param.grad();
  if (!g.defined() || !g.is_contiguous() || g.shape() != param.shape() || g.dtype() != param.dtype()) {
    g = Tensor::empty(param.shape(), param.dtype());
    param.impl()->grad = g.impl_ptr();
  }
  SKEIN_DISPATCH_FLOAT(param.dtype(), "unpack_grad", [&] {
    const scalar_t* src = reinterpret_cast<const scalar_t*>(slot_ptr(buf, offset));
    scalar_t* dst = g.data<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(scale);
    const int64_t n = g.numel();
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * s;
  });
}

void pack_values(const Tensor& t, const Tensor& buf, int64_t offset) {
  check_slot(t, buf, offset, "pack_values");
  SKEIN_ASSERT(t.is_contiguous());
  std::memcpy(slot_ptr(buf, offset), t.raw_data(), slot_bytes(t));
}

void unpack_values(const Tensor& t, const Tensor& buf, int64_t offset) {
  check_slot(t, buf, offset, "unpack_values");
  SKEIN_ASSERT(t.is_contiguous());
  std::memcpy(t.raw_data(), slot_ptr(buf, offset), slot_bytes(t));
}

Tensor grad_presence(const NamedParams& params) {
  Tensor out = Tensor::empty({static_cast<int64_t>(params.size())}, DType::i64);
  int64_t* p = out.data<int64_t>();
  for (size_t i = 0; i < params.size(); ++i) p[i] = params[i].second.grad().defined() ? 1 : 0;
  return out;
}

void check_same_layout(Communicator& comm, const NamedParams& params, const char* who) {
  int64_t numel = 0;
  for (const auto& [name, p] : params) numel += p.numel();
  const double n = static_cast<double>(params.size()), e = static_cast<double>(numel);
  Tensor mx = from_vector({n, e, -n, -e}, {4}, DType::i64);
  comm.all_reduce(mx, ReduceOp::max);
  const int64_t* m = mx.data<int64_t>();
  SKEIN_CHECK(m[0] == -m[2] && m[1] == -m[3], who, ": the ranks hold different models: between ", -m[2], " and ",
              m[0], " parameters, ", -m[3], " to ", m[1], " elements (this rank: ", params.size(), ", ", numel, ")");
}

}  // namespace skein
