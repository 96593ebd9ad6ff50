// hf_export.h — what a Hugging Face export carries beyond the Llama layout (launch/hf_llama.h):
// for a model transformers' Llama cannot compute, the "skein_hybrid" config keys and the
// remote-code files (launch/hf/configuration_skein.py, modeling_skein.py, skein_mixers.py, embedded into
// the binary at build time); and the tokenizer files of the run's data. docs/HF_FORMAT.md.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include "data/bpe.h"
#include "layers/model.h"

namespace skein {

// The embedded sources (generated from launch/hf/*.py by launch/CMakeLists.txt).
extern const char* const kHfConfigurationPy;
extern const char* const kHfModelingPy;
extern const char* const kHfMixersPy;

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
// Writes configuration_skein.py, modeling_skein.py and skein_mixers.py into `dir`.
void write_hf_remote_code(const std::string& dir);

// A skein tokenizer as the byte-level BPE transformers reads (the byte tokenizer is the BPE
// of its 256 byte symbols with no merges, then <|endoftext|>: the same ids).
// `identity`: a token file's tokenizer identity ("bytes" or a tokenizer.json text).
BpeTokenizer hf_tokenizer_of(const std::string& identity);
// Writes tokenizer.json, tokenizer_config.json (PreTrainedTokenizerFast; bos, eos and pad are
// the end-of-text token, which skein's data puts between documents; no token is added when
// encoding, as skein adds none) and generation_config.json, and adds bos/eos/pad_token_id
// to `config` (config.json).
void write_hf_tokenizer(const std::string& dir, const std::string& identity, int64_t model_max_length,
                        nlohmann::json& config);
// The tokenizer of an HF folder (tokenizer.json, checked against tokenizer_config.json's
// eos_token when present); nullopt when the folder has no tokenizer.json. Errors name the file.
std::optional<BpeTokenizer> read_hf_tokenizer(const std::string& dir);
// Same vocabulary, merges and special tokens (so the same ids for every text).
bool same_tokenizer(const BpeTokenizer& a, const BpeTokenizer& b);

}  // namespace skein
