// hf_export.cpp — skein_hybrid config keys and remote-code files of an HF export (see
// hf_export.h). The mixer of each layer is described from its C++ type and options, so the
// Python side rebuilds exactly the layers the checkpoint holds (distilled students included).
#include "launch/hf_export.h"
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <typeinfo>
#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"
#include "layers/attention.h"
#include "layers/liger.h"
#include "layers/linear_attention.h"
#include "layers/lolcats.h"
#include "layers/mom.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {

json hf_layer_mixers(const HybridLM& model) {
  json layers = json::array();
  for (const auto& block : model.blocks) {
    const Mixer& m = *block->mixer;
    json spec;
    if (typeid(m) == typeid(SoftmaxAttention)) {
      spec = {{"kind", "softmax"}, {"window", static_cast<const SoftmaxAttention&>(m).window}};
    } else if (const auto* l = dynamic_cast<const LinearAttention*>(&m)) {
      spec = {{"kind", "linear"}, {"variant", l->variant}};
    } else if (dynamic_cast<const MoM*>(&m)) {
      spec = {{"kind", "mom"}};
    } else if (const auto* g = dynamic_cast<const LigerAttention*>(&m)) {
      const LigerOptions& o = g->options;
      spec = {{"kind", "liger"}, {"attention", o.attention}, {"window", o.window}, {"mix", o.mix},
              {"gate_normalizer", o.gate_normalizer}};
    } else if (const auto* c = dynamic_cast<const LolcatsAttention*>(&m)) {
      spec = {{"kind", "lolcats"}, {"window", c->options.window}, {"feature_dim", c->q_map.size(2)},
              {"linear", c->options.linear}};
    } else {
      spec = {{"kind", std::string("unsupported: ") + typeid(m).name()}};
    }
    std::vector<std::string> names;
    for (const auto& [name, t] : m.state_dict()) names.push_back(name);
    std::sort(names.begin(), names.end());
    spec["tensors"] = names;
    layers.push_back(spec);
  }
  return layers;
}

void make_skein_hybrid_config(json& config, const HybridLM& model) {
  config["model_type"] = "skein_hybrid";
  config["architectures"] = json::array({"SkeinForCausalLM"});
  config["auto_map"] = {{"AutoConfig", "configuration_skein.SkeinConfig"},
                        {"AutoModelForCausalLM", "modeling_skein.SkeinForCausalLM"}};
  config["layer_mixers"] = hf_layer_mixers(model);
}

void write_hf_remote_code(const std::string& dir) {
  for (const auto& [name, text] : {std::pair{"configuration_skein.py", kHfConfigurationPy},
                                   std::pair{"modeling_skein.py", kHfModelingPy},
                                   std::pair{"skein_mixers.py", kHfMixersPy}}) {
    const fs::path p = fs::path(dir) / name;
    std::ofstream f(p, std::ios::binary);
    f << text;
    f.close();
    SKEIN_CHECK(f, "hf export: writing ", p.string(), " failed (disk full?)");
  }
}

BpeTokenizer hf_tokenizer_of(const std::string& identity) {
  if (identity == "bytes") return train_bpe({}, 257);  // 256 byte symbols (id = byte), no merges, <|endoftext|>
  return BpeTokenizer::from_json(identity, "the token file's tokenizer");
}

namespace {

void write_json(const fs::path& p, const json& j) {
  std::ofstream f(p);
  f << j.dump(2) << "\n";
  f.close();
  SKEIN_CHECK(f, "hf export: writing ", p.string(), " failed (disk full?)");
}

json read_json_file(const fs::path& p) {
  std::ifstream in(p);
  SKEIN_CHECK(in, "hf folder: cannot read ", p.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(detail::concat(p.string(), ": not valid JSON (", e.what(), ")"));
  }
}

}  // namespace

