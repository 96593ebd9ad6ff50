// hf_llama.cpp — HF Llama folders in and out, and `skein convert` (see hf_llama.h and
// docs/HF_FORMAT.md for the mapping).
// reference: huggingface/transformers src/transformers/models/llama/{configuration,modeling}_llama.py
#include "launch/hf_llama.h"
#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <typeinfo>
#include <variant>
#include "configs/loader.h"
#include "configs/registry.h"
#include "core/allocator.h"
#include "launch/checkpoint.h"
#include "launch/distill.h"
#include "data/token_file.h"
#include "launch/hf_export.h"
#include "launch/hf_llama_config.h"
#include "layers/attention.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {
namespace {

// skein name -> HF name, outside the blocks and inside block i (after "blocks.{i}." /
// "model.layers.{i}.").
const std::pair<const char*, const char*> kTopNames[] = {
    {"embed.weight", "model.embed_tokens.weight"},
    {"norm.weight", "model.norm.weight"},
    {"lm_head.weight", "lm_head.weight"}};
const std::pair<const char*, const char*> kBlockNames[] = {
    {"norm1.weight", "input_layernorm.weight"}, {"norm2.weight", "post_attention_layernorm.weight"},
    {"mlp.w1.weight", "mlp.gate_proj.weight"},  {"mlp.w3.weight", "mlp.up_proj.weight"},
    {"mlp.w2.weight", "mlp.down_proj.weight"}};
// The tensors of a Llama attention layer, the same after "mixer." and "self_attn.".
const char* const kAttentionNames[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                                       "q_proj.bias",   "k_proj.bias",   "v_proj.bias"};  // biases: Qwen2

bool is_attention_name(const std::string& s) {
  for (const char* a : kAttentionNames)
    if (s == a) return true;
  return false;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// "<prefix><digits>.<rest>" -> layer, rest.
bool split_layer(const std::string& name, const std::string& prefix, int64_t& layer, std::string& rest) {
  if (!starts_with(name, prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot + 1 == name.size()) return false;
  const std::string digits = name.substr(prefix.size(), dot - prefix.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  layer = std::stoll(digits);
  rest = name.substr(dot + 1);
  return true;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  SKEIN_CHECK(in, "hf folder: cannot read ", path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- config.json (the family keys: launch/hf_llama_config.cpp) -------------------------

// The skein config as {"section": {"key": value}} (every key of the schema) and back.
json config_to_json(const Config& cfg) {
  json out = json::object();
  for (const ConfigKey& k : config_schema()) {
    const size_t dot = k.name.find('.');
    out[k.name.substr(0, dot)][k.name.substr(dot + 1)] = std::visit([](const auto& v) { return json(v); }, k.get(cfg));
  }
  return out;
}

Config config_from_json(const json& j, const std::string& src) {
  SKEIN_CHECK(j.is_object(), src, ": must be an object of config sections, got ", j.dump());
  Config cfg;
  for (const auto& [section, keys] : j.items()) {
    SKEIN_CHECK(keys.is_object(), src, ": section '", section, "' must be an object, got ", keys.dump());
    for (const auto& [key, value] : keys.items()) apply_override(cfg, section + "." + key + "=" + value.dump(), src);
  }
  try {
    validate_config(cfg);
  } catch (const Error& e) {
    throw Error(detail::concat(src, ": ", e.what()));
  }
  return cfg;
}

// The embedded skein config must describe the same Llama-shaped parts as the HF keys.
void check_agrees(const ModelConfig& hf, const ModelConfig& sk, const std::string& src) {
  const std::pair<const char*, std::pair<double, double>> fields[] = {
      {"vocab_size / vocab_size", {hf.vocab_size, sk.vocab_size}}, {"hidden_size / d_model", {hf.d_model, sk.d_model}},
      {"num_hidden_layers / n_layers", {hf.n_layers, sk.n_layers}},
      {"num_attention_heads / n_heads", {hf.n_heads, sk.n_heads}},
      {"num_key_value_heads / n_kv_heads", {hf.kv_heads(), sk.kv_heads()}},
      {"intermediate_size / mlp_hidden", {hf.mlp_hidden, sk.mlp_hidden}},
      {"tie_word_embeddings / tie_embeddings", {hf.tie_embeddings, sk.tie_embeddings}},
      {"rms_norm_eps / norm_eps", {hf.norm_eps, sk.norm_eps}}, {"rope_theta / rope_theta", {hf.rope_theta, sk.rope_theta}},
      {"rope factor / rope_factor", {hf.rope_factor, sk.rope_factor}}};
  SKEIN_CHECK(hf.rope_type == sk.rope_type, src, ": rope_type disagrees between the HF keys ('", hf.rope_type,
              "') and skein.config.model ('", sk.rope_type, "'); was the file edited?");
  for (const auto& [names, values] : fields)
    SKEIN_CHECK(values.first == values.second, src, ": ", names, " disagree between the Llama keys (", values.first,
                ") and skein.config.model (", values.second, "); was the file edited?");
}

// ---- tensors -----------------------------------------------------------------------------

std::map<std::string, Shape> llama_shapes(const ModelConfig& m) {
  const int64_t d = m.d_model, q = m.n_heads * m.head_dim(), kv = m.kv_heads() * m.head_dim(), h = m.mlp_hidden;
  std::map<std::string, Shape> s = {{"model.embed_tokens.weight", {m.vocab_size, d}}, {"model.norm.weight", {d}}};
  if (!m.tie_embeddings) s["lm_head.weight"] = {m.vocab_size, d};
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    s[l + "input_layernorm.weight"] = s[l + "post_attention_layernorm.weight"] = {d};
    s[l + "self_attn.q_proj.weight"] = {q, d};
    s[l + "self_attn.k_proj.weight"] = s[l + "self_attn.v_proj.weight"] = {kv, d};
    s[l + "self_attn.o_proj.weight"] = {d, q};
    if (m.qkv_bias) {
      s[l + "self_attn.q_proj.bias"] = {q};
      s[l + "self_attn.k_proj.bias"] = s[l + "self_attn.v_proj.bias"] = {kv};
    }
    s[l + "mlp.gate_proj.weight"] = s[l + "mlp.up_proj.weight"] = {h, d};
    s[l + "mlp.down_proj.weight"] = {d, h};
  }
  return s;
}

void check_llama_tensors(const TensorMap& hf, const ModelConfig& m, const std::string& dir) {
  const std::map<std::string, Shape> want = llama_shapes(m);
  for (const auto& [name, shape] : want) {
    auto it = hf.find(name);
    SKEIN_CHECK(it != hf.end(), "hf folder ", dir, ": tensor '", name, "' is missing");
    SKEIN_CHECK(it->second.shape() == shape, "hf folder ", dir, ": tensor '", name, "' has shape ",
                shape_str(it->second.shape()), " but config.json implies ", shape_str(shape));
  }
  for (const auto& entry : hf)
    SKEIN_CHECK(want.count(entry.first), "hf folder ", dir, ": tensor '", entry.first,
                "' is not part of a ", m.qkv_bias ? "Qwen2" : "Llama", " model as config.json describes it");
}

fs::path empty_output(const std::string& dir, const char* what) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  SKEIN_CHECK(!fs::exists(p) || (fs::is_directory(p) && fs::is_empty(p)), what, ": ", dir,
              " exists and is not an empty folder (remove it first)");
  return p;
}

}  // namespace

std::string hf_tensor_name(const std::string& name, bool llama_attention) {
  for (const auto& [sk, hf] : kTopNames)
    if (name == sk) return hf;
  int64_t i = 0;
  std::string rest;
  if (!split_layer(name, "blocks.", i, rest)) return "skein." + name;
  const std::string layer = "model.layers." + std::to_string(i) + ".";
  for (const auto& [sk, hf] : kBlockNames)
    if (rest == sk) return layer + hf;
  if (!starts_with(rest, "mixer.")) return layer + "skein." + rest;
  const std::string tail = rest.substr(6);
  return layer + (llama_attention && is_attention_name(tail) ? "self_attn." : "self_attn.skein.") + tail;
}

std::string skein_tensor_name(const std::string& name) {
  for (const auto& [sk, hf] : kTopNames)
    if (name == hf) return sk;
  int64_t i = 0;
  std::string rest;
  if (split_layer(name, "model.layers.", i, rest)) {
    const std::string block = "blocks." + std::to_string(i) + ".";
    for (const auto& [sk, hf] : kBlockNames)
      if (rest == hf) return block + sk;
    if (starts_with(rest, "self_attn.skein.") && rest.size() > 16) return block + "mixer." + rest.substr(16);
    if (starts_with(rest, "self_attn.") && is_attention_name(rest.substr(10))) return block + "mixer." + rest.substr(10);
    if (starts_with(rest, "skein.") && rest.size() > 6) return block + rest.substr(6);
  } else if (starts_with(name, "skein.") && name.size() > 6) {
    return name.substr(6);
  }
  throw Error(detail::concat("hf tensor '", name, "' has no skein counterpart (see docs/HF_FORMAT.md)"));
}

namespace {

// config.json of an HF folder as skein's config: the family keys, or the embedded skein config
// checked against them. *llama receives the family keys' ModelConfig. A checkpoint whose dtype
// (torch_dtype) is bfloat16 keeps its Linear weights bf16 (model.weight_dtype) when skein can.
HfModel read_hf_config(const std::string& dir, ModelConfig* llama, bool* from_skein) {
  const fs::path config_path = fs::path(dir) / "config.json";
  const std::string src = config_path.string();
  SKEIN_CHECK(fs::exists(config_path), "hf folder ", dir, ": config.json is missing");
  json c;
  try {
    c = json::parse(read_text(config_path));
  } catch (const json::exception& e) {
    throw Error(detail::concat(src, ": not valid JSON (", e.what(), ")"));
  }
  HfModel out;
  *llama = hf_model_config(c, src, &out.max_position_embeddings);
  *from_skein = c.contains("skein");
  if (*from_skein) {
    const json& s = c["skein"];
    SKEIN_CHECK(s.is_object() && s.value("format_version", json()) == 1 && s.contains("config"), src,
                ": \"skein\" must be {\"format_version\": 1, \"config\": {...}}");
    out.config = config_from_json(s["config"], src + ": skein.config");
    check_agrees(*llama, out.config.model, src);
  } else {
    out.config.model = *llama;
    const std::string dtype = c.contains("dtype") && c["dtype"].is_string() ? c["dtype"].get<std::string>()
                              : c.contains("torch_dtype") && c["torch_dtype"].is_string() ? c["torch_dtype"].get<std::string>()
                                                                                        : "float32";
    if (dtype == "bfloat16") out.config.model.weight_dtype = DType::bf16;
    validate_config(out.config);
  }
  return out;
}

// The parameters model.weight_dtype applies to (layers/model.cpp): S layers' q/k/v/o_proj, the
// MLPs and the LM head.
bool stored_as_weight_dtype(const std::string& sk) {
  for (const char* tail : {".mixer.q_proj.weight", ".mixer.k_proj.weight", ".mixer.v_proj.weight", ".mixer.o_proj.weight",
                           ".mlp.w1.weight", ".mlp.w2.weight", ".mlp.w3.weight"})
    if (sk.ends_with(tail)) return true;
  return sk == "lm_head.weight";
}

bool dropped_tensor(const std::string& name, const ModelConfig& llama) {  // derived from rope_theta / aliased by the tie
  return name.ends_with(".rotary_emb.inv_freq") || (llama.tie_embeddings && name == "lm_head.weight");
}

// The safetensors files of an HF folder (model.safetensors, or the index's shards).
std::vector<std::string> hf_weight_files(const std::string& dir) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::exists(index)) return {(fs::path(dir) / "model.safetensors").string()};
  json j;
  try {
    j = json::parse(read_text(index));
  } catch (const json::exception& e) {
    throw Error(detail::concat(index.string(), ": not valid JSON (", e.what(), ")"));
  }
  SKEIN_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index.string(), ": needs a \"weight_map\" object");
  std::set<std::string> files;
  for (const auto& [name, file] : j["weight_map"].items()) {
    SKEIN_CHECK(file.is_string() && file.get<std::string>().find('/') == std::string::npos, index.string(),
                ": weight_map['", name, "'] must be a file name in the folder");
    files.insert((fs::path(dir) / file.get<std::string>()).string());
  }
  return {files.begin(), files.end()};
}

}  // namespace

