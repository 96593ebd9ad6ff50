// short_conv.h — the short causal convolutions of the L and M layers' q, k, v (skein::
// short_conv, core/ops.h), as fla configures them: depthwise, kernel model.conv_size (4),
// SiLU, no bias; on by default (model.short_conv: auto) for delta / gated_delta L layers and
// for MoM, the layers whose references use them (fla DeltaNet, GatedDeltaNet, MomAttention:
// use_short_conv = True); plain / decay / gla L layers (fla LinearAttention, GLA:
// use_short_conv = False) get them with model.short_conv: true.
// The K-1 inputs before a piece of sequence come from the generation cache, or — training
// with the sequence split over sp ranks — from the earlier ranks (par().conv_prefixes).
// reference: Arora et al., "Zoology: Measuring and Improving Recall in Efficient Language
// Models", 2023 (short convolutions for associative recall); fla-org/flash-linear-attention
// fla/modules/convolution.py, fla/layers/gated_deltanet.py, fla/layers/mom.py.
#pragma once
#include <string>
#include <vector>
#include "layers/config.h"
#include "layers/parallel.h"

namespace skein {

// Whether a layer uses short convolutions: L layers of `variant` (mom false) or M layers.
bool uses_short_conv(const ModelConfig& cfg, const std::string& variant, bool mom);

// A conv weight for all `channels` channels: [channels, K], U(-1/sqrt(K), 1/sqrt(K)) (the
// PyTorch Conv1d init that fla's ShortConvolution keeps), drawn from gen.
Tensor short_conv_init(int64_t channels, int64_t K, Generator& gen, DType dtype);

// The SiLU short convs of several streams of one layer: xs[i]: [B_i, T_i, C_i], weights[i]:
// [C_i, K] -> [B_i, T_i, C_i]. With states (generation) stream i continues from (*states)[i]
// (undefined: zeros; else [B_i, K-1, C_i]), which is replaced by its last K-1 inputs; without,
// the K-1 inputs before each stream come from par.conv_prefixes (one collective for all).
std::vector<Tensor> run_short_convs(const ModelParallel& par, const std::vector<Tensor>& xs,
                                    const std::vector<Tensor>& weights, std::vector<Tensor>* states);

}  // namespace skein
