// op_util.h — what every op file needs to reach the kernels: the device checks (every tensor of
// an op on one device, an error naming both otherwise), broadcast shapes, and the map launcher
// that turns tensors into kern::MapArgs. Internal to core/ops/.
#pragma once
#include <initializer_list>
#include "core/kernels/kernels.h"
#include "core/tensor.h"

namespace skein::ops {

// The device all defined tensors share; an error naming the op, both devices and shapes if not.
// No op taking its tensors through here computes in bf16: a bf16 tensor is an error naming the op.
Device common_device(const char* op, std::initializer_list<Tensor> ts);
// The kernel table of that device.
inline const kern::KernelTable& kernels_for(const char* op, std::initializer_list<Tensor> ts) {
  return kern::kernels(common_device(op, ts));
}

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);
// Broadcast strides of `t` against `out_shape` (0 in broadcast dims), aligned right.
Shape broadcast_strides(const Tensor& t, const Shape& out_shape);

// out = op(ins...) elementwise with broadcasting; out must already have the result's shape (it
// may be a strided view). Runs on out's device.
void launch_map(kern::MapOp op, const Tensor& out, std::initializer_list<Tensor> ins,
                double s0 = 0, double s1 = 0);

// A contiguous version of t with no history (the input of a kernel that wants [rows, n]).
inline Tensor contiguous_data(const Tensor& t) { return t.detach().contiguous(); }

}  // namespace skein::ops
