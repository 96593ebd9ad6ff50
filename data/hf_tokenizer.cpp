// hf_tokenizer.cpp — HfTokenizer: a tokenizer.json read into its pipeline (added tokens,
// normalizer, pre-tokenizer, BPE model, template, decoder) and run as `tokenizers` runs it.
//
// reference: huggingface/tokenizers tokenizers/src/tokenizer/{mod.rs (encode_single_sequence,
// decode), added_vocabulary.rs (extract_and_normalize, find_matches)} and
// processors/template.rs, reproduced here.
#include "data/hf_tokenizer.h"
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include "core/error.h"
#include "data/hf_internal.h"
#include "data/unicode_text.h"

namespace skein {
namespace hf_detail {

std::string Ctx::str(const json& node, const std::string& key, const char* name) const {
  const json* v = get(node, name);
  if (!v || !v->is_string()) fail(key + "." + name, "is missing or not a string");
  return v->get<std::string>();
}

bool Ctx::flag(const json& node, const std::string& key, const char* name, bool fallback) const {
  const json* v = get(node, name);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(key + "." + name, "must be true or false, got ", v->dump());
  return v->get<bool>();
}

std::string Ctx::type(const json& node, const std::string& key) const {
  if (!node.is_object()) fail(key, node.dump(), " is not an object");
  return str(node, key, "type");
}

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, single_word, lstrip, rstrip, normalized;
};

// Leftmost-longest matching of the added tokens' contents (Aho-Corasick LeftmostLongest as
// Hugging Face builds it, done here by first byte: the sets are small).
struct Matcher {
  std::vector<std::string> patterns;  // in added-token order
  std::vector<size_t> token;          // pattern -> index into Pipeline::added
  std::array<std::vector<size_t>, 256> by_first;  // patterns by first byte, longest first
  void build() {
    for (size_t i = 0; i < patterns.size(); ++i)
      if (!patterns[i].empty()) by_first[static_cast<uint8_t>(patterns[i][0])].push_back(i);
    for (auto& v : by_first)
      std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) { return patterns[a].size() > patterns[b].size(); });
  }
  // The leftmost match at or after `from`: true and its pattern and start.
  bool next(std::string_view s, size_t from, size_t& start, size_t& pat) const {
    if (patterns.empty()) return false;
    for (size_t p = from; p < s.size(); ++p)
      for (size_t i : by_first[static_cast<uint8_t>(s[p])])
        if (s.compare(p, patterns[i].size(), patterns[i]) == 0) {
          start = p;
          pat = i;
          return true;
        }
    return false;
  }
};

struct Pipeline {
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, size_t> added_by_content;
  Matcher raw, normalized;  // tokens matched before / after normalization
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre;
  bool byte_level = false, cut_safe = false;
  std::unique_ptr<BpeModel> model;
  std::vector<int64_t> prefix, suffix;
  std::unique_ptr<Decoder> decoder;
  int64_t vocab_size = 0, eos = -1;
  std::unique_ptr<Regex> space_run_end, space_run_start;  // \s+\z, \A\s+ (lstrip / rstrip)

  // AddedVocabulary::find_matches: (added index or -1, start, end) tiling `s`.
  struct Cut {
    long token;
    size_t start, end;
  };
  std::vector<Cut> find_matches(std::string_view s, const Matcher& m) const {
    std::vector<Cut> cuts;
    size_t offset = 0, from = 0, start = 0, pat = 0;
    while (m.next(s, from, start, pat)) {
      const AddedToken& t = added[m.token[pat]];
      size_t b = start, e = start + m.patterns[pat].size();
      from = e;
      if (t.single_word && !single_word_ok(s, b, e)) continue;  // the search goes on after it
      size_t ms = 0, me = 0;
      if (t.lstrip && space_run_end->find(s.substr(0, b), 0, ms, me)) b = std::max(ms, offset);
      if (t.rstrip && space_run_start->find(s.substr(e), 0, ms, me)) e += me;
      if (offset < b) cuts.push_back({-1, offset, b});
      cuts.push_back({static_cast<long>(m.token[pat]), b, e});
      offset = from = e;
    }
    if (offset < s.size() || s.empty()) cuts.push_back({-1, offset, s.size()});
    return cuts;
  }
  static bool is_word_char(std::string_view s, size_t pos);
  static bool single_word_ok(std::string_view s, size_t b, size_t e) {
    if (b > 0) {  // the character before
      size_t p = b - 1;
      while (p > 0 && (static_cast<uint8_t>(s[p]) & 0xC0) == 0x80) --p;
      if (is_word_char(s, p)) return false;
    }
    return e >= s.size() || !is_word_char(s, e);
  }

