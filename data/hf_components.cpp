// hf_components.cpp — the normalizers and pre-tokenizers of a Hugging Face tokenizer.json:
// Sequence, NFC/NFD/NFKC/NFKD, Lowercase, Prepend, Replace; Sequence, Split (String or Regex
// pattern, every split behaviour, invert), ByteLevel, Metaspace. Unicode work is PCRE2's and
// utf8proc's (data/unicode_text.h).
//
// reference: huggingface/tokenizers tokenizers/src/normalizers/*.rs, pre_tokenizers/*.rs and
// tokenizer/normalizer.rs (NormalizedString::split), whose behaviour this reproduces.
#include "core/error.h"
#include "data/hf_internal.h"
#include "data/unicode_text.h"

namespace skein::hf_detail {
namespace {

// The GPT-2 pattern of Hugging Face's ByteLevel pre-tokenizer (pre_tokenizers/byte_level.rs).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A {"String": s} or {"Regex": r} pattern node as a compiled Regex.
std::unique_ptr<Regex> make_pattern(const json& node, const std::string& key, const Ctx& ctx) {
  if (const json* s = Ctx::get(node, "String"); s && s->is_string())
    return std::make_unique<Regex>(regex_escape(s->get<std::string>()), ctx.at(key));
  if (const json* r = Ctx::get(node, "Regex"); r && r->is_string()) return std::make_unique<Regex>(r->get<std::string>(), ctx.at(key));
  ctx.fail(key, node.dump(), " is neither {\"String\": ...} nor {\"Regex\": ...}");
}

// ---- normalizers ----

struct NormSequence final : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> parts;
  void apply(std::string& s) const override {
    for (const auto& p : parts) p->apply(s);
  }
};
struct NormForm final : Normalizer {
  std::string form;
  void apply(std::string& s) const override { s = unicode_normalize(s, form); }
};
struct NormLowercase final : Normalizer {
  void apply(std::string& s) const override { s = unicode_lowercase(s); }
};
struct NormPrepend final : Normalizer {
  std::string prepend;
  void apply(std::string& s) const override {
    if (!s.empty()) s = prepend + s;
  }
};
struct NormReplace final : Normalizer {
  std::unique_ptr<Regex> pattern;
  std::string content;
  void apply(std::string& s) const override {
    std::string out;
    size_t prev = 0;
    pattern->for_each_match(s, [&](size_t start, size_t end) {
      out.append(s, prev, start - prev);
      out += content;
      prev = end;
    });
    if (prev == 0 && out.empty()) return;  // no match
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }
};

// ---- pre-tokenizers ----

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// NormalizedString::split: [start, end) pieces of `text` by `pattern` with `behavior`.
void split_by(const Regex& pattern, bool invert, Behavior behavior, const Split& in, std::vector<Split>& out) {
  struct M {
    size_t start, end;
    bool match;
  };
  std::vector<M> ms;
  size_t prev = 0;
  pattern.for_each_match(in.text, [&](size_t start, size_t end) {
    if (prev != start) ms.push_back({prev, start, invert});
    ms.push_back({start, end, !invert});
    prev = end;
  });
  if (prev != in.text.size()) ms.push_back({prev, in.text.size(), invert});
  std::vector<M> keep;  // match = remove
  switch (behavior) {
    case Behavior::Isolated:
      for (M m : ms) keep.push_back({m.start, m.end, false});
      break;
    case Behavior::Removed:
      keep = ms;
      break;
    case Behavior::Contiguous: {
      bool previous = false;
      for (M m : ms) {
        if (m.match == previous && !keep.empty()) keep.back().end = m.end;
        else keep.push_back({m.start, m.end, false});
        previous = m.match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool previous = false;
      for (M m : ms) {
        if (m.match && !previous && !keep.empty()) keep.back().end = m.end;
        else keep.push_back({m.start, m.end, false});
        previous = m.match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous = false;
      for (size_t i = ms.size(); i-- > 0;) {
        const M m = ms[i];
        if (m.match && !previous && !keep.empty()) keep.back().start = m.start;
        else keep.push_back({m.start, m.end, false});
        previous = m.match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    }
  }
  for (const M& k : keep)
    if (!k.match && k.end > k.start) out.push_back({in.text.substr(k.start, k.end - k.start), in.at_start && k.start == 0});
}

struct PreSequence final : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void apply(std::vector<Split>& splits) const override {
    for (const auto& p : parts) p->apply(splits);
  }
};

struct PreSplit final : PreTokenizer {
  std::unique_ptr<Regex> pattern;
  bool invert = false;
  Behavior behavior = Behavior::Isolated;
  void apply(std::vector<Split>& splits) const override {
    std::vector<Split> out;
    out.reserve(splits.size() * 4);
    for (const Split& s : splits) split_by(*pattern, invert, behavior, s, out);
    splits = std::move(out);
  }
};

struct PreByteLevel final : PreTokenizer {
  bool add_prefix_space = false;
  std::unique_ptr<Regex> gpt2;  // null without use_regex
  void apply(std::vector<Split>& splits) const override {
    if (add_prefix_space)
      for (Split& s : splits)
        if (!s.text.starts_with(' ')) s.text = " " + s.text;
    if (!gpt2) return;
    std::vector<Split> out;
    out.reserve(splits.size() * 4);
    for (const Split& s : splits) split_by(*gpt2, false, Behavior::Isolated, s, out);
    splits = std::move(out);
  }
};

enum class Prepend { Always, First, Never };

Prepend read_prepend_scheme(const json& node, const std::string& key, const Ctx& ctx) {
  if (const json* p = Ctx::get(node, "prepend_scheme")) {
    if (*p == "always") return Prepend::Always;
    if (*p == "first") return Prepend::First;
    if (*p == "never") return Prepend::Never;
    ctx.fail(key + ".prepend_scheme", p->dump(), " is not \"always\", \"first\" or \"never\"");
  }
  return ctx.flag(node, key, "add_prefix_space", true) ? Prepend::Always : Prepend::Never;  // older files
}

struct PreMetaspace final : PreTokenizer {
  std::string replacement;
  Prepend scheme = Prepend::Always;
  std::unique_ptr<Regex> split;  // the replacement, when "split": true
  void apply(std::vector<Split>& splits) const override {
    std::vector<Split> out;
    for (Split& s : splits) {
      std::string t;
      t.reserve(s.text.size() + replacement.size());
      for (char c : s.text) {
        if (c == ' ') t += replacement;
        else t += c;
      }
      if (scheme == Prepend::Always || (scheme == Prepend::First && s.at_start))
        if (!t.starts_with(replacement)) t = replacement + t;
      if (split) split_by(*split, false, Behavior::MergedWithNext, Split{std::move(t), s.at_start}, out);
      else if (!t.empty()) out.push_back({std::move(t), s.at_start});
    }
    splits = std::move(out);
  }
};

Behavior read_behavior(const json& node, const std::string& key, const Ctx& ctx) {
  const std::string b = ctx.str(node, key, "behavior");
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  ctx.fail(key + ".behavior", "\"", b, "\" is not a split behaviour");
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& node, const std::string& key, const Ctx& ctx) {
  const std::string type = ctx.type(node, key);
  if (type == "Sequence") {
    auto seq = std::make_unique<NormSequence>();
    const json* parts = Ctx::get(node, "normalizers");
    if (!parts || !parts->is_array()) ctx.fail(key + ".normalizers", "is missing or not an array");
    for (size_t i = 0; i < parts->size(); ++i)
      seq->parts.push_back(make_normalizer((*parts)[i], key + ".normalizers[" + std::to_string(i) + "]", ctx));
    return seq;
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    auto n = std::make_unique<NormForm>();
    n->form = type;
    return n;
  }
  if (type == "Lowercase") return std::make_unique<NormLowercase>();
  if (type == "Prepend") {
    auto n = std::make_unique<NormPrepend>();
    n->prepend = ctx.str(node, key, "prepend");
    return n;
  }
  if (type == "Replace") {
    auto n = std::make_unique<NormReplace>();
    const json* pattern = Ctx::get(node, "pattern");
    if (!pattern) ctx.fail(key + ".pattern", "is missing");
    n->pattern = make_pattern(*pattern, key + ".pattern", ctx);
    n->content = ctx.str(node, key, "content");
    return n;
  }
  ctx.fail(key + ".type", "normalizer \"", type,
           "\" is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace)");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& node, const std::string& key, const Ctx& ctx,
                                                 bool& byte_level) {
  const std::string type = ctx.type(node, key);
  if (byte_level) ctx.fail(key, "a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last)");
  if (type == "Sequence") {
    auto seq = std::make_unique<PreSequence>();
    const json* parts = Ctx::get(node, "pretokenizers");
    if (!parts || !parts->is_array()) ctx.fail(key + ".pretokenizers", "is missing or not an array");
    for (size_t i = 0; i < parts->size(); ++i)
      seq->parts.push_back(make_pre_tokenizer((*parts)[i], key + ".pretokenizers[" + std::to_string(i) + "]", ctx, byte_level));
    return seq;
  }
  if (type == "Split") {
    auto p = std::make_unique<PreSplit>();
    const json* pattern = Ctx::get(node, "pattern");
    if (!pattern) ctx.fail(key + ".pattern", "is missing");
    p->pattern = make_pattern(*pattern, key + ".pattern", ctx);
    p->behavior = read_behavior(node, key, ctx);
    p->invert = ctx.flag(node, key, "invert", false);
    return p;
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<PreByteLevel>();
    p->add_prefix_space = ctx.flag(node, key, "add_prefix_space", true);
    if (ctx.flag(node, key, "use_regex", true)) p->gpt2 = std::make_unique<Regex>(kGpt2Pattern, ctx.at(key) + " (GPT-2 pattern)");
    byte_level = true;
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<PreMetaspace>();
    p->replacement = ctx.str(node, key, "replacement");
    if (p->replacement.empty() || utf8_len(static_cast<uint8_t>(p->replacement[0])) != p->replacement.size())
      ctx.fail(key + ".replacement", "\"", p->replacement, "\" is not one character");
    p->scheme = read_prepend_scheme(node, key, ctx);
    if (ctx.flag(node, key, "split", true)) p->split = std::make_unique<Regex>(regex_escape(p->replacement), ctx.at(key));
    return p;
  }
  ctx.fail(key + ".type", "pre-tokenizer \"", type,
           "\" is not supported (supported: Sequence, Split, ByteLevel, Metaspace)");
}

}  // namespace skein::hf_detail
