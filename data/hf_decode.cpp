// hf_decode.cpp — the decoders of a Hugging Face tokenizer.json: ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip and Sequence of them, each a decode_chain over the token strings.
//
// reference: huggingface/tokenizers tokenizers/src/decoders/*.rs and
// pre_tokenizers/{byte_level,metaspace}.rs (their Decoder impls), reproduced here.
#include "core/error.h"
#include "data/hf_internal.h"
#include "data/unicode_text.h"

namespace skein::hf_detail {
namespace {

struct DecSequence final : Decoder {
  std::vector<std::unique_ptr<Decoder>> parts;
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts) p->apply(tokens);
  }
};

// Every token's symbols back to bytes (a token with a non-symbol character keeps its own
// bytes), all joined, then invalid UTF-8 -> U+FFFD (String::from_utf8_lossy).
struct DecByteLevel final : Decoder {
  void apply(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      const size_t mark = bytes.size();
      if (!bpe_detail::symbols_to_bytes(t, bytes)) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    tokens.assign(1, repair_utf8(bytes));
  }
};

// The replacement character -> ' ', except in the first token when a prefix was prepended.
struct DecMetaspace final : Decoder {
  std::string replacement;
  bool strip_first = true;
  void apply(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, replacement.size(), replacement) == 0) {
          if (!(i == 0 && strip_first)) out += ' ';
          pos += replacement.size();
        } else {
          out += t[pos++];
        }
      }
      tokens[i] = std::move(out);
    }
  }
};

struct DecReplace final : Decoder {
  std::unique_ptr<Regex> pattern;
  std::string content;
  void apply(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      size_t prev = 0;
      pattern->for_each_match(t, [&](size_t start, size_t end) {
        out.append(t, prev, start - prev);
        out += content;
        prev = end;
      });
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }
};

// Runs of <0xNN> tokens -> their bytes when those are valid UTF-8, else one U+FFFD per byte.
struct DecByteFallback final : Decoder {
  static int byte_of(const std::string& t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
    int v = 0;
    for (size_t i = 3; i < 5; ++i) {
      const char c = t[i];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  }
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    const auto flush = [&] {
      if (pending.empty()) return;
      if (valid_utf8(pending)) out.push_back(pending);
      else
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (std::string& t : tokens) {
      const int b = byte_of(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

struct DecFuse final : Decoder {
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Up to `start` leading and `stop` trailing characters equal to `content` removed per token.
struct DecStrip final : Decoder {
  std::string content;  // one character
  size_t start = 0, stop = 0;
  void apply(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t i = 0; i < start && t.compare(b, content.size(), content) == 0 && b < e; ++i) b += content.size();
      for (size_t i = 0; i < stop && e >= b + content.size() && t.compare(e - content.size(), content.size(), content) == 0; ++i)
        e -= content.size();
      t = t.substr(b, e - b);
    }
  }
};

size_t read_count(const json& node, const std::string& key, const char* name, const Ctx& ctx) {
  const json* v = Ctx::get(node, name);
  if (!v) return 0;
  if (!v->is_number_unsigned()) ctx.fail(key + "." + name, v->dump(), " is not a count");
  return v->get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& node, const std::string& key, const Ctx& ctx) {
  const std::string type = ctx.type(node, key);
  if (type == "Sequence") {
    auto seq = std::make_unique<DecSequence>();
    const json* parts = Ctx::get(node, "decoders");
    if (!parts || !parts->is_array()) ctx.fail(key + ".decoders", "is missing or not an array");
    for (size_t i = 0; i < parts->size(); ++i)
      seq->parts.push_back(make_decoder((*parts)[i], key + ".decoders[" + std::to_string(i) + "]", ctx));
    return seq;
  }
  if (type == "ByteLevel") return std::make_unique<DecByteLevel>();
  if (type == "ByteFallback") return std::make_unique<DecByteFallback>();
  if (type == "Fuse") return std::make_unique<DecFuse>();
  if (type == "Metaspace") {
    auto d = std::make_unique<DecMetaspace>();
    d->replacement = ctx.str(node, key, "replacement");
    if (d->replacement.empty()) ctx.fail(key + ".replacement", "is empty");
    if (const json* p = Ctx::get(node, "prepend_scheme")) d->strip_first = *p != "never";
    else d->strip_first = ctx.flag(node, key, "add_prefix_space", true);
    return d;
  }
  if (type == "Replace") {
    auto d = std::make_unique<DecReplace>();
    const json* pattern = Ctx::get(node, "pattern");
    if (!pattern) ctx.fail(key + ".pattern", "is missing");
    if (const json* s = Ctx::get(*pattern, "String"); s && s->is_string())
      d->pattern = std::make_unique<Regex>(regex_escape(s->get<std::string>()), ctx.at(key + ".pattern"));
    else if (const json* r = Ctx::get(*pattern, "Regex"); r && r->is_string())
      d->pattern = std::make_unique<Regex>(r->get<std::string>(), ctx.at(key + ".pattern"));
    else
      ctx.fail(key + ".pattern", pattern->dump(), " is neither {\"String\": ...} nor {\"Regex\": ...}");
    d->content = ctx.str(node, key, "content");
    return d;
  }
  if (type == "Strip") {
    auto d = std::make_unique<DecStrip>();
    d->content = ctx.str(node, key, "content");
    if (d->content.empty() || utf8_len(static_cast<uint8_t>(d->content[0])) != d->content.size())
      ctx.fail(key + ".content", "\"", d->content, "\" is not one character");
    d->start = read_count(node, key, "start", ctx);
    d->stop = read_count(node, key, "stop", ctx);
    return d;
  }
  ctx.fail(key + ".type", "decoder \"", type,
           "\" is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip)");
}

}  // namespace skein::hf_detail