  void encode(std::string_view text, std::vector<int64_t>& out) const {
    bpe_detail::WordMerger merger;
    std::vector<Split> splits;
    for (const Cut& c : find_matches(text, raw)) {
      if (c.token >= 0) {
        out.push_back(added[static_cast<size_t>(c.token)].id);
        continue;
      }
      std::string piece(text.substr(c.start, c.end - c.start));
      if (normalizer) normalizer->apply(piece);
      for (const Cut& n : find_matches(piece, normalized)) {
        if (n.token >= 0) {
          out.push_back(added[static_cast<size_t>(n.token)].id);
          continue;
        }
        if (n.end == n.start) continue;
        splits.assign(1, Split{piece.substr(n.start, n.end - n.start), c.start == 0 && n.start == 0});
        if (pre) pre->apply(splits);
        for (const Split& s : splits) model->encode_word(s.text, out, merger);
      }
    }
  }
};

bool Pipeline::is_word_char(std::string_view s, size_t pos) {
  static const Regex word(R"(\A[\p{Alphabetic}\p{N}])", "single_word");  // Rust char::is_alphanumeric
  size_t b = 0, e = 0;
  return word.find(s.substr(pos, 4), 0, b, e);
}

namespace {

// The text of a "single" template: ids of its special tokens before / after sequence $A.
void read_template(const json& node, const std::string& key, const Ctx& ctx, Pipeline& p) {
  const std::string type = ctx.type(node, key);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json* parts = Ctx::get(node, "processors");
    if (!parts || !parts->is_array()) ctx.fail(key + ".processors", "is missing or not an array");
    for (size_t i = 0; i < parts->size(); ++i) read_template((*parts)[i], key + ".processors[" + std::to_string(i) + "]", ctx, p);
    return;
  }
  if (type != "TemplateProcessing")
    ctx.fail(key + ".type", "post-processor \"", type, "\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  if (!p.prefix.empty() || !p.suffix.empty()) ctx.fail(key, "a second TemplateProcessing is not supported");
  const json* single = Ctx::get(node, "single");
  const json* specials = Ctx::get(node, "special_tokens");
  if (!single || !single->is_array()) ctx.fail(key + ".single", "is missing or not an array");
  bool seen_a = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& item = (*single)[i];
    const std::string k = key + ".single[" + std::to_string(i) + "]";
    if (const json* seq = Ctx::get(item, "Sequence")) {
      if (Ctx::get(*seq, "id") == nullptr || (*seq)["id"] != "A" || seen_a) ctx.fail(k, item.dump(), ": only one sequence, $A, is supported");
      seen_a = true;
    } else if (const json* sp = Ctx::get(item, "SpecialToken")) {
      const std::string name = ctx.str(*sp, k + ".SpecialToken", "id");
      const json* entry = specials ? Ctx::get(*specials, name.c_str()) : nullptr;
      const json* ids = entry ? Ctx::get(*entry, "ids") : nullptr;
      if (!ids || !ids->is_array()) ctx.fail(key + ".special_tokens", "has no ids for '", name, "'");
      for (const json& id : *ids) {
        if (!id.is_number_integer()) ctx.fail(key + ".special_tokens[\"" + name + "\"].ids", id.dump(), " is not an id");
        (seen_a ? p.suffix : p.prefix).push_back(id.get<int64_t>());
      }
    } else {
      ctx.fail(k, item.dump(), " is neither a Sequence nor a SpecialToken");
    }
  }
  if (!seen_a) ctx.fail(key + ".single", "has no $A");
}

// A pre-tokenizer node that splits so that a text cut before " x" (x printable ASCII) encodes
// as its two halves do: GPT-2's ByteLevel regex, or a Split by Llama 3's / Qwen2's pattern.
bool cut_safe_pre(const json& node) {
  static const std::string kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string kQwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const json* type = Ctx::get(node, "type");
  if (!type) return false;
  if (*type == "ByteLevel") return node.value("use_regex", true) && !node.value("add_prefix_space", true);
  if (*type != "Sequence" || !node.contains("pretokenizers") || node["pretokenizers"].size() != 2) return false;
  const json& split = node["pretokenizers"][0];
  const json& bl = node["pretokenizers"][1];
  const json* re = split.contains("pattern") ? Ctx::get(split["pattern"], "Regex") : nullptr;
  return split.value("type", "") == "Split" && split.value("behavior", "") == "Isolated" && !split.value("invert", false) &&
         re && re->is_string() && (*re == kLlama3 || *re == kQwen2) && bl.value("type", "") == "ByteLevel" &&
         !bl.value("add_prefix_space", true) && !bl.value("use_regex", true);
}

