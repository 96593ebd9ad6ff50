// bpe_json.cpp — BpeTokenizer as a Hugging Face tokenizer.json (GPT-2-style byte-level BPE):
// to_json writes it (deterministic text, vocab in id order, merges as "a b"), from_json reads
// and validates it (merges as "a b" or ["a", "b"]), save / load do the file I/O.
#include <fstream>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace {

using nlohmann::json;

std::string quoted(const std::string& s) {
  try {
    return json(s).dump();
  } catch (const json::exception& e) {
    throw Error(detail::concat("BpeTokenizer::to_json: token is not valid UTF-8 (", e.what(), ")"));
  }
}

// Throws an Error that names the file (or other source) of the tokenizer.json.
struct Reader {
  const std::string& source;
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw Error(detail::concat("tokenizer.json '", source, "': ", args...));
  }
  // obj[key] when present and not null, else nullptr.
  const json* get(const json& obj, const char* key) const {
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  bool flag(const json& obj, const char* where, const char* key, bool fallback) const {
    const json* v = get(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(where, ".", key, " must be true or false, got ", v->dump());
    return v->get<bool>();
  }
};

void check_byte_level(const Reader& r, const json* node, const char* where, bool need_prefix_flag) {
  if (!node) return;
  const json* type = node->is_object() ? r.get(*node, "type") : nullptr;
  if (!type || *type != "ByteLevel")
    r.fail(where, " must be null or of type ByteLevel (GPT-2 byte-level BPE), got ", node->dump());
  if (need_prefix_flag) {
    if (!r.get(*node, "add_prefix_space"))
      r.fail(where, ".add_prefix_space is missing (Hugging Face's default is true; only false is supported)");
    if (r.flag(*node, where, "add_prefix_space", false))
      r.fail(where, ".add_prefix_space is true; only false is supported");
  }
  if (!r.flag(*node, where, "use_regex", true))
    r.fail(where, ".use_regex is false; only the GPT-2 pre-split is supported");
}

std::pair<std::string, std::string> read_merge(const Reader& r, const json& m, size_t i) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
        s.find(' ', space + 1) != std::string::npos)
      r.fail("model.merges[", i, "] = ", m.dump(), " is not of the form \"left right\"");
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string() &&
      !m[0].get_ref<const std::string&>().empty() && !m[1].get_ref<const std::string&>().empty())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  r.fail("model.merges[", i, "] = ", m.dump(), " is neither \"left right\" nor [\"left\", \"right\"]");
}

BpeTokenizer from_parsed(const Reader& r, const json& root) {
  if (!root.is_object()) r.fail("the top level is not a JSON object");
  const json* model = r.get(root, "model");
  if (!model || !model->is_object()) r.fail("has no \"model\" object");
  if (const json* type = r.get(*model, "type"); type && *type != "BPE")
    r.fail("model.type is ", type->dump(), "; only BPE is supported");
  if (const json* norm = r.get(root, "normalizer"))
    r.fail("normalizer ", norm->dump(), " is not supported (only null)");
  const json* pre = r.get(root, "pre_tokenizer");
  if (!pre) r.fail("pre_tokenizer is missing; byte-level BPE needs {\"type\": \"ByteLevel\"}");
  check_byte_level(r, pre, "pre_tokenizer", true);
  check_byte_level(r, r.get(root, "post_processor"), "post_processor", false);
  check_byte_level(r, r.get(root, "decoder"), "decoder", false);
  if (const json* d = r.get(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0))
    r.fail("model.dropout is ", d->dump(), "; only null is supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = r.get(*model, key); v && *v != "")
      r.fail("model.", key, " is ", v->dump(), "; only null is supported");
  if (r.flag(*model, "model", "ignore_merges", false))
    r.fail("model.ignore_merges is true; not supported");

  // Ids: the model vocab and the added tokens together must number 0..n-1.
  const json* vocab_node = r.get(*model, "vocab");
  if (!vocab_node || !vocab_node->is_object()) r.fail("model.vocab is missing or not an object");
  std::map<int64_t, std::string> by_id;
  for (const auto& [token, id] : vocab_node->items()) {
    if (!id.is_number_integer()) r.fail("model.vocab[\"", token, "\"] is not an integer id");
    const auto [it, fresh] = by_id.emplace(id.get<int64_t>(), token);
    if (!fresh) r.fail("id ", it->first, " is given to both '", it->second, "' and '", token, "'");
  }
  BpeTokenizer tok;
  if (const json* added = r.get(root, "added_tokens")) {
    if (!added->is_array()) r.fail("added_tokens is not an array");
    for (const json& a : *added) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        r.fail("added token ", a.dump(), " lacks an integer \"id\" or a string \"content\"");
      const int64_t id = a["id"].get<int64_t>();
      const std::string content = a["content"].get<std::string>();
      if (!r.flag(a, "added token", "special", false))
        r.fail("added token '", content, "' is not special; non-special added tokens are not supported");
      const auto [it, fresh] = by_id.emplace(id, content);
      if (!fresh && it->second != content)
        r.fail("id ", id, " is '", it->second, "' in the vocab but '", content, "' in added_tokens");
      tok.special[content] = id;
    }
  }
  if (by_id.empty()) r.fail("model.vocab is empty");
  if (by_id.begin()->first != 0 || by_id.rbegin()->first != static_cast<int64_t>(by_id.size()) - 1)
    r.fail("ids are not contiguous: ", by_id.size(), " tokens with ids from ", by_id.begin()->first,
           " to ", by_id.rbegin()->first, " (expected 0 to ", by_id.size() - 1, ")");
  for (auto& [id, token] : by_id) {
    const auto [it, fresh] = tok.token_to_id.emplace(token, id);
    if (!fresh) r.fail("token '", token, "' has two ids, ", it->second, " and ", id);
    tok.vocab.push_back(std::move(token));
  }
  if (const auto eos = tok.token_to_id.find(bpe_detail::kEndOfText); eos != tok.token_to_id.end())
    tok.special[eos->first] = eos->second;
  else
    r.fail("has no ", bpe_detail::kEndOfText, " token (the end-of-document id)");

  const json* merges = r.get(*model, "merges");
  if (!merges || !merges->is_array()) r.fail("model.merges is missing or not an array");
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < merges->size(); ++i) {
    auto m = read_merge(r, (*merges)[i], i);
    if (!seen.insert(m).second) r.fail("model.merges[", i, "] ('", m.first, "' '", m.second, "') repeats an earlier merge");
    tok.merges.push_back(std::move(m));
  }
  try {
    bpe_detail::tables_for(tok);  // the rest: byte symbols present, merge parts in the vocab
  } catch (const Error& e) {
    r.fail(e.what());
  }
  return tok;
}

}  // namespace

