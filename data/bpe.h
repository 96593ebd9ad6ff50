// bpe.h — byte-level BPE (GPT-2 style): a pre-split of the text into words (letters,
// numbers, punctuation runs, spaces, contractions), bytes mapped to printable unicode
// symbols, merges learned by frequency; saved and loaded as a Hugging Face tokenizer.json.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>
#include "data/tokenizer.h"

namespace skein {

class BpeTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override;
  // Looks the tables up once for all the texts (tables_for compares the whole vocabulary).
  std::vector<std::vector<int64_t>> encode_batch(const std::vector<std::string_view>& texts) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  int64_t eos_id() const override;
  std::string identity() const override;  // the tokenizer.json text
  std::string kind() const override { return "bpe"; }
  bool cut_before_space_is_safe() const override { return true; }

  std::string to_json() const;                       // Hugging Face tokenizer.json
  static BpeTokenizer from_json(const std::string& json_text, const std::string& source);
  void save(const std::string& path) const;
  static BpeTokenizer load(const std::string& path);

  // internals, public for tests
  std::vector<std::string> vocab;                         // id -> token (byte-symbol string)
  std::vector<std::pair<std::string, std::string>> merges;  // in priority order
  std::map<std::string, int64_t> token_to_id;
  std::map<std::string, int64_t> special;                 // e.g. "<|endoftext|>" -> id
};

// Learns merges from `texts` until the vocabulary has `vocab_size` entries (256 byte
// symbols + merges + <|endoftext|>).
BpeTokenizer train_bpe(const std::vector<std::string>& texts, int64_t vocab_size);

// The GPT-2 pre-split of `text` into pieces (exposed for tests).
std::vector<std::string> pretokenize(std::string_view text);

}  // namespace skein