void read_added(const json& root, const Ctx& ctx, Pipeline& p) {
  const json* added = Ctx::get(root, "added_tokens");
  if (!added) return;
  if (!added->is_array()) ctx.fail("added_tokens", "is not an array");
  for (size_t i = 0; i < added->size(); ++i) {
    const json& a = (*added)[i];
    const std::string key = "added_tokens[" + std::to_string(i) + "]";
    const json* id = Ctx::get(a, "id");
    if (!id || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() >= (int64_t{1} << 30))
      ctx.fail(key + ".id", "is missing or not an id in [0, 2^30)");
    AddedToken t{ctx.str(a, key, "content"), static_cast<int32_t>(id->get<int64_t>()), ctx.flag(a, key, "special", false),
                 ctx.flag(a, key, "single_word", false), ctx.flag(a, key, "lstrip", false), ctx.flag(a, key, "rstrip", false),
                 ctx.flag(a, key, "normalized", !ctx.flag(a, key, "special", false))};
    if (t.content.empty()) ctx.fail(key + ".content", "is empty");
    if (const auto it = p.model->vocab().find(t.content); it != p.model->vocab().end() && it->second != t.id)
      ctx.fail(key, "'", t.content, "' has id ", t.id, " but model.vocab gives it ", it->second);
    p.added_by_id[t.id] = p.added.size();
    p.added_by_content[t.content] = p.added.size();
    p.added.push_back(std::move(t));
  }
  for (size_t i = 0; i < p.added.size(); ++i) {
    const AddedToken& t = p.added[i];
    Matcher& m = t.normalized ? p.normalized : p.raw;
    std::string pattern = t.content;
    if (t.normalized && p.normalizer) p.normalizer->apply(pattern);
    m.patterns.push_back(pattern);
    m.token.push_back(i);
  }
  p.raw.build();
  p.normalized.build();
}

}  // namespace
}  // namespace hf_detail

using hf_detail::json;

HfTokenizer::HfTokenizer(const std::string& json_text, const std::string& source, const std::string& eos_token)
    : json_text_(json_text), p_(std::make_unique<hf_detail::Pipeline>()) {
  const hf_detail::Ctx ctx{source};
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    ctx.fail("(top level)", "not valid JSON (", e.what(), ")");
  }
  hf_detail::Pipeline& p = *p_;
  try {
    if (!root.is_object()) ctx.fail("(top level)", "is not a JSON object");
    const json* model = hf_detail::Ctx::get(root, "model");
    if (!model) ctx.fail("model", "is missing");
    if (const json* n = hf_detail::Ctx::get(root, "normalizer")) p.normalizer = hf_detail::make_normalizer(*n, "normalizer", ctx);
    if (const json* pre = hf_detail::Ctx::get(root, "pre_tokenizer"))
      p.pre = hf_detail::make_pre_tokenizer(*pre, "pre_tokenizer", ctx, p.byte_level);
    p.model = std::make_unique<hf_detail::BpeModel>(*model, ctx, p.byte_level);
    if (const json* post = hf_detail::Ctx::get(root, "post_processor")) hf_detail::read_template(*post, "post_processor", ctx, p);
    if (const json* dec = hf_detail::Ctx::get(root, "decoder")) p.decoder = hf_detail::make_decoder(*dec, "decoder", ctx);
    for (const char* key : {"truncation", "padding"})
      if (hf_detail::Ctx::get(root, key)) ctx.fail(key, "is set; skein neither truncates nor pads (set it to null)");
    hf_detail::read_added(root, ctx, p);
    p.space_run_end = std::make_unique<Regex>(R"(\s+\z)", "lstrip");
    p.space_run_start = std::make_unique<Regex>(R"(\A\s+)", "rstrip");
    p.vocab_size = static_cast<int64_t>(p.model->id_to_token().size());
    for (const auto& t : p.added) p.vocab_size = std::max<int64_t>(p.vocab_size, int64_t{t.id} + 1);
    for (int64_t id : p.prefix) if (id < 0 || id >= p.vocab_size) ctx.fail("post_processor", "template id ", id, " is outside the vocabulary");
    for (int64_t id : p.suffix) if (id < 0 || id >= p.vocab_size) ctx.fail("post_processor", "template id ", id, " is outside the vocabulary");
    const json* norm = hf_detail::Ctx::get(root, "normalizer");
    const json* pre = hf_detail::Ctx::get(root, "pre_tokenizer");
    bool spaced_token = false;
    for (const auto& t : p.added) spaced_token = spaced_token || t.content.find(' ') != std::string::npos;
    p.cut_safe = p.byte_level && pre && hf_detail::cut_safe_pre(*pre) && !spaced_token &&
                 (!norm || norm->value("type", "") == "NFC");
  } catch (const json::exception& e) {  // a value of an unexpected JSON type
    ctx.fail("(structure)", e.what());
  }
  // The end-of-document token.
  std::vector<std::string> names = {eos_token};
  if (eos_token.empty()) names = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<eos>"};
  for (const std::string& n : names) {
    if (const auto id = token_id(n)) {
      eos_token_ = n;
      p.eos = *id;
      break;
    }
  }
  if (p.eos < 0)
    ctx.fail("added_tokens", eos_token.empty() ? "none of <|endoftext|>, <|end_of_text|>, </s>, <|im_end|>, <eos> is a token; "
                                                 "name the end-of-document token in tokenizer_config.json's eos_token"
                                               : "the eos_token '" + eos_token + "' is not a token");
}