namespace {

// write_hf_tokenizer for data tokenized by a Hugging Face tokenizer.json (HfTokenizer).
void write_hf_tokenizer_json(const std::string& dir, const HfTokenizer& tok, int64_t model_max_length, json& config) {
  const std::string identity = tok.identity();
  const std::string text = identity.substr(identity.find('\n') + 1);  // the tokenizer.json as it came
  std::ofstream f(fs::path(dir) / "tokenizer.json", std::ios::binary);
  f << text;
  f.close();
  SKEIN_CHECK(f, "hf export: writing ", (fs::path(dir) / "tokenizer.json").string(), " failed (disk full?)");
  const int64_t eos = tok.eos_id();
  const std::string eos_text = tok.decode({eos}, false);
  const std::vector<int64_t> prefix = tok.prefix_ids();
  const int64_t bos = prefix.size() == 1 ? prefix[0] : eos;
  write_json(fs::path(dir) / "tokenizer_config.json",
             {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", tok.decode({bos}, false)},
              {"eos_token", eos_text}, {"clean_up_tokenization_spaces", false}, {"model_max_length", model_max_length}});
  write_json(fs::path(dir) / "generation_config.json", {{"bos_token_id", bos}, {"eos_token_id", eos}});
  config["bos_token_id"] = bos;
  config["eos_token_id"] = eos;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_folder_tokenizer(const std::string& dir) {
  const fs::path path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(path)) return nullptr;
  return HfTokenizer::load(path.string());
}

namespace {

// The tokenizer.json text of an identity ("bytes": none).
std::string json_text_of(const std::string& identity) {
  if (HfTokenizer::is_identity(identity)) return identity.substr(identity.find('\n') + 1);
  return identity == "bytes" ? "" : identity;
}

}  // namespace

bool tokenizer_matches_identity(const Tokenizer& tok, const std::string& identity) {
  const std::string a = json_text_of(tok.identity()), b = json_text_of(identity);
  if (tok.identity() == identity || (!a.empty() && a == b)) return true;
  try {  // skein's BPE written twice (e.g. by prep and by an export): same vocab, merges, specials
    return same_tokenizer(BpeTokenizer::from_json(a, "tokenizer"), hf_tokenizer_of(identity));
  } catch (const Error&) {
    return false;
  }
}

void check_hf_folder_tokenizer(const std::string& hf_dir, int64_t model_vocab_size, const std::string& data_identity) {
  const std::unique_ptr<Tokenizer> tok = load_hf_folder_tokenizer(hf_dir);
  if (!tok) return;
  SKEIN_CHECK(tok->vocab_size() <= model_vocab_size, "convert: ", hf_dir, "/tokenizer.json has ", tok->vocab_size(),
              " tokens, more than the model's vocab_size ", model_vocab_size);
  if (!data_identity.empty())
    SKEIN_CHECK(tokenizer_matches_identity(*tok, data_identity), "convert: the run's data was tokenized with another tokenizer than ",
                hf_dir, "/tokenizer.json (prep the text again with --tokenizer hf:", hf_dir, "/tokenizer.json)");
}

void write_hf_tokenizer(const std::string& dir, const std::string& identity, int64_t model_max_length, json& config) {
  if (HfTokenizer::is_identity(identity)) {
    write_hf_tokenizer_json(dir, *HfTokenizer::from_identity(identity), model_max_length, config);
    return;
  }
  const BpeTokenizer tok = hf_tokenizer_of(identity);
  const int64_t eos = tok.eos_id();
  const std::string eos_text = tok.vocab.at(static_cast<size_t>(eos));
  std::ofstream f(fs::path(dir) / "tokenizer.json");
  f << tok.to_json();
  f.close();
  SKEIN_CHECK(f, "hf export: writing ", (fs::path(dir) / "tokenizer.json").string(), " failed (disk full?)");
  write_json(fs::path(dir) / "tokenizer_config.json",
             {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", eos_text}, {"eos_token", eos_text},
              {"pad_token", eos_text}, {"add_bos_token", false}, {"add_eos_token", false},
              {"clean_up_tokenization_spaces", false}, {"model_max_length", model_max_length}});
  write_json(fs::path(dir) / "generation_config.json",
             {{"bos_token_id", eos}, {"eos_token_id", eos}, {"pad_token_id", eos}});
  config["bos_token_id"] = config["eos_token_id"] = config["pad_token_id"] = eos;
}

std::optional<BpeTokenizer> read_hf_tokenizer(const std::string& dir) {
  const fs::path path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(path)) return std::nullopt;
  BpeTokenizer tok = BpeTokenizer::load(path.string());
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    const json c = read_json_file(cfg_path);
    if (c.contains("eos_token") && c["eos_token"].is_string()) {
      const std::string eos = c["eos_token"];
      SKEIN_CHECK(tok.token_to_id.count(eos) && tok.token_to_id.at(eos) == tok.eos_id(), cfg_path.string(),
                  ": eos_token '", eos, "' is not the end-of-text token of tokenizer.json (id ", tok.eos_id(), ")");
    }
  }
  return tok;
}

bool same_tokenizer(const BpeTokenizer& a, const BpeTokenizer& b) {
  return a.vocab == b.vocab && a.merges == b.merges && a.special == b.special;
}

}  // namespace skein