HfModel load_hf_llama(const std::string& dir) {
  ModelConfig llama;
  bool from_skein = false;
  HfModel out = read_hf_config(dir, &llama, &from_skein);
  SafetensorsRead read;
  read.keep_bf16 = out.config.model.weight_dtype == DType::bf16;
  TensorMap hf = load_safetensors_folder(dir, read);
  for (auto it = hf.begin(); it != hf.end();) it = dropped_tensor(it->first, llama) ? hf.erase(it) : std::next(it);
  if (!from_skein) check_llama_tensors(hf, llama, dir);
  for (auto& [name, t] : hf) {
    std::string sk;
    try {
      sk = skein_tensor_name(name);
    } catch (const Error& e) {
      throw Error(detail::concat("hf folder ", dir, ": ", e.what()));
    }
    // bf16 stays bf16 where the model stores it so (model.weight_dtype), the rest is model.dtype
    const ModelConfig& mc = out.config.model;
    const DType want = mc.weight_dtype == DType::bf16 && stored_as_weight_dtype(sk) ? DType::bf16 : mc.dtype;
    SKEIN_CHECK(out.state.emplace(sk, t.dtype() == want ? t : t.to(want)).second, "hf folder ", dir,
                ": two tensors map to the skein name '", sk, "'");
  }
  return out;
}

