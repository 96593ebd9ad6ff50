// op_util.cpp — device checks, broadcasting and the map launcher (see op_util.h).
#include "core/ops/op_util.h"
#include <algorithm>

namespace skein::ops {

Device common_device(const char* op, std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    SKEIN_CHECK(t.defined(), op, ": undefined tensor");
    SKEIN_CHECK(t.dtype() != DType::bf16, op, ": dtype bf16 is not supported (a storage dtype: convert with "
                "to(DType::f32); train.precision bf16-mixed runs the GEMMs in bf16 itself)");
    if (!first) { first = &t; continue; }
    SKEIN_CHECK(t.device() == first->device(), op, ": tensors on different devices: ",
                device_name(first->device()), " ", shape_str(first->shape()), " and ",
                device_name(t.device()), " ", shape_str(t.shape()), " (move them with to(device))");
  }
  return first ? first->device() : Device::cpu;
}

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SKEIN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
                shape_str(b), " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  Shape st(out_shape.size(), 0);
  size_t lead = out_shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

namespace {
// t's pointer and dtype with `st`, its strides over the output's shape.
kern::Operand operand(const Tensor& t, const Shape& st) {
  kern::Operand o;
  o.data = t.raw_data();
  o.dtype = t.dtype();
  std::copy(st.begin(), st.end(), o.strides);
  return o;
}
}  // namespace

void launch_map(kern::MapOp op, const Tensor& out, std::initializer_list<Tensor> ins, double s0, double s1) {
  const char* name = kern::map_op_name(op);
  SKEIN_CHECK(static_cast<int>(ins.size()) == kern::map_arity(op), name, ": ", ins.size(),
              " inputs for an op of arity ", kern::map_arity(op));
  const Shape& shape = out.shape();
  if (out.numel() == 0) return;
  const Device dev = out.device();
  for (const Tensor& t : ins)
    SKEIN_CHECK(t.device() == dev, name, ": tensors on different devices: ", device_name(dev), " ",
                shape_str(shape), " and ", device_name(t.device()), " ", shape_str(t.shape()),
                " (move them with to(device))");
  SKEIN_CHECK(static_cast<int>(shape.size()) <= kern::kMaxDims, name, ": ", shape.size(),
              " dims; at most ", kern::kMaxDims, " are supported");
  kern::MapArgs a;
  a.op = op;
  a.ndim = static_cast<int>(shape.size());
  std::copy(shape.begin(), shape.end(), a.shape);
  a.out = operand(out, out.strides());
  int k = 0;
  for (const Tensor& t : ins) {
    a.in[k] = operand(t, broadcast_strides(t, shape));
    ++k;
  }
  a.s0 = s0;
  a.s1 = s1;
  kern::kernels(dev).map(a);
}


Shape row_op_order(const Tensor& t) {
  if (!t.defined() || t.dim() < 2 || t.is_contiguous() || t.strides().back() != 1) return {};
  Shape order(static_cast<size_t>(t.dim()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  const Shape& st = t.strides();
  const int64_t last = t.dim() - 1;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if ((a == last) != (b == last)) return b == last;  // the row dim stays innermost
    return st[static_cast<size_t>(a)] > st[static_cast<size_t>(b)];
  });
  if (!t.detach().permute(order).is_contiguous()) return {};
  return order;
}

Shape inverse_order(const Shape& order) {
  Shape inv(order.size());
  for (size_t i = 0; i < order.size(); ++i) inv[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  return inv;
}

}  // namespace skein::ops
