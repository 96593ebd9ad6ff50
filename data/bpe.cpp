// bpe.cpp — BpeTokenizer's encode / decode and the lookup tables behind them (built from the
// public vocab / merges / special fields, validated, and memoised by content).
//
// Encoding follows Hugging Face tokenizers' BPE (models/bpe/word.rs, Word::merge_all) so that
// ids match a tokenizer.json loaded there: each pre-split piece becomes its byte symbols, then
// the adjacent pair of lowest merge rank (leftmost on ties) is merged until none is left.
#include <algorithm>
#include <mutex>
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace bpe_detail {
namespace {

std::shared_ptr<const BpeTables> build_tables(const BpeTokenizer& tok) {
  auto t = std::make_shared<BpeTables>();
  t->vocab = tok.vocab;
  t->merges = tok.merges;
  t->special = tok.special;
  const int64_t n = static_cast<int64_t>(tok.vocab.size());
  SKEIN_CHECK(n > 0 && n < (int64_t{1} << 31), "BPE: vocabulary size ", n, " is out of range");
  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(tok.vocab.size());
  for (int32_t id = 0; id < n; ++id) {
    const auto [it, fresh] = id_of.emplace(tok.vocab[id], id);
    SKEIN_CHECK(fresh, "BPE: token '", tok.vocab[id], "' has two ids, ", it->second, " and ", id);
  }
  std::vector<char> is_special(n, 0);
  for (const auto& [content, id] : tok.special) {
    SKEIN_CHECK(id >= 0 && id < n && tok.vocab[id] == content, "BPE: special token '", content,
                "' has id ", id, ", which the vocabulary (size ", n, ") does not give it");
    is_special[id] = 1;
  }
  t->id_bytes.resize(n);
  for (int32_t id = 0; id < n; ++id) {
    if (is_special[id]) continue;
    SKEIN_CHECK(!tok.vocab[id].empty() && symbols_to_bytes(tok.vocab[id], t->id_bytes[id]),
                "BPE: token '", tok.vocab[id], "' (id ", id,
                ") is not a string of byte-level symbols (GPT-2 bytes_to_unicode)");
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = id_of.find(byte_symbol(static_cast<uint8_t>(b)));
    SKEIN_CHECK(it != id_of.end(), "BPE: the vocabulary lacks the symbol '",
                byte_symbol(static_cast<uint8_t>(b)), "' of byte ", b);
    t->byte_id[b] = it->second;
  }
  t->merge_map.reserve(tok.merges.size());
  for (size_t r = 0; r < tok.merges.size(); ++r) {
    const auto& [a, b] = tok.merges[r];
    const auto ia = id_of.find(a), ib = id_of.find(b), iz = id_of.find(a + b);
    SKEIN_CHECK(ia != id_of.end() && ib != id_of.end() && iz != id_of.end(), "BPE: merge ", r,
                " ('", a, "' '", b, "'): '", ia == id_of.end() ? a : ib == id_of.end() ? b : a + b,
                "' is not in the vocabulary");
    t->merge_map.emplace(pair_key(ia->second, ib->second),
                         std::pair<int32_t, int32_t>(static_cast<int32_t>(r), iz->second));
  }
  return t;
}

// The ids of one pre-split piece, through the tables' shared cache for short pieces.
std::vector<int32_t> encode_piece(const BpeTables& t, std::string_view piece, WordMerger& merger) {
  constexpr size_t kMaxShared = size_t{1} << 18, kMaxSharedLen = 64;
  const bool shared = piece.size() <= kMaxSharedLen;
  if (shared) {
    std::lock_guard<std::mutex> lock(t.word_mu);
    if (const auto it = t.word_ids.find(piece); it != t.word_ids.end()) return it->second;
  }
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  for (char ch : piece) ids.push_back(t.byte_id[static_cast<uint8_t>(ch)]);
  merger.run(t.merge_map, ids);
  if (shared) {
    std::lock_guard<std::mutex> lock(t.word_mu);
    if (t.word_ids.size() < kMaxShared) t.word_ids.emplace(std::string(piece), ids);
  }
  return ids;
}

}  // namespace

std::shared_ptr<const BpeTables> tables_for(const BpeTokenizer& tok) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<const BpeTables>> recent;  // most recently used first
  constexpr size_t kKeep = 4;
  std::lock_guard<std::mutex> lock(mu);
  for (size_t i = 0; i < recent.size(); ++i) {
    const BpeTables& t = *recent[i];
    if (t.vocab == tok.vocab && t.merges == tok.merges && t.special == tok.special) {
      std::rotate(recent.begin(), recent.begin() + static_cast<std::ptrdiff_t>(i),
                  recent.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return recent.front();
    }
  }
  recent.insert(recent.begin(), build_tables(tok));
  if (recent.size() > kKeep) recent.pop_back();
  return recent.front();
}

}  // namespace bpe_detail

namespace {

std::vector<int64_t> encode_with(const bpe_detail::BpeTables& t, std::string_view text) {
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 1);
  // Pieces repeat a lot (words of a language): a cache for this call, its keys viewing `text`,
  // in front of the tables' cache shared by all calls.
  std::unordered_map<std::string_view, std::vector<int32_t>> cache;
  bpe_detail::WordMerger merger;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = bpe_detail::next_piece(text, pos);
    const std::string_view piece = text.substr(pos, end - pos);
    pos = end;
    auto [it, fresh] = cache.try_emplace(piece);
    if (fresh) it->second = bpe_detail::encode_piece(t, piece, merger);
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

}  // namespace

std::vector<int64_t> BpeTokenizer::encode(std::string_view text) const {
  return encode_with(*bpe_detail::tables_for(*this), text);
}

std::vector<std::vector<int64_t>> BpeTokenizer::encode_batch(const std::vector<std::string_view>& texts) const {
  const auto tables = bpe_detail::tables_for(*this);
  std::vector<std::vector<int64_t>> out;
  out.reserve(texts.size());
  for (std::string_view t : texts) out.push_back(encode_with(*tables, t));
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  const auto tables = bpe_detail::tables_for(*this);
  const int64_t n = static_cast<int64_t>(tables->id_bytes.size());
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    SKEIN_CHECK(ids[i] >= 0 && ids[i] < n, "BpeTokenizer::decode: id ", ids[i], " at position ",
                i, " is outside [0, ", n, ")");
    out += tables->id_bytes[ids[i]];
  }
  return out;
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(vocab.size()); }

int64_t BpeTokenizer::eos_id() const {
  const auto it = special.find(bpe_detail::kEndOfText);
  SKEIN_CHECK(it != special.end(), "BpeTokenizer: no special token ", bpe_detail::kEndOfText);
  return it->second;
}

std::string BpeTokenizer::identity() const { return to_json(); }

}  // namespace skein
