// rope.h — the RoPE frequencies of a model's softmax layers: the config's rope_type (default,
// linear, dynamic, llama3, yarn) turned into the inv_freq / attention factor that skein's one
// rope op (core/ops.h) takes. Each type computes exactly what transformers' modeling_rope_utils
// does for it (in double precision where transformers uses f32).
// reference: huggingface/transformers src/transformers/modeling_rope_utils.py (v5);
// reference: Chen et al., "Extending Context Window of LLMs via Positional Interpolation", 2023 (linear);
// reference: bloc97 / emozilla, "Dynamically Scaled RoPE" (NTK-aware, dynamic), 2023;
// reference: Peng et al., "YaRN: Efficient Context Window Extension of LLMs", 2023;
// reference: Meta, Llama 3.1 reference code, apply_scaling (llama3).
#pragma once
#include <cstdint>
#include <string>
#include "core/ops.h"
#include "layers/config.h"

namespace skein {

// The rope types skein implements, as named in config.json's rope_type.
bool is_rope_type(const std::string& type);

// Checks the rope_* fields of cfg (type known, factors in range); errors name the model.* key.
void validate_rope(const ModelConfig& cfg);

// The frequencies for head dim `head_dim` when the sequence seen so far ends at position
// seq_len - 1 (only "dynamic" depends on it: NTK scaling grows with seq_len beyond
// rope_original_max_positions, as transformers' dynamic_rope_update does).
RopeFreqs rope_freqs(const ModelConfig& cfg, int64_t head_dim, int64_t seq_len);

// The yarn attention factor transformers derives when none is given: 0.1 ln(factor) + 1
// (factor <= 1: 1); with mscale and mscale_all_dim, get(factor, mscale) / get(factor, mscale_all_dim).
double yarn_attention_factor(double factor, double mscale = 0, double mscale_all_dim = 0);

}  // namespace skein