std::string BpeTokenizer::to_json() const {
  bpe_detail::tables_for(*this);  // validates: what is written can be read back
  std::vector<std::pair<int64_t, std::string>> added;
  for (const auto& [content, id] : special) added.emplace_back(id, content);
  std::sort(added.begin(), added.end());
  std::ostringstream os;
  os << "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
     << "  \"added_tokens\": [";
  for (size_t i = 0; i < added.size(); ++i)
    os << (i ? ",\n" : "\n") << "    {\"id\": " << added[i].first << ", \"content\": "
       << quoted(added[i].second)
       << ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
          "\"special\": true}";
  os << (added.empty() ? "],\n" : "\n  ],\n") << "  \"normalizer\": null,\n"
     << "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
        "\"trim_offsets\": true, \"use_regex\": true},\n"
     << "  \"post_processor\": null,\n"
     << "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
        "\"trim_offsets\": true, \"use_regex\": true},\n"
     << "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
     << "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
     << "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"vocab\": {";
  for (size_t id = 0; id < vocab.size(); ++id)
    os << (id ? ",\n" : "\n") << "      " << quoted(vocab[id]) << ": " << id;
  os << (vocab.empty() ? "},\n" : "\n    },\n") << "    \"merges\": [";
  for (size_t i = 0; i < merges.size(); ++i)
    os << (i ? ",\n" : "\n") << "      " << quoted(merges[i].first + " " + merges[i].second);
  os << (merges.empty() ? "]\n" : "\n    ]\n") << "  }\n}\n";
  return os.str();
}

BpeTokenizer BpeTokenizer::from_json(const std::string& json_text, const std::string& source) {
  const Reader r{source};
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    r.fail("not valid JSON (", e.what(), ")");
  }
  try {
    return from_parsed(r, root);
  } catch (const json::exception& e) {  // a value of an unexpected JSON type
    r.fail(e.what());
  }
}

void BpeTokenizer::save(const std::string& path) const {
  const std::string text = to_json();
  std::ofstream f(path, std::ios::binary);
  SKEIN_CHECK(f, "BpeTokenizer::save: cannot open '", path, "' for writing");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  SKEIN_CHECK(f, "BpeTokenizer::save: writing '", path, "' failed");
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SKEIN_CHECK(f, "BpeTokenizer::load: cannot open '", path, "'");
  std::ostringstream os;
  os << f.rdbuf();
  SKEIN_CHECK(!f.bad(), "BpeTokenizer::load: reading '", path, "' failed");
  return from_json(os.str(), path);
}

}  // namespace skein
