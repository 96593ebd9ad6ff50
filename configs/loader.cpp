// loader.cpp — YAML files and `--set section.key=value` overrides into Config through the
// schema of registry.h; validation (each key's rule, then the rules across keys); Config back
// to YAML; "did you mean" suggestions for unknown keys by edit distance.
#include "configs/loader.h"
#include <yaml-cpp/yaml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include "configs/registry.h"
#include "core/error.h"

namespace skein {
namespace {

// Where a value came from, printed in front of every message: "file:3: ", "--set: ".
struct Where {
  std::string source;
  int line = 0;  // 1-based; 0: no line
  std::string str() const {
    std::string s = source.empty() ? "<config>" : source;
    if (line > 0) s += ":" + std::to_string(line);
    return s + ": ";
  }
};

[[noreturn]] void fail(const Where& w, const std::string& msg) { throw Error(w.str() + msg); }

int line_of(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Optimal-string-alignment distance (Levenshtein plus adjacent swaps), case-insensitive.
size_t edit_distance(const std::string& a0, const std::string& b0) {
  const std::string a = lower(a0), b = lower(b0);
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }
std::string leaf_of(const std::string& key) {
  const size_t dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}
std::string join(const std::vector<std::string>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + xs[i];
  return s;
}
std::vector<std::string> leaves_of_section(const std::string& section) {
  std::vector<std::string> out;
  for (const auto& k : config_keys())
    if (section_of(k) == section) out.push_back(leaf_of(k));
  return out;
}
bool is_section(const std::string& s) {
  const auto sections = config_sections();
  return std::find(sections.begin(), sections.end(), s) != sections.end();
}

// " (did you mean 'model.d_model'?)" — or, when nothing is close, the keys that exist.
std::string suggest_key(const std::string& name) {
  const std::string leaf = leaf_of(name), section = section_of(name);
  if (name.find('.') == std::string::npos && is_section(name))
    return " ('" + name + "' is a section; name one key: " + name + "." + leaves_of_section(name).front() + ")";
  const auto keys = config_keys();
  for (const auto& k : keys)  // the right key in the wrong section, e.g. train.lr
    if (leaf_of(k) == leaf) return " (did you mean '" + k + "'?)";
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& k : keys) {
    const size_t d = edit_distance(name, k);
    if (d < best_d) best_d = d, best = k;
  }
  if (best_d <= std::max<size_t>(2, leaf.size() / 3)) return " (did you mean '" + best + "'?)";
  if (is_section(section) && leaf.size() >= 3)  // a prefix or part of a key: model.vocab
    for (const auto& k : keys)
      if (section_of(k) == section && leaf_of(k).find(leaf) != std::string::npos) return " (did you mean '" + k + "'?)";
  if (is_section(section)) return " (keys of '" + section + "': " + join(leaves_of_section(section)) + ")";
  return " (sections: " + join(config_sections()) + ")";
}

std::string suggest_section(const std::string& name) {
  for (const auto& k : config_keys())  // a key written at the top level
    if (leaf_of(k) == name) return " (did you mean '" + k + "'? keys go inside their section: " +
                                   section_of(k) + ": {" + name + ": ...})";
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& s : config_sections()) {
    const size_t d = edit_distance(name, s);
    if (d < best_d) best_d = d, best = s;
  }
  if (best_d <= std::max<size_t>(2, name.size() / 3)) return " (did you mean '" + best + "'?)";
  return " (sections: " + join(config_sections()) + ")";
}

// A YAML node in words, for "expected int, got ...".
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: {
      std::string s = n.Scalar();
      if (s.size() > 60) s = s.substr(0, 57) + "...";
      return n.Tag() == "?" ? "'" + s + "'" : "quoted string '" + s + "'";
    }
    default: return "an undefined node";
  }
}

// A value in words for "invalid value ...": strings in quotes.
std::string show(const ConfigValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return "'" + *s + "'";
  return format_config_value(v);
}

