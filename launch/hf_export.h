// hf_export.h — what a Hugging Face export carries beyond the Llama layout (launch/hf_llama.h):
// for a model transformers' Llama cannot compute, the "skein_hybrid" config keys and the
// remote-code files (launch/hf/configuration_skein.py, modeling_skein.py, skein_mixers.py, embedded into
// the binary at build time); and the tokenizer files of the run's data. docs/HF_FORMAT.md.
#pragma once
#include <nlohmann/json.hpp>
#include <memory>
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
// `identity`: a token file's tokenizer identity ("bytes" or a tokenizer.json text; an HfTokenizer
// identity is not one: write_hf_tokenizer writes its tokenizer.json as it came).
BpeTokenizer hf_tokenizer_of(const std::string& identity);
// Writes tokenizer.json, tokenizer_config.json (PreTrainedTokenizerFast; bos, eos and pad are
// the end-of-text token, which skein's data puts between documents; no token is added when
// encoding, as skein adds none) and generation_config.json, and adds bos/eos/pad_token_id
// to `config` (config.json). For data tokenized with hf:<tokenizer.json>, that tokenizer.json is
// written back unchanged, with its eos (and the template's BOS) in tokenizer_config.json.
void write_hf_tokenizer(const std::string& dir, const std::string& identity, int64_t model_max_length,
                        nlohmann::json& config);
// The tokenizer of an HF folder (tokenizer.json, checked against tokenizer_config.json's
// eos_token when present); nullopt when the folder has no tokenizer.json. Errors name the file.
std::optional<BpeTokenizer> read_hf_tokenizer(const std::string& dir);
// Same vocabulary, merges and special tokens (so the same ids for every text).
bool same_tokenizer(const BpeTokenizer& a, const BpeTokenizer& b);
// The tokenizer of an HF folder as skein runs any supported tokenizer.json (GPT-2, Llama 2/3,
// Mistral, Qwen2: data/hf_tokenizer.h), its eos from tokenizer_config.json; nullptr when the
// folder has no tokenizer.json. read_hf_tokenizer above takes skein's own byte-level BPE only.
std::unique_ptr<Tokenizer> load_hf_folder_tokenizer(const std::string& dir);
// True when a token file's tokenizer `identity` gives the ids `tok` gives, for every text (the
// same tokenizer.json; the eos token prep put between documents is not compared).
bool tokenizer_matches_identity(const Tokenizer& tok, const std::string& identity);
// convert --from hf's tokenizer checks, for every supported family: the folder's tokenizer.json
// (when there is one) fits the model's vocabulary and, unless `data_identity` is empty, is the
// tokenizer the run's data was made with. Errors name the folder and say how to prep again.
void check_hf_folder_tokenizer(const std::string& hf_dir, int64_t model_vocab_size, const std::string& data_identity);

}  // namespace skein