HfTokenizer::~HfTokenizer() = default;

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  const auto read = [](const fs::path& f) {
    std::ifstream in(f, std::ios::binary);
    SKEIN_CHECK(in, "HfTokenizer::load: cannot open '", f.string(), "'");
    std::ostringstream os;
    os << in.rdbuf();
    SKEIN_CHECK(!in.bad(), "HfTokenizer::load: reading '", f.string(), "' failed");
    return os.str();
  };
  std::string eos;
  const fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    json c;
    try {
      c = json::parse(read(cfg));
    } catch (const json::exception& e) {
      SKEIN_CHECK(false, "'", cfg.string(), "': not valid JSON (", e.what(), ")");
    }
    const json* e = hf_detail::Ctx::get(c, "eos_token");
    if (e && e->is_object()) e = hf_detail::Ctx::get(*e, "content");
    if (e && e->is_string()) eos = e->get<std::string>();
  }
  return std::make_unique<HfTokenizer>(read(path), path, eos);
}

namespace {
constexpr std::string_view kIdentityTag = "{\"skein_hf_tokenizer\": ";
}

bool HfTokenizer::is_identity(const std::string& identity) { return identity.starts_with(kIdentityTag); }

std::string HfTokenizer::identity() const {
  return std::string(kIdentityTag) + json{{"eos_token", eos_token_}}.dump() + "}\n" + json_text_;
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_identity(const std::string& identity) {
  SKEIN_CHECK(is_identity(identity), "HfTokenizer: not an hf tokenizer identity");
  const size_t nl = identity.find('\n');
  SKEIN_CHECK(nl != std::string::npos, "HfTokenizer: the identity has no header line");
  const json head = json::parse(identity.substr(0, nl));
  return std::make_unique<HfTokenizer>(identity.substr(nl + 1), "the token file's tokenizer",
                                       head["skein_hf_tokenizer"]["eos_token"].get<std::string>());
}

std::vector<int64_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  if (valid_utf8(text)) p_->encode(text, out);
  else p_->encode(repair_utf8(text), out);
  return out;
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids) const { return decode(ids, true); }

std::string HfTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const hf_detail::Pipeline& p = *p_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  const auto& model_tokens = p.model->id_to_token();
  for (size_t i = 0; i < ids.size(); ++i) {
    SKEIN_CHECK(ids[i] >= 0 && ids[i] < p.vocab_size, "HfTokenizer::decode: id ", ids[i], " at position ", i,
                " is outside [0, ", p.vocab_size, ")");
    const auto id = static_cast<int32_t>(ids[i]);
    if (const auto it = p.added_by_id.find(id); it != p.added_by_id.end()) {
      const hf_detail::AddedToken& t = p.added[it->second];
      if (!(skip_special_tokens && t.special)) tokens.push_back(t.content);
    } else if (static_cast<size_t>(id) < model_tokens.size() && !model_tokens[id].empty()) {
      tokens.push_back(model_tokens[id]);
    }
  }
  if (!p.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  p.decoder->apply(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

int64_t HfTokenizer::vocab_size() const { return p_->vocab_size; }
int64_t HfTokenizer::eos_id() const { return p_->eos; }
std::vector<int64_t> HfTokenizer::prefix_ids() const { return p_->prefix; }
std::vector<int64_t> HfTokenizer::suffix_ids() const { return p_->suffix; }
bool HfTokenizer::cut_before_space_is_safe() const { return p_->cut_safe; }

std::optional<int64_t> HfTokenizer::token_id(const std::string& token) const {
  if (const auto it = p_->added_by_content.find(token); it != p_->added_by_content.end()) return p_->added[it->second].id;
  if (const auto it = p_->model->vocab().find(token); it != p_->model->vocab().end()) return it->second;
  return std::nullopt;
}

}  // namespace skein
