// hf_bpe.cpp — the BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}):
// vocabulary, merges by rank, byte-level symbols or SentencePiece-style characters with byte
// fallback <0xNN>, unk (fused or not), ignore_merges.
//
// reference: huggingface/tokenizers tokenizers/src/models/bpe/model.rs (merge_word,
// tokenize_with_cache) and word.rs (merge_all), which this follows step for step.
#include <cstdio>
#include "core/error.h"
#include "data/hf_internal.h"
#include "data/unicode_text.h"

namespace skein::hf_detail {
namespace {

constexpr size_t kMaxCachedWordBytes = 64;
constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"
constexpr size_t kMaxCachedWordsPerShard = size_t{1} << 14;

std::pair<std::string, std::string> read_merge(const Ctx& ctx, const json& m, size_t i) {
  const std::string key = "model.merges[" + std::to_string(i) + "]";
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
      ctx.fail(key, m.dump(), " is not of the form \"left right\"");
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  ctx.fail(key, m.dump(), " is neither \"left right\" nor [\"left\", \"right\"]");
}

}  // namespace

BpeModel::BpeModel(const json& node, const Ctx& ctx, bool byte_level) : byte_level_(byte_level) {
  if (const std::string type = ctx.type(node, "model"); type != "BPE")
    ctx.fail("model.type", "\"", type, "\" is not supported (only BPE)");
  if (const json* d = Ctx::get(node, "dropout"); d && !(d->is_number() && d->get<double>() == 0))
    ctx.fail("model.dropout", d->dump(), " is not supported (only null: encoding is deterministic)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = Ctx::get(node, key); v && *v != "")
      ctx.fail(std::string("model.") + key, v->dump(), " is not supported (only null)");
  byte_fallback_ = ctx.flag(node, "model", "byte_fallback", false);
  fuse_unk_ = ctx.flag(node, "model", "fuse_unk", false);
  ignore_merges_ = ctx.flag(node, "model", "ignore_merges", false);

  const json* vocab = Ctx::get(node, "vocab");
  if (!vocab || !vocab->is_object()) ctx.fail("model.vocab", "is missing or not an object");
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 30))
      ctx.fail("model.vocab[\"" + token + "\"]", id.dump(), " is not an id in [0, 2^30)");
    const auto i = static_cast<int32_t>(id.get<int64_t>());
    if (static_cast<size_t>(i) >= tokens_.size()) tokens_.resize(static_cast<size_t>(i) + 1);
    if (!tokens_[i].empty()) ctx.fail("model.vocab[\"" + token + "\"]", "id ", i, " is also given to '", tokens_[i], "'");
    tokens_[i] = token;
    vocab_.emplace(token, i);
  }
  if (const json* unk = Ctx::get(node, "unk_token")) {
    if (!unk->is_string()) ctx.fail("model.unk_token", unk->dump(), " is not a string");
    const auto it = vocab_.find(unk->get<std::string>());
    if (it == vocab_.end()) ctx.fail("model.unk_token", unk->dump(), " is not in model.vocab");
    unk_id_ = it->second;
  }
  byte_symbol_id_.fill(-1);
  fallback_id_.fill(-1);
  all_bytes_ = byte_level;
  for (int b = 0; b < 256; ++b) {
    if (byte_level) {
      const auto it = vocab_.find(bpe_detail::byte_symbol(static_cast<uint8_t>(b)));
      if (it != vocab_.end()) byte_symbol_id_[b] = it->second;
      else all_bytes_ = false;
    }
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    if (const auto it = vocab_.find(std::string_view(name)); it != vocab_.end()) fallback_id_[b] = it->second;
  }
  if (byte_level) {  // raw bytes -> id, for ignore_merges without spelling out symbols
    for (const auto& [token, id] : vocab_) {
      std::string bytes;
      if (bpe_detail::symbols_to_bytes(token, bytes)) bytes_vocab_.emplace(std::move(bytes), id);
    }
  }
  if (!byte_level && !ignore_merges_ && vocab_.count(kMetaspace)) {
    cut_at_metaspace_ = true;
    for (const auto& [token, id] : vocab_)
      for (size_t p = token.find(kMetaspace, 1); p != std::string::npos && cut_at_metaspace_; p = token.find(kMetaspace, p + 1))
        if (p < kMetaspace.size() || token.compare(p - kMetaspace.size(), kMetaspace.size(), kMetaspace) != 0)
          cut_at_metaspace_ = false;  // "x▁": a merge could span a cut
  }
  const json* merges = Ctx::get(node, "merges");
  if (!merges || !merges->is_array()) ctx.fail("model.merges", "is missing or not an array");
  merges_.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    const auto [a, b] = read_merge(ctx, (*merges)[r], r);
    const auto ia = vocab_.find(a), ib = vocab_.find(b), iz = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iz == vocab_.end())
      ctx.fail("model.merges[" + std::to_string(r) + "]", "'",
               ia == vocab_.end() ? a : ib == vocab_.end() ? b : a + b, "' is not in model.vocab");
    // A repeated pair takes its last rank, as Hugging Face's map does.
    merges_.insert_or_assign(bpe_detail::pair_key(ia->second, ib->second),
                             std::pair<int32_t, int32_t>(static_cast<int32_t>(r), iz->second));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids, bpe_detail::WordMerger& merger) const {
  ids.clear();
  if (all_bytes_) {
    for (char c : word) ids.push_back(byte_symbol_id_[static_cast<uint8_t>(c)]);
  } else {
    int32_t unk_pending = -1;  // an unk not yet added (HF adds it before the next known symbol)
    const size_t n = word.size();
    for (size_t pos = 0; pos < n;) {
      const size_t len = byte_level_ ? 1 : std::min(utf8_len(static_cast<uint8_t>(word[pos])), n - pos);
      const std::string_view s = byte_level_ ? std::string_view(bpe_detail::byte_symbol(static_cast<uint8_t>(word[pos])))
                                             : word.substr(pos, len);
      pos += len;
      if (const auto it = vocab_.find(s); it != vocab_.end()) {
        if (unk_pending >= 0) ids.push_back(unk_pending);
        unk_pending = -1;
        ids.push_back(it->second);
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (char c : s) all = all && fallback_id_[static_cast<uint8_t>(c)] >= 0;
        if (all) {
          for (char c : s) ids.push_back(fallback_id_[static_cast<uint8_t>(c)]);
          continue;
        }
      }
      if (unk_id_ >= 0) {
        if (unk_pending >= 0 && !fuse_unk_) ids.push_back(unk_pending);
        unk_pending = unk_id_;
      }
    }
    if (unk_pending >= 0) ids.push_back(unk_pending);
  }
  merger.run(merges_, ids);
}

