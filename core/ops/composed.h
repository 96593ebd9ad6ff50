// composed.h — the mixers composed of device ops (cuBLAS matmuls, map, cumsum, views): the
// GPU path of ops whose fused CUDA kernel has not landed yet (issue "fast fused CUDA mixers").
// Autograd gives their backward; they run on any device, so tests/core/test_composed_mixers.cpp
// checks them on the CPU against the fused CPU ops (values and f64 gradients) — the same
// compositions the GPU runs.
#pragma once
#include <cstdint>
#include "core/ops.h"

namespace skein {

// linear_attention's contract (core/ops.h), inputs already checked by the op.
// q, k: [B, H, T, Dk], v: [B, H, T, Dv], log_gate: undefined | [H] | [B, H, T, Dk],
// initial_state: undefined | [B, H, Dk, Dv] -> {out [B, H, T, Dv], final_state [B, H, Dk, Dv]}
LinearAttentionResult linear_attention_composed(const Tensor& q, const Tensor& k, const Tensor& v,
                                                const Tensor& log_gate, const Tensor& initial_state,
                                                double scale, int64_t chunk);

// delta_rule's contract (core/ops.h), inputs already checked by the op.
// q, k: [B, H, T, Dk], v: [B, H, T, Dv], beta: [B, H, T], log_alpha: undefined | [B, H, T],
// initial_state: undefined | [B, H, Dk, Dv] -> {out [B, H, T, Dv], final_state [B, H, Dk, Dv]}
LinearAttentionResult delta_rule_composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                          const Tensor& log_alpha, const Tensor& initial_state, double scale,
                                          int64_t chunk);

// short_conv's contract (core/ops.h), inputs already checked by the op.
// x: [B, T, C], weight: [C, K], prefix: undefined | [B, K-1, C] -> [B, T, C]
Tensor short_conv_composed(const Tensor& x, const Tensor& weight, const Tensor& prefix, bool silu_activation);

}  // namespace skein
