// hf_llama_config.cpp — config.json <-> ModelConfig for Llama, Mistral and Qwen2 (see
// hf_llama_config.h and docs/HF_FORMAT.md).
// reference: huggingface/transformers src/transformers/models/{llama,mistral,qwen2}/configuration_*.py,
// src/transformers/modeling_rope_utils.py (rope_scaling / rope_parameters, standardize_rope_params)
#include "launch/hf_llama_config.h"
#include <optional>
#include <set>
#include "core/error.h"
#include "layers/rope.h"

using nlohmann::json;

namespace skein {
namespace {

bool has(const json& c, const char* key) { return c.contains(key) && !c[key].is_null(); }

// c[key] as T (`fallback` when absent or null); a missing key or a wrong type names the key.
template <typename T>
T get(const json& c, const char* key, const std::string& src, std::optional<T> fallback = std::nullopt) {
  if (!has(c, key)) {
    SKEIN_CHECK(fallback.has_value(), src, ": key \"", key, "\" is missing");
    return *fallback;
  }
  const json& v = c[key];
  bool ok = v.is_number();
  if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
  else if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  else if constexpr (std::is_integral_v<T>) ok = v.is_number_integer();
  SKEIN_CHECK(ok, src, ": \"", key, "\" has the wrong type (", v.dump(), ")");
  return v.get<T>();
}

// The keys each rope_type reads (transformers' _validate_<type>_rope_parameters); any other key
// of the rope object is an error, so nothing that changes the frequencies passes unread.
const std::set<std::string>& rope_keys(const std::string& type) {
  static const std::set<std::string> base = {"rope_type", "type", "rope_theta"};
  static const std::map<std::string, std::set<std::string>> extra = {
      {"default", {}},
      {"linear", {"factor"}},
      {"dynamic", {"factor"}},
      {"llama3", {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}},
      {"yarn", {"factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
                "mscale_all_dim", "truncate"}}};
  static std::map<std::string, std::set<std::string>> all;
  if (all.empty())
    for (const auto& [t, keys] : extra) {
      all[t] = base;
      all[t].insert(keys.begin(), keys.end());
    }
  return all.at(type);
}

// rope_scaling (transformers < 5) or rope_parameters (v5) into m's rope_* fields.
void read_rope(const json& c, const std::string& src, int64_t max_pos, ModelConfig& m) {
  m.rope_theta = get<double>(c, "rope_theta", src, 10000.0);
  // transformers: rope_parameters = rope_scaling or rope_parameters (rope_scaling wins).
  const char* key = has(c, "rope_scaling") ? "rope_scaling" : has(c, "rope_parameters") ? "rope_parameters" : nullptr;
  if (has(c, "partial_rotary_factor"))
    SKEIN_CHECK(get<double>(c, "partial_rotary_factor", src) == 1.0, src, ": partial_rotary_factor ",
                c["partial_rotary_factor"].dump(), " is not supported (skein rotates the whole head)");
  if (!key) return;
  const json& rp = c[key];
  const std::string where = src + ": " + key;
  SKEIN_CHECK(rp.is_object(), where, " must be an object, got ", rp.dump());
  const std::string type = has(rp, "rope_type") ? get<std::string>(rp, "rope_type", where)
                                                : get<std::string>(rp, "type", where, "default");
  SKEIN_CHECK(is_rope_type(type), where, ".rope_type '", type,
              "' is not supported (skein implements default, linear, dynamic, llama3 and yarn)");
  for (const auto& [k, v] : rp.items())
    SKEIN_CHECK(rope_keys(type).count(k), where, ".", k, " (", v.dump(), ") is not supported for rope_type '", type,
                "' (skein reads ", [&] {
                  std::string s;
                  for (const std::string& x : rope_keys(type)) s += (s.empty() ? "" : ", ") + x;
                  return s;
                }(), ")");
  m.rope_theta = get<double>(rp, "rope_theta", where, m.rope_theta);
  m.rope_type = type;
  if (type == "default") return;
  m.rope_factor = get<double>(rp, "factor", where);
  m.rope_original_max_positions = get<int64_t>(rp, "original_max_position_embeddings", where, max_pos);
  if (type == "dynamic") m.rope_original_max_positions = max_pos;  // transformers scales from max_position_embeddings
  if (type == "llama3") {
    m.rope_low_freq_factor = get<double>(rp, "low_freq_factor", where);
    m.rope_high_freq_factor = get<double>(rp, "high_freq_factor", where);
  }
  if (type == "yarn") {
    m.rope_beta_fast = get<double>(rp, "beta_fast", where, 32.0);
    m.rope_beta_slow = get<double>(rp, "beta_slow", where, 1.0);
    m.rope_truncate = get<bool>(rp, "truncate", where, true);
    m.rope_attention_factor = has(rp, "attention_factor")
                                  ? get<double>(rp, "attention_factor", where)
                                  : yarn_attention_factor(m.rope_factor, get<double>(rp, "mscale", where, 0.0),
                                                          get<double>(rp, "mscale_all_dim", where, 0.0));
  }
  try {
    validate_rope(m);
  } catch (const Error& e) {
    throw Error(detail::concat(where, ": ", e.what()));
  }
}

// The sliding window of the family: Mistral's sliding_window; Qwen2's when use_sliding_window
// (transformers then slides layers i >= max_window_layers, or those layer_types names
// "sliding_attention"); skein has one window for every softmax layer, so a mix is an error.
int64_t read_window(const json& c, const std::string& src, const std::string& type, int64_t n_layers) {
  int64_t window = 0;
  if (type == "mistral" || type == "skein_hybrid") {
    window = get<int64_t>(c, "sliding_window", src, 0);
  } else if (type == "qwen2" && get<bool>(c, "use_sliding_window", src, false)) {
    window = get<int64_t>(c, "sliding_window", src, 4096);
  }
  std::vector<bool> sliding;
  if (has(c, "layer_types") && type != "skein_hybrid") {
    SKEIN_CHECK(c["layer_types"].is_array() && static_cast<int64_t>(c["layer_types"].size()) == n_layers, src,
                ": layer_types must list num_hidden_layers (", n_layers, ") entries, got ", c["layer_types"].dump());
    for (const json& t : c["layer_types"]) {
      SKEIN_CHECK(t == "full_attention" || t == "sliding_attention", src, ": layer_types entry ", t.dump(),
                  " is not supported (full_attention, sliding_attention)");
      sliding.push_back(t == "sliding_attention" && window > 0);
    }
  } else if (type == "qwen2" && window > 0) {
    const int64_t first = get<int64_t>(c, "max_window_layers", src, 28);
    for (int64_t i = 0; i < n_layers; ++i) sliding.push_back(i >= first);
  }
  if (sliding.empty()) return window;
  const bool all = std::find(sliding.begin(), sliding.end(), false) == sliding.end();
  const bool none = std::find(sliding.begin(), sliding.end(), true) == sliding.end();
  SKEIN_CHECK(all || none, src, ": sliding_window ", window, " on some layers only (",
              has(c, "layer_types") ? "layer_types" : "max_window_layers", ") is not supported: skein applies one "
              "window to every softmax layer");
  return all ? window : 0;
}

}  // namespace

std::string hf_dtype_name(DType dt) {
  switch (dt) {
    case DType::f64: return "float64";
    default: return std::string(dtype_name(dt)) == "bf16" ? "bfloat16" : "float32";
  }
}

ModelConfig hf_model_config(const json& c, const std::string& src, int64_t* max_position_embeddings) {
  SKEIN_CHECK(c.is_object(), src, ": must be a JSON object");
  const std::string type = get<std::string>(c, "model_type", src, "llama");
  SKEIN_CHECK(type == "llama" || type == "mistral" || type == "qwen2" || (type == "skein_hybrid" && c.contains("skein")),
              src, ": model_type '", type, "' is not supported (skein reads llama, mistral and qwen2 checkpoints and "
              "its own skein_hybrid exports)");
  ModelConfig m;
  m.layer_pattern = "S";
  m.vocab_size = get<int64_t>(c, "vocab_size", src);
  m.d_model = get<int64_t>(c, "hidden_size", src);
  m.n_layers = get<int64_t>(c, "num_hidden_layers", src);
  m.n_heads = get<int64_t>(c, "num_attention_heads", src);
  m.n_kv_heads = get<int64_t>(c, "num_key_value_heads", src, m.n_heads);
  m.mlp_hidden = get<int64_t>(c, "intermediate_size", src);
  m.norm_eps = get<double>(c, "rms_norm_eps", src, 1e-6);
  m.tie_embeddings = get<bool>(c, "tie_word_embeddings", src, false);
  *max_position_embeddings = get<int64_t>(c, "max_position_embeddings", src, 2048);
  for (const auto& [key, v] : {std::pair{"vocab_size", m.vocab_size}, {"hidden_size", m.d_model},
                               {"num_hidden_layers", m.n_layers}, {"num_attention_heads", m.n_heads},
                               {"num_key_value_heads", m.n_kv_heads}, {"intermediate_size", m.mlp_hidden}})
    SKEIN_CHECK(v >= 1, src, ": ", key, " must be >= 1, got ", v);
  SKEIN_CHECK(m.d_model % m.n_heads == 0 && m.n_heads % m.n_kv_heads == 0, src, ": hidden_size ", m.d_model,
              " must be a multiple of num_attention_heads ", m.n_heads, ", itself a multiple of num_key_value_heads ",
              m.n_kv_heads);
  const int64_t head_dim = get<int64_t>(c, "head_dim", src, m.head_dim());
  SKEIN_CHECK(head_dim == m.head_dim(), src, ": head_dim ", head_dim, " differs from hidden_size / num_attention_heads = ",
              m.head_dim(), " (skein's head dim is d_model / n_heads)");
  const std::string act = get<std::string>(c, "hidden_act", src, "silu");
  SKEIN_CHECK(act == "silu", src, ": hidden_act '", act, "' is not supported (skein's MLP is SwiGLU: silu)");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    SKEIN_CHECK(!get<bool>(c, bias, src, false), src, ": ", bias, " is true, but skein's ", type,
                " layers have no ", bias == std::string("mlp_bias") ? "MLP" : "output-projection", " biases");
  m.qkv_bias = type == "qwen2";  // Qwen2Attention: q/k/v_proj with bias, o_proj without
  if (type == "skein_hybrid") m.qkv_bias = get<bool>(c, "qkv_bias", src, false);
  read_rope(c, src, *max_position_embeddings, m);
  m.window = read_window(c, src, type, m.n_layers);
  SKEIN_CHECK(m.window >= 0, src, ": sliding_window must be >= 0, got ", m.window);
  return m;
}

json hf_config_json(const ModelConfig& m, bool llama, int64_t max_position_embeddings) {
  const std::string family = m.qkv_bias ? "qwen2" : m.window > 0 ? "mistral" : "llama";
  const std::string arch = !llama ? "SkeinForCausalLM" : family == "qwen2" ? "Qwen2ForCausalLM"
                                                       : family == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM";
  json rope = {{"rope_type", m.rope_type}, {"rope_theta", m.rope_theta}};
  if (m.rope_type != "default") rope["factor"] = m.rope_factor;
  if (m.rope_type == "dynamic") max_position_embeddings = m.rope_original_max_positions;
  if (m.rope_type == "llama3" || m.rope_type == "yarn")
    rope["original_max_position_embeddings"] = m.rope_original_max_positions;
  if (m.rope_type == "llama3") {
    rope["low_freq_factor"] = m.rope_low_freq_factor;
    rope["high_freq_factor"] = m.rope_high_freq_factor;
  }
  if (m.rope_type == "yarn") {
    rope["beta_fast"] = m.rope_beta_fast;
    rope["beta_slow"] = m.rope_beta_slow;
    rope["truncate"] = m.rope_truncate;
    rope["attention_factor"] = m.rope_attention_factor > 0 ? m.rope_attention_factor : yarn_attention_factor(m.rope_factor);
  }
  json c = {{"architectures", json::array({arch})},
            {"model_type", family},
            {"vocab_size", m.vocab_size},
            {"hidden_size", m.d_model},
            {"intermediate_size", m.mlp_hidden},
            {"num_hidden_layers", m.n_layers},
            {"num_attention_heads", m.n_heads},
            {"num_key_value_heads", m.kv_heads()},
            {"head_dim", m.head_dim()},
            {"hidden_act", "silu"},
            {"max_position_embeddings", max_position_embeddings},
            {"rms_norm_eps", m.norm_eps},
            {"rope_theta", m.rope_theta},
            {"rope_parameters", rope},
            {"tie_word_embeddings", m.tie_embeddings},
            {"initializer_range", m.init_std},
            {"torch_dtype", hf_dtype_name(m.dtype)}};
  if (family == "llama") {
    c["attention_bias"] = false;
    c["mlp_bias"] = false;
  } else if (family == "mistral") {
    c["sliding_window"] = m.window;
  } else {  // qwen2: every layer slides when there is a window (max_window_layers 0)
    c["use_sliding_window"] = m.window > 0;
    c["sliding_window"] = m.window > 0 ? json(m.window) : json();
    c["max_window_layers"] = 0;
    c["layer_types"] = json::array();
    for (int64_t i = 0; i < m.n_layers; ++i) c["layer_types"].push_back(m.window > 0 ? "sliding_attention" : "full_attention");
  }
  return c;
}

}  // namespace skein