// Exact number parsing (the whole text, an optional '+'); false on anything else.
template <class N>
bool parse_number(const std::string& text, N& out, bool& out_of_range) {
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  if (b == e || *b == '+' || (text[0] == '+' && *b == '-')) return false;
  std::from_chars_result r;
  if constexpr (std::is_floating_point_v<N>) {
    const std::string l = lower(std::string(b, e));  // YAML's spellings of the non-finite values
    if (l == ".inf") return out = std::numeric_limits<N>::infinity(), true;
    if (l == "-.inf") return out = -std::numeric_limits<N>::infinity(), true;
    if (l == ".nan") return out = std::numeric_limits<N>::quiet_NaN(), true;
    r = std::from_chars(b, e, out, std::chars_format::general);
  } else {
    r = std::from_chars(b, e, out);
  }
  out_of_range = r.ec == std::errc::result_out_of_range && r.ptr == e;
  return r.ec == std::errc() && r.ptr == e;
}

bool parse_bool(const std::string& s, bool& out) {
  const std::string l = lower(s);
  if (l == "true" || l == "yes" || l == "on") return out = true, true;
  if (l == "false" || l == "no" || l == "off") return out = false, true;
  return false;
}

// The node as a value of the key's type; throws naming the key, the place, the type and the node.
ConfigValue parse_value(const ConfigKey& key, const YAML::Node& node, const Where& where) {
  auto type_error = [&](const std::string& extra = "") {
    fail(where, key.name + ": expected " + key_type_name(key.type) + ", got " + describe(node) + extra);
  };
  const bool plain = node.IsScalar() && node.Tag() == "?";
  bool range = false;
  switch (key.type) {
    case KeyType::Int: {
      int64_t v = 0;
      if (!plain) type_error();
      if (!parse_number(node.Scalar(), v, range)) type_error(range ? " (out of range)" : "");
      return v;
    }
    case KeyType::UInt: {
      uint64_t v = 0;
      if (!plain) type_error();
      if (!parse_number(node.Scalar(), v, range)) type_error(range ? " (out of range)" : "");
      return v;
    }
    case KeyType::Float: {
      double v = 0;
      if (!plain) type_error();
      if (!parse_number(node.Scalar(), v, range)) type_error(range ? " (out of range)" : "");
      return v;
    }
    case KeyType::Bool: {
      bool v = false;
      if (!plain || !parse_bool(node.Scalar(), v)) type_error(" (true or false)");
      return v;
    }
    case KeyType::String:
      if (node.IsNull()) return std::string();  // `key:` or `key: ~` is ""
      if (!node.IsScalar()) type_error();
      return node.Scalar();
    case KeyType::PathList: {
      std::vector<DataPath> out;
      if (node.IsNull()) return out;
      if (!node.IsSequence()) type_error(" (e.g. [{path: a.h5, weight: 0.7}, {path: b.h5, weight: 0.3}])");
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        const std::string at = key.name + "[" + std::to_string(i) + "]";
        if (!item.IsMap()) fail(where, at + ": expected {path: ..., weight: ...}, got " + describe(item));
        DataPath dp;
        for (auto it = item.begin(); it != item.end(); ++it) {
          const std::string field = it->first.IsScalar() ? it->first.Scalar() : "?";
          if (field == "path" && it->second.IsScalar()) {
            dp.path = it->second.Scalar();
          } else if (field == "weight") {
            bool range = false;
            if (!it->second.IsScalar() || !parse_number(it->second.Scalar(), dp.weight, range))
              fail(where, at + ".weight: expected float, got " + describe(it->second));
          } else {
            fail(where, at + ": unknown field '" + field + "' (an entry is {path: ..., weight: ...})");
          }
        }
        if (dp.path.empty()) fail(where, at + ": no path");
        out.push_back(dp);
      }
      return out;
    }
    case KeyType::StringList: {
      std::vector<std::string> out;
      if (node.IsNull()) return out;
      if (!node.IsSequence()) type_error(" (e.g. [a, b])");
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        if (!item.IsNull() && !item.IsScalar())
          fail(where, key.name + "[" + std::to_string(i) + "]: expected string, got " + describe(item));
        out.push_back(item.IsNull() ? std::string() : item.Scalar());
      }
      return out;
    }
  }
  SKEIN_ASSERT(false, "unhandled key type");
}

