// softmax_attention_impl.h — private to core/ops/softmax_attention*.cpp: the shape checks and
// the backward that the fused op softmax_attention (softmax_attention.cpp) and the blocks of a
// split sequence for Ring Attention (softmax_attention_blocks.cpp) share. The kernels are the
// device's (core/kernels/kernels.h: attention_fwd / attention_bwd / attention_merge; CPU in
// core/cpu/attention.cpp, CUDA in core/cuda/attention.cu).
#pragma once
#include <cstdint>
#include <vector>
#include "core/kernels/kernels.h"
#include "core/ops.h"

namespace skein::softmax_attention_impl {

// Checks q, k, v for `op` and returns their geometry with the visibility of queries at
// positions q_pos + i against keys at k_pos + j (only the difference matters: the kernels see
// key 0 at position 0 and query 0 at q_pos - k_pos).
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
kern::AttentionArgs checked_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                 double scale, bool causal, int64_t window, int64_t q_pos,
                                 int64_t k_pos);

// The device's forward on contiguous copies: {out [B, H, Tq, Dv], lse [B, H, Tq]}.
AttentionBlockResult attention_forward(const kern::AttentionArgs& a, const Tensor& q,
                                       const Tensor& k, const Tensor& v);

// Gradients {dq, dk, dv} from the saved inputs (contiguous), output and log-sum-exp.
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv], out and g_out: [B, H, Tq, Dv],
// lse: [B, H, Tq].
std::vector<Tensor> attention_grads(const kern::AttentionArgs& a, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& out, const Tensor& lse,
                                    const Tensor& g_out);

}  // namespace skein::softmax_attention_impl
