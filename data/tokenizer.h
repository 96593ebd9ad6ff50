// tokenizer.h — the Tokenizer interface every data path uses, and the built-in byte-level
// tokenizer (256 byte ids + special tokens). Byte-level BPE lives in data/bpe.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace skein {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // encode of each text (one call per block of documents: a tokenizer may set up per call).
  virtual std::vector<std::vector<int64_t>> encode_batch(const std::vector<std::string_view>& texts) const;
  // decode(encode(s)) == s for every valid UTF-8 s. Special tokens decode to "".
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t eos_id() const = 0;  // the document separator appended by prep
  // A stable description stored in token files and checked on load: "bytes" or the
  // tokenizer.json text for BPE.
  virtual std::string identity() const = 0;
  virtual std::string kind() const = 0;  // "bytes" | "bpe" | "hf"
  // The ids a tokenizer.json's post-processor template puts before / after one sequence (e.g.
  // Llama's BOS); none for skein's own tokenizers.
  virtual std::vector<int64_t> prefix_ids() const { return {}; }
  virtual std::vector<int64_t> suffix_ids() const { return {}; }
  // prefix_ids + encode(text) + suffix_ids: Hugging Face's encode(text, add_special_tokens=True).
  std::vector<int64_t> encode_with_template(std::string_view text) const;
  // True when encoding a text cut just before a space that follows a printable ASCII character
  // (not a space) gives the same ids, joined, as encoding it whole (prep cuts long documents so).
  virtual bool cut_before_space_is_safe() const { return false; }
};

// 256 byte tokens, then <|endoftext|> (id 256); vocab 257.
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return 257; }
  int64_t eos_id() const override { return 256; }
  std::string identity() const override { return "bytes"; }
  std::string kind() const override { return "bytes"; }
  bool cut_before_space_is_safe() const override { return true; }
};

// "bytes" -> ByteTokenizer; "bpe:<path to tokenizer.json>" -> skein's byte-level BPE loaded
// from that file; "hf:<path to tokenizer.json>" -> any supported Hugging Face tokenizer.json
// (HfTokenizer, data/hf_tokenizer.h);
// the identity string stored in a token file -> the same tokenizer.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec);
std::unique_ptr<Tokenizer> tokenizer_from_identity(const std::string& identity);

}  // namespace skein
