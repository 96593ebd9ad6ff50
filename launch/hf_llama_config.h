// hf_llama_config.h — config.json of the Hugging Face families skein reads and writes (Llama,
// Mistral, Qwen2) <-> ModelConfig: sizes, GQA, tied embeddings, RoPE scaling (rope_scaling or
// transformers v5's rope_parameters), sliding windows (Mistral's sliding_window, Qwen2's
// use_sliding_window / max_window_layers / layer_types) and Qwen2's q/k/v biases. Everything
// else that would change the computation is an error naming its key. docs/HF_FORMAT.md.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include "layers/config.h"

namespace skein {

// The ModelConfig (layer_pattern "S") of config.json `c` read from `src` (named in errors);
// *max_position_embeddings receives its max_position_embeddings.
ModelConfig hf_model_config(const nlohmann::json& c, const std::string& src, int64_t* max_position_embeddings);

// config.json for `m`: the family that computes it (qwen2 with q/k/v biases, mistral with a
// window, else llama); `llama`: every layer is plain softmax attention (else the architecture
// is SkeinForCausalLM, set by make_skein_hybrid_config). A dynamic RoPE writes its
// rope_original_max_positions as max_position_embeddings (transformers scales from there).
nlohmann::json hf_config_json(const ModelConfig& m, bool llama, int64_t max_position_embeddings);

// transformers' name of a skein dtype in config.json ("float32", "bfloat16", ...).
std::string hf_dtype_name(DType dt);

}  // namespace skein