void set_checked(Config& cfg, const ConfigKey& key, const ConfigValue& v, const Where& where) {
  if (!key.valid(v)) fail(where, key.name + ": invalid value " + show(v) + " (" + key.rule + ")");
  key.set(cfg, v);
}

// The sections of one YAML document into cfg.
void apply_document(Config& cfg, const YAML::Node& root, const std::string& source) {
  if (root.IsNull()) return;  // empty file: all defaults
  if (!root.IsMap())
    fail({source, line_of(root)}, "a config is a map of sections (" + join(config_sections()) + "), got " + describe(root));
  std::map<std::string, int> seen;  // section or key -> line
  for (auto it = root.begin(); it != root.end(); ++it) {
    const Where w{source, line_of(it->first)};
    if (!it->first.IsScalar()) fail(w, "a section name must be a word, got " + describe(it->first));
    const std::string section = it->first.Scalar();
    if (!is_section(section)) fail(w, "unknown section '" + section + "'" + suggest_section(section));
    if (seen.count(section)) fail(w, "section '" + section + "' appears twice (first on line " + std::to_string(seen[section]) + ")");
    seen[section] = w.line;
    const YAML::Node body = it->second;
    if (body.IsNull()) continue;  // `model:` with nothing under it
    if (!body.IsMap()) fail(w, "section '" + section + "' must be a map of keys (" + section + ": {key: value}), got " + describe(body));
    for (auto jt = body.begin(); jt != body.end(); ++jt) {
      const Where kw{source, line_of(jt->first)};
      if (!jt->first.IsScalar()) fail(kw, "a key of section '" + section + "' must be a word, got " + describe(jt->first));
      const std::string name = section + "." + jt->first.Scalar();
      const ConfigKey* key = find_config_key(name);
      if (!key) fail(kw, "unknown key '" + name + "'" + suggest_key(name));
      if (seen.count(name)) fail(kw, "key '" + name + "' is set twice (first on line " + std::to_string(seen[name]) + ")");
      seen[name] = kw.line;
      set_checked(cfg, *key, parse_value(*key, jt->second, kw), kw);
    }
  }
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  Config cfg;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    fail({source, e.mark.line >= 0 ? e.mark.line + 1 : 0}, "YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) fail({source, 0}, "holds " + std::to_string(docs.size()) + " YAML documents; a config is one");
  if (!docs.empty()) apply_document(cfg, docs[0], source);
  for (const auto& o : overrides) apply_override(cfg, o, "--set");
  try {
    validate_config(cfg);
  } catch (const Error& e) {  // name where the values came from
    std::string from = source;
    if (!overrides.empty()) from += from.empty() ? "--set" : " + --set";
    throw Error(from.empty() ? std::string(e.what()) : from + ": " + e.what());
  }
  return cfg;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return parse_config("", "", overrides);
  namespace fs = std::filesystem;
  SKEIN_CHECK(fs::exists(path), "config file '", path, "' does not exist");
  SKEIN_CHECK(!fs::is_directory(path), "config file '", path, "' is a directory");
  std::ifstream f(path, std::ios::binary);
  SKEIN_CHECK(f, "config file '", path, "' cannot be read");
  std::ostringstream text;
  text << f.rdbuf();
  return parse_config(text.str(), path, overrides);
}

void apply_override(Config& cfg, const std::string& assignment, const std::string& source) {
  const Where w{source, 0};
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) fail(w, "'" + assignment + "' is not of the form section.key=value");
  const std::string name = trim(assignment.substr(0, eq)), text = assignment.substr(eq + 1);
  if (name.empty()) fail(w, "'" + assignment + "' has no key before '='");
  const ConfigKey* key = find_config_key(name);
  if (!key) fail(w, "unknown key '" + name + "'" + suggest_key(name));
  const std::string hint = key->type == KeyType::String ? " (quote a string holding ': ', ' #', '[' or '{': " +
                                                              name + "='\"...\"')" : "";
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(w, name + ": cannot read '" + text + "' as a YAML value: " + e.msg + hint);
  }
  if (!hint.empty() && (node.IsMap() || node.IsSequence()))
    fail(w, name + ": expected string, got " + describe(node) + hint);
  set_checked(cfg, *key, parse_value(*key, node, w), w);
}