std::unique_ptr<HybridLM> load_hf_llama_model(const std::string& dir, Config* config) {
  ModelConfig llama;
  bool from_skein = false;
  HfModel m = read_hf_config(dir, &llama, &from_skein);
  auto model = std::make_unique<HybridLM>(m.config.model);
  // Each tensor is read straight into its parameter (bf16 into bf16): no second copy of the model.
  std::map<std::string, Tensor> params;
  for (auto& [name, p] : model->named_parameters()) params.emplace(name, p);
  std::set<std::string> loaded;
  const std::map<std::string, Shape> want = from_skein ? std::map<std::string, Shape>{} : llama_shapes(llama);
  for (const std::string& file : hf_weight_files(dir)) {
    SKEIN_CHECK(fs::exists(file), "hf folder ", dir, ": ", fs::path(file).filename().string(), " does not exist");
    read_safetensors_into(file, [&](const std::string& name, const Shape& shape) -> Tensor {
      if (dropped_tensor(name, llama)) return Tensor();
      SKEIN_CHECK(from_skein || want.count(name), "hf folder ", dir, ": tensor '", name, "' is not part of a ",
                  llama.qkv_bias ? "Qwen2" : "Llama", " model as config.json describes it");
      std::string sk;
      try {
        sk = skein_tensor_name(name);
      } catch (const Error& e) {
        throw Error(detail::concat("hf folder ", dir, ": ", e.what()));
      }
      auto it = params.find(sk);
      SKEIN_CHECK(it != params.end(), "hf folder ", dir, ": tensor '", name, "' (skein '", sk, "') is not a parameter of the model");
      SKEIN_CHECK(shape == it->second.shape(), "hf folder ", dir, ": tensor '", name, "' has shape ", shape_str(shape),
                  " but the model's '", sk, "' is ", shape_str(it->second.shape()));
      SKEIN_CHECK(loaded.insert(sk).second, "hf folder ", dir, ": two tensors map to the skein name '", sk, "'");
      NoGradGuard no_grad;
      return it->second;
    });
  }
  for (const auto& [name, p] : params)
    SKEIN_CHECK(loaded.count(name), "hf folder ", dir, ": the model's tensor '", name, "' is missing (",
                hf_tensor_name(name, true), ")");
  if (m.config.model.weight_dtype == DType::bf16) cpu_allocator::empty_cache();  // the conversion temporaries
  if (config) *config = m.config;
  return model;
}

