// hf_tokenizer.h — a Hugging Face tokenizer.json run the way the `tokenizers` library runs it:
// added / special tokens split out first, then the normalizer, the pre-tokenizer, the BPE model
// (byte-level as GPT-2, Llama 3 and Qwen2 ship it; SentencePiece-style with byte fallback as
// Llama 2 and Mistral do), the post-processor's template (BOS / EOS) and the decoder.
// Supported components and their limits: docs/TOKENIZERS.md. Anything else is rejected with an
// error naming its JSON key.
//
// Text that is not valid UTF-8 is first repaired (each maximal invalid subpart -> U+FFFD, as
// Python's errors="replace"): the ids are those `tokenizers` gives for that repaired text.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "data/tokenizer.h"

namespace skein {

namespace hf_detail {
struct Pipeline;
}

class HfTokenizer final : public Tokenizer {
 public:
  // `json_text`: the tokenizer.json; `source` names it in errors; `eos_token`: the content of
  // the end-of-document token (e.g. "</s>"), or "" to pick the first special token among
  // <|endoftext|>, <|end_of_text|>, </s>, <|im_end|>, <eos>.
  HfTokenizer(const std::string& json_text, const std::string& source, const std::string& eos_token = "");
  // Reads `path` (a tokenizer.json); the eos token is tokenizer_config.json's "eos_token" when
  // that file lies beside it, else as above.
  static std::unique_ptr<HfTokenizer> load(const std::string& path);
  // The tokenizer an identity() string describes (see is_identity).
  static std::unique_ptr<HfTokenizer> from_identity(const std::string& identity);
  static bool is_identity(const std::string& identity);
  ~HfTokenizer() override;

  // Hugging Face's encode(text, add_special_tokens=False): no template ids.
  std::vector<int64_t> encode(std::string_view text) const override;
  // Hugging Face's decode(ids) (skip_special_tokens=True).
  std::string decode(const std::vector<int64_t>& ids) const override;
  // decode with skip_special_tokens as given.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const;
  int64_t vocab_size() const override;
  int64_t eos_id() const override;
  std::vector<int64_t> prefix_ids() const override;
  std::vector<int64_t> suffix_ids() const override;
  bool cut_before_space_is_safe() const override;
  // A header line naming the eos token, then the tokenizer.json text.
  std::string identity() const override;
  std::string kind() const override { return "hf"; }

  // The id of an added token or vocabulary entry, or nullopt.
  std::optional<int64_t> token_id(const std::string& token) const;

 private:
  std::string json_text_, eos_token_;
  std::unique_ptr<hf_detail::Pipeline> p_;
};

}  // namespace skein
