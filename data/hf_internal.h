// hf_internal.h — the stages of a Hugging Face tokenizer.json pipeline (not a public
// interface): normalizers, pre-tokenizers, the BPE model and decoders, each built from its
// JSON node with errors that name the node's key, as the `tokenizers` library (0.23) runs them.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <nlohmann/json.hpp>
#include "data/bpe_internal.h"

namespace skein::hf_detail {

using nlohmann::json;

// Errors name the tokenizer.json (its file) and the key of the offending node.
struct Ctx {
  std::string source;
  template <typename... Args>
  [[noreturn]] void fail(const std::string& key, const Args&... args) const {
    throw Error(detail::concat("tokenizer.json '", source, "': ", key, ": ", args...));
  }
  // "tokenizer.json '<source>': <key>", for errors raised elsewhere (e.g. a pattern's).
  std::string at(const std::string& key) const { return "tokenizer.json '" + source + "': " + key; }
  // node[name] when present and not null, else nullptr.
  static const json* get(const json& node, const char* name) {
    if (!node.is_object()) return nullptr;
    const auto it = node.find(name);
    return it == node.end() || it->is_null() ? nullptr : &*it;
  }
  std::string str(const json& node, const std::string& key, const char* name) const;  // required string
  bool flag(const json& node, const std::string& key, const char* name, bool fallback) const;
  std::string type(const json& node, const std::string& key) const;  // node["type"]
};

// A piece of text between the stages; at_start: it begins at offset 0 of the original text.
struct Split {
  std::string text;
  bool at_start = false;
};

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};
std::unique_ptr<Normalizer> make_normalizer(const json& node, const std::string& key, const Ctx& ctx);

struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<Split>& splits) const = 0;
};
// `byte_level` is set when the chain ends in ByteLevel (the model then sees byte symbols);
// a ByteLevel anywhere else is rejected.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& node, const std::string& key, const Ctx& ctx,
                                                 bool& byte_level);

struct Decoder {
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;  // Hugging Face's decode_chain
};
std::unique_ptr<Decoder> make_decoder(const json& node, const std::string& key, const Ctx& ctx);

// The BPE model (models/bpe/model.rs): a word's characters (byte symbols for byte-level
// tokenizers) looked up in the vocabulary, byte fallback <0xNN> or unk for the others, then
// merges by rank (leftmost first on ties).
class BpeModel {
 public:
  BpeModel(const json& node, const Ctx& ctx, bool byte_level);
  // Appends the ids of one pre-tokenized word (raw UTF-8; byte-level symbols are implied).
  void encode_word(std::string_view word, std::vector<int64_t>& out, bpe_detail::WordMerger& merger) const;
  const std::vector<std::string>& id_to_token() const { return tokens_; }
  const std::unordered_map<std::string, int32_t, bpe_detail::StringHash, std::equal_to<>>& vocab() const {
    return vocab_;
  }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& ids, bpe_detail::WordMerger& merger) const;
  void encode_segment(std::string_view word, std::vector<int64_t>& out, bpe_detail::WordMerger& merger) const;
  // SentencePiece-style words (a whole text when there is no pre-tokenizer) are encoded in
  // segments cut before each "▁" that follows another character, when that cannot change the
  // ids: "▁" is in the vocabulary and no token has "▁" after another character (so no merge
  // spans a cut), and ignore_merges is off. The segments are then words the cache can hold.
  bool cut_at_metaspace_ = false;
  bool byte_level_, byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_id_ = -1;
  std::unordered_map<std::string, int32_t, bpe_detail::StringHash, std::equal_to<>> vocab_;  // token -> id
  std::vector<std::string> tokens_;                           // id -> token ("" for gaps)
  std::array<int32_t, 256> byte_symbol_id_{};                 // byte-level: byte -> id of its symbol, -1
  std::array<int32_t, 256> fallback_id_{};                    // byte fallback: byte -> id of <0xNN>, -1
  bool all_bytes_ = false;                                    // byte-level with all 256 symbols present
  std::unordered_map<std::string, int32_t, bpe_detail::StringHash, std::equal_to<>> bytes_vocab_;  // byte-level: raw bytes -> id
  bpe_detail::MergeMap merges_;
  // Words already encoded (bounded), in shards under their own mutexes.
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, bpe_detail::StringHash, std::equal_to<>> words;
  };
  mutable std::array<Shard, kShards> cache_;
};

}  // namespace skein::hf_detail