void save_hf_llama(const HybridLM& model, const std::string& dir, const HfSaveOptions& opts) {
  const ModelConfig& m = model.cfg;
  SKEIN_CHECK(model.par().tp_size() == 1, "save_hf_llama: the model is split over ", model.par().tp_size(),
              " tensor-parallel ranks; export from one process (e.g. skein convert of its checkpoint)");
  SKEIN_CHECK(m.input_dim == 0, "save_hf_llama: a continuous-input model (model.input_dim ", m.input_dim,
              ") is not a language model");
  const fs::path out = empty_output(dir, "save_hf_llama");
  std::vector<bool> llama_layer;
  for (const auto& b : model.blocks) {
    const Mixer& mixer = *b->mixer;
    llama_layer.push_back(typeid(mixer) == typeid(SoftmaxAttention));
  }
  const bool llama = std::find(llama_layer.begin(), llama_layer.end(), false) == llama_layer.end();
  TensorMap tensors;
  for (const auto& [name, t] : model.state_dict()) {
    int64_t i = 0;
    std::string rest;
    const bool attention = split_layer(name, "blocks.", i, rest) && llama_layer.at(i);
    const bool keep = t.dtype() == DType::f32 || t.dtype() == DType::bf16;  // bf16 weights are written as BF16
    tensors.emplace(hf_tensor_name(name, attention), keep ? t.detach() : t.detach().to(DType::f32));
  }
  Config cfg = opts.config.value_or(Config{});
  if (!opts.config) cfg.model = m;
  json config = hf_config_json(m, llama, opts.max_position_embeddings);
  config["skein"] = {{"format_version", 1}, {"config", config_to_json(cfg)}};
  if (!llama) make_skein_hybrid_config(config, model);  // transformers runs it through modeling_skein.py
  save_safetensors_folder(out.string(), tensors, opts.max_shard_bytes, {{"format", "pt"}});
  if (!opts.tokenizer_identity.empty())
    write_hf_tokenizer(out.string(), opts.tokenizer_identity, opts.max_position_embeddings, config);
  if (!llama) write_hf_remote_code(out.string());
  std::ofstream f(out / "config.json");
  f << config.dump(2) << "\n";
  f.close();
  SKEIN_CHECK(f, "save_hf_llama: writing ", (out / "config.json").string(), " failed (disk full?)");
}

