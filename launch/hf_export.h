// hf_export.h — what a Hugging Face export carries beyond the Llama layout (launch/hf_llama.h):
// for a model transformers' Llama cannot compute, the "skein_hybrid" config keys and the
// remote-code files (launch/hf/configuration_skein.py and modeling_skein.py, embedded into
// the binary at build time); and the tokenizer files of the run's data. docs/HF_FORMAT.md.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include "layers/model.h"

namespace skein {

// The embedded sources (generated from launch/hf/*.py by launch/CMakeLists.txt).
extern const char* const kHfConfigurationPy;
extern const char* const kHfModelingPy;

// One object per layer describing its actual mixer, for modeling_skein.py:
//   {"kind": "softmax", "window": W} | {"kind": "linear", "variant": V} | {"kind": "mom"} |
//   {"kind": "liger", "attention", "window", "mix", "gate_normalizer"} |
//   {"kind": "lolcats", "window", "feature_dim", "linear"} | {"kind": "unsupported: <type>"}
// each with "tensors": the sorted skein names of the mixer's tensors (after "mixer."), which
// the Python side checks against its own so that a tensor it does not know is an error.
nlohmann::json hf_layer_mixers(const HybridLM& model);
// Turns an exported config.json into a skein_hybrid one: model_type, architectures
// ["SkeinForCausalLM"], auto_map to the remote code, layer_mixers.
void make_skein_hybrid_config(nlohmann::json& config, const HybridLM& model);
// Writes configuration_skein.py and modeling_skein.py into `dir`.
void write_hf_remote_code(const std::string& dir);

}  // namespace skein
