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

// out = a · b (matmul's shape rules: a [..., M, K], b [K, N] or [..., K, N]), no autograd,
// through the precision policy (core/precision.h). a or b may already be bf16 (gemm_operand):
// the product is f32 then. For ops that feed one operand to several GEMMs.
Tensor matmul_data(const Tensor& a, const Tensor& b);
// x as the policy's GEMMs read it: rounded to bf16 (contiguous) when GEMMs of x's dtype run in
// bf16 on its device, else x itself. Round once, use in several matmul_data calls.
Tensor gemm_operand(const Tensor& x);

// A contiguous version of t with no history (the input of a kernel that wants [rows, n]).
inline Tensor contiguous_data(const Tensor& t) { return t.detach().contiguous(); }

// For a row op (one over the last dim): when t is a permuted view of a dense buffer with its
// last dim innermost (e.g. split_heads' [B, H, T, D] view of [B, T, H, D]), the order of its
// dims from the largest stride to the smallest, so that t.permute(order) is contiguous and the
// op can run in place order without a copy; empty when t is contiguous or not such a view.
Shape row_op_order(const Tensor& t);
// The inverse permutation of order.
Shape inverse_order(const Shape& order);

}  // namespace skein::ops