void validate_config(const Config& cfg) {
  for (const auto& k : config_schema()) {
    const ConfigValue v = k.get(cfg);
    SKEIN_CHECK(k.valid(v), k.name, ": invalid value ", show(v), " (", k.rule, ")");
  }
  // Rules across keys; each message names the key it blames and the values involved.
  const ModelConfig& m = cfg.model;
  SKEIN_CHECK(m.d_model % m.n_heads == 0, "model.d_model: ", m.d_model, " is not divisible by model.n_heads (", m.n_heads, ")");
  SKEIN_CHECK(m.n_heads % m.kv_heads() == 0, "model.n_kv_heads: ", m.n_kv_heads, " does not divide model.n_heads (", m.n_heads, ")");
  SKEIN_CHECK(m.head_dim() % 2 == 0 || m.layer_pattern.find('S') == std::string::npos,
              "model.n_heads: head dim model.d_model / model.n_heads = ", m.d_model, " / ", m.n_heads, " = ",
              m.head_dim(), " is odd, but softmax (S) layers need an even head dim for RoPE");
  SKEIN_CHECK(m.n_layers % static_cast<int64_t>(m.layer_pattern.size()) == 0, "model.layer_pattern: '",
              m.layer_pattern, "' (", m.layer_pattern.size(), " letters) does not repeat evenly over model.n_layers (",
              m.n_layers, "); the rule: n_layers must be a multiple of the pattern's length (e.g. n_layers ",
              (m.n_layers / static_cast<int64_t>(m.layer_pattern.size()) + 1) * static_cast<int64_t>(m.layer_pattern.size()),
              ", or a pattern of ", m.n_layers, " letters)");
  SKEIN_CHECK(static_cast<int64_t>(m.layer_variants.size()) <= m.n_layers, "model.layer_variants: ",
              m.layer_variants.size(), " entries but model.n_layers is ", m.n_layers);
  for (int64_t i = 0; i < m.n_layers && m.feature_map == "hedgehog"; ++i)
    SKEIN_CHECK(m.layer_kind(i) != 'L' || m.variant_of(i) == "plain" || m.variant_of(i) == "decay",
                "model.feature_map: 'hedgehog' works with the plain and decay variants only, but layer ", i,
                " is '", m.variant_of(i), "'");
  SKEIN_CHECK(m.mom_topk <= m.mom_memories, "model.mom_topk: ", m.mom_topk, " exceeds model.mom_memories (",
              m.mom_memories, ")");
  const DataConfig& d = cfg.data;
  SKEIN_CHECK(d.source != "hdf5" || !d.path.empty(), "data.path: '' (empty), but data.source is hdf5");
  if (d.source == "mqar") {  // the zoology generator's rules (data/synthetic.h)
    SKEIN_CHECK(m.vocab_size != 0, "model.vocab_size: 0 (from the data) does not apply to data.source mqar; set it (e.g. 256)");
    SKEIN_CHECK(d.seq_len % 2 == 0 && d.seq_len >= 4 * d.mqar_num_kv_pairs, "data.seq_len: ", d.seq_len,
                " must be even and >= 4 * data.mqar_num_kv_pairs (", 4 * d.mqar_num_kv_pairs, ") for mqar");
    SKEIN_CHECK(d.mqar_num_kv_pairs <= m.vocab_size / 2 - 1, "data.mqar_num_kv_pairs: ", d.mqar_num_kv_pairs,
                " distinct keys do not fit in [1, model.vocab_size / 2) with model.vocab_size ", m.vocab_size);
    SKEIN_CHECK(d.mqar_min_kv_pairs <= d.mqar_num_kv_pairs, "data.mqar_min_kv_pairs: ", d.mqar_min_kv_pairs,
                " exceeds data.mqar_num_kv_pairs (", d.mqar_num_kv_pairs, ")");
    SKEIN_CHECK(d.mqar_curriculum_interval == 0 || d.mqar_min_kv_pairs > 0, "data.mqar_curriculum_interval: ",
                d.mqar_curriculum_interval, " needs data.mqar_min_kv_pairs > 0 (the rungs it walks)");
    SKEIN_CHECK(d.mqar_min_seq_len == 0 || (d.mqar_min_kv_pairs > 0 && d.mqar_min_seq_len % 2 == 0),
                "data.mqar_min_seq_len: ", d.mqar_min_seq_len, " must be even and needs data.mqar_min_kv_pairs > 0");
    for (int64_t k = d.mqar_min_kv_pairs, len = d.mqar_min_seq_len; d.mqar_min_seq_len > 0 && k < d.mqar_num_kv_pairs; k *= 2, len *= 2)
      SKEIN_CHECK(std::min(len, d.seq_len) >= 4 * k, "data.mqar_min_seq_len: ", d.mqar_min_seq_len, " gives the rung of ", k,
                  " pairs ", std::min(len, d.seq_len), " tokens; it needs >= 4 * pairs = ", 4 * k);
  }
  SKEIN_CHECK(d.source != "icl_regression" || d.seq_len == 2 * d.icl_points, "data.seq_len: ", d.seq_len,
              " must be 2 * data.icl_points (", 2 * d.icl_points, ") for icl_regression: an x token and a y token a point");
  const OptimConfig& o = cfg.optim;
  if (o.schedule != "constant")  // (a warm-up longer than the run is clamped by the trainer, with a note)
    SKEIN_CHECK(o.min_lr <= o.lr, "optim.min_lr: ", format_config_value(o.min_lr), " exceeds optim.lr (",
                format_config_value(o.lr), "); the ", o.schedule,
                " schedule decays from lr to min_lr");
  const ParallelConfig& p = cfg.parallel;
  SKEIN_CHECK(m.n_heads % p.tp == 0 && m.kv_heads() % p.tp == 0, "parallel.tp: ", p.tp,
              " does not divide model.n_heads (", m.n_heads, ") and the key/value heads (", m.kv_heads(), ")");
  SKEIN_CHECK(m.mlp_hidden % p.tp == 0, "parallel.tp: ", p.tp, " does not divide model.mlp_hidden (", m.mlp_hidden, ")");
  SKEIN_CHECK(d.seq_len % p.sp == 0, "parallel.sp: ", p.sp, " does not divide data.seq_len (", d.seq_len, ")");
  SKEIN_CHECK(p.grad_reduce_dtype != "bf16" || m.dtype == DType::f32, "parallel.grad_reduce_dtype: bf16 rounds f32 "
              "gradients but model.dtype is ", dtype_name(m.dtype), " (use parallel.grad_reduce_dtype=f32)");
  // Whatever else the model itself requires (vocab 0 is resolved from the data later).
  ModelConfig resolved = m;
  if (resolved.vocab_size == 0) resolved.vocab_size = 2;
  resolved.validate();
}

std::string config_to_yaml(const Config& cfg) {
  std::ostringstream os;
  os << "# skein config: every key in schema order (configs/registry.cpp documents each)\n";
  std::string section;
  for (const auto& k : config_schema()) {
    if (section_of(k.name) != section) {
      section = section_of(k.name);
      os << section << ":\n";
    }
    std::string line = "  " + leaf_of(k.name) + ": " + format_config_value(k.get(cfg));
    line.resize(std::max<size_t>(line.size() + 2, 40), ' ');
    os << line << "# " << k.doc << "\n";
  }
  return os.str();
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& k : config_schema()) out.push_back(k.name);
  return out;
}

}  // namespace skein