void convert_hf_to_checkpoint(const std::string& hf_dir, const std::string& ckpt_dir,
                              const std::vector<std::string>& overrides) {
  const fs::path out = empty_output(ckpt_dir, "convert");
  HfModel m = load_hf_llama(hf_dir);
  for (const std::string& o : overrides) apply_override(m.config, o);
  validate_config(m.config);
  // Any supported tokenizer.json (GPT-2, Llama 2/3, Mistral, Qwen2): fits the vocabulary and,
  // when the run's data exists, is the tokenizer the data was made with.
  check_hf_folder_tokenizer(hf_dir, m.config.model.vocab_size,
                            m.config.data.source == "hdf5" && fs::exists(m.config.data.path)
                                ? TokenFile::open(m.config.data.path).tokenizer_identity()
                                : std::string());
  CheckpointState st;
  st.model = std::move(m.state);
  st.config_yaml = config_to_yaml(m.config);
  st.counters["hf.max_position_embeddings"] = m.max_position_embeddings;
  // save_checkpoint writes <root>/ckpt-000000 atomically; it is then moved to the output name.
  const fs::path root = out.parent_path() / (out.filename().string() + ".convert-" + std::to_string(::getpid()));
  const std::string written = save_checkpoint(root.string(), st);
  fs::rename(written, out);
  fs::remove_all(root);
}

void convert_checkpoint_to_hf(const std::string& ckpt_dir, const std::string& hf_dir,
                              const std::vector<std::string>& overrides, int64_t max_shard_bytes) {
  CheckpointState st = load_checkpoint(ckpt_dir);
  HfSaveOptions opts;
  opts.config = parse_config(st.config_yaml, ckpt_dir + "/state.h5:config_yaml", overrides);
  opts.max_shard_bytes = max_shard_bytes;
  if (opts.config->data.source == "hdf5" && fs::exists(opts.config->data.path))  // the run's tokenizer travels along
    opts.tokenizer_identity = TokenFile::open(opts.config->data.path).tokenizer_identity();
  if (auto it = st.counters.find("hf.max_position_embeddings"); it != st.counters.end())
    opts.max_position_embeddings = it->second;
  std::unique_ptr<HybridLM> model;
  if (!opts.config->distill.teacher.empty()) {  // a distilled student: its distill section swaps the mixers
    model = load_student(ckpt_dir);
  } else {
    model = std::make_unique<HybridLM>(opts.config->model);
    try {
      model->load_state_dict(st.model);
    } catch (const Error& e) {
      throw Error(detail::concat("convert: checkpoint ", ckpt_dir, " does not rebuild from its model section: ", e.what()));
    }
  }
  save_hf_llama(*model, hf_dir, opts);
}

}  // namespace skein
