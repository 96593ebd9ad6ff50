// hf_llama.h — Hugging Face Llama folders (config.json + model.safetensors, or shards with
// model.safetensors.index.json) in and out of skein, and `skein convert` between them and
// skein checkpoints. The mapping of names and config keys is docs/HF_FORMAT.md.
//
// A Llama is a skein HybridLM with layer_pattern "S": Linear weights are [out, in] on both
// sides, SwiGLU w1/w3/w2 = gate/up/down_proj, and skein's rope() is the half-split (rotate_half)
// pairing of HF Llama checkpoints, so q/k_proj rows are copied unpermuted. Other skein models
// (L and M layers, mixers a distillation swapped in) keep their extra tensors under
// model.layers.{i}.self_attn.skein.<name> and embed the whole skein config in config.json
// ("skein"), so converting such a folder back rebuilds the same model.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include "configs/config.h"
#include "data/safetensors.h"
#include "layers/model.h"

namespace skein {

struct HfModel {
  // The skein config: defaults with the model section from config.json (layer_pattern "S"),
  // or the config embedded by skein in config.json's "skein" object.
  Config config;
  TensorMap state;                       // skein names (Module::state_dict() keys), config.model.dtype
  int64_t max_position_embeddings = 2048;  // config.json's (skein has no such limit)
};

// Reads an HF Llama / Mistral / Qwen2 folder (config keys: launch/hf_llama_config.h). Errors
// name the folder, the key or tensor: config keys skein does not implement, and for a plain
// family model every missing, extra or misshapen tensor. F32, F16, BF16 and F64 weights load as
// config.model.dtype, except that a bfloat16 checkpoint keeps the Linear weights bf16
// (model.weight_dtype).
HfModel load_hf_llama(const std::string& dir);
// The model of an HF folder: HybridLM(config.model) built first, then each tensor read straight
// into its parameter (no second copy of the weights: a bf16 checkpoint needs about its file
// size); every parameter must be in the files and every tensor must be a parameter.
std::unique_ptr<HybridLM> load_hf_llama_model(const std::string& dir, Config* config = nullptr);

struct HfSaveOptions {
  std::optional<Config> config;           // embedded as "skein" (default: defaults + model.cfg)
  int64_t max_position_embeddings = 2048;  // written to config.json
  int64_t max_shard_bytes = 5'000'000'000;  // above this total, shards + index (HF's default)
  // A token file's tokenizer identity (TokenFile::tokenizer_identity): when set, tokenizer.json,
  // tokenizer_config.json and generation_config.json are written too (launch/hf_export.h).
  std::string tokenizer_identity;
};

// Writes `model` (one process, tp_size 1) as an HF folder: config.json and the weights as the
// model holds them (F32, bf16 Linear weights as BF16). `dir` must not exist or be empty. The
// architecture is the family's (Llama / Mistral / Qwen2: hf_config_json) when every mixer is a
// plain SoftmaxAttention (transformers then computes the same logits), else model_type
// "skein_hybrid" with ["SkeinForCausalLM"], layer_mixers and the
// remote-code files (launch/hf_export.h), which transformers runs with trust_remote_code=True.
// opts.tokenizer_identity: the tokenizer files too.
void save_hf_llama(const HybridLM& model, const std::string& dir, const HfSaveOptions& opts = {});

// The HF name of a skein parameter; `llama_attention`: the layer is a plain SoftmaxAttention,
// whose q/k/v/o_proj take the Llama names (else mixer tensors go under self_attn.skein.*).
std::string hf_tensor_name(const std::string& skein_name, bool llama_attention);
// The skein name of an HF tensor; throws naming it when it has no skein counterpart.
std::string skein_tensor_name(const std::string& hf_name);

// `skein convert`. hf -> skein writes a checkpoint folder (state.h5, step 0, no optimizer
// state) that `skein eval` / `skein generate --checkpoint` read; `overrides` (--set) edit the
// config written with it (e.g. data.path). A tokenizer.json in the folder is read (and
// tokenizer_config.json's eos_token checked): its vocabulary must fit the model's, and a
// data.path given must hold text tokenized with it. skein -> hf also writes the tokenizer of
// the config's data.path (when that token file exists). skein -> hf reads a checkpoint folder; one whose
// config names a distill.teacher is a distilled student, rebuilt by load_student (launch/distill.h).
void convert_hf_to_checkpoint(const std::string& hf_dir, const std::string& ckpt_dir,
                              const std::vector<std::string>& overrides = {});
void convert_checkpoint_to_hf(const std::string& ckpt_dir, const std::string& hf_dir,
                              const std::vector<std::string>& overrides = {},
                              int64_t max_shard_bytes = HfSaveOptions{}.max_shard_bytes);

}  // namespace skein