void BpeModel::encode_word(std::string_view word, std::vector<int64_t>& out, bpe_detail::WordMerger& merger) const {
  if (word.empty()) return;
  if (!cut_at_metaspace_) {
    encode_segment(word, out, merger);
    return;
  }
  size_t begin = 0;
  for (size_t p = word.find(kMetaspace, 1); p != std::string_view::npos; p = word.find(kMetaspace, p + 1)) {
    if (p >= kMetaspace.size() && word.compare(p - kMetaspace.size(), kMetaspace.size(), kMetaspace) == 0) continue;
    encode_segment(word.substr(begin, p - begin), out, merger);
    begin = p;
  }
  encode_segment(word.substr(begin), out, merger);
}

void BpeModel::encode_segment(std::string_view word, std::vector<int64_t>& out, bpe_detail::WordMerger& merger) const {
  if (ignore_merges_) {
    const auto& table = byte_level_ ? bytes_vocab_ : vocab_;
    if (const auto it = table.find(word); it != table.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cached = word.size() <= kMaxCachedWordBytes;
  Shard& shard = cache_[std::hash<std::string_view>{}(word) % kShards];
  if (cached) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (const auto it = shard.words.find(word); it != shard.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids, merger);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cached) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.words.size() < kMaxCachedWordsPerShard) shard.words.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace skein::hf_detail
