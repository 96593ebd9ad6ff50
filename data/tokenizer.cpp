// tokenizer.cpp — the byte tokenizer (ids 0..255 are bytes, 256 is <|endoftext|>) and the
// factories that turn a spec ("bytes", "bpe:<path>", "hf:<path>") or a stored identity into a Tokenizer.
#include "data/tokenizer.h"
#include "core/error.h"
#include "data/bpe.h"
#include "data/hf_tokenizer.h"

namespace skein {

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<uint8_t>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    SKEIN_CHECK(ids[i] >= 0 && ids[i] < vocab_size(), "ByteTokenizer::decode: id ", ids[i],
                " at position ", i, " is outside [0, ", vocab_size(), ")");
    if (ids[i] < 256) out.push_back(static_cast<char>(ids[i]));  // 256 (<|endoftext|>) -> ""
  }
  return out;
}

std::vector<std::vector<int64_t>> Tokenizer::encode_batch(const std::vector<std::string_view>& texts) const {
  std::vector<std::vector<int64_t>> out;
  out.reserve(texts.size());
  for (std::string_view t : texts) out.push_back(encode(t));
  return out;
}

std::vector<int64_t> Tokenizer::encode_with_template(std::string_view text) const {
  std::vector<int64_t> ids = prefix_ids();
  const std::vector<int64_t> body = encode(text), suffix = suffix_ids();
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), suffix.begin(), suffix.end());
  return ids;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  if (spec.starts_with("bpe:")) {
    const std::string path = spec.substr(4);
    SKEIN_CHECK(!path.empty(), "tokenizer spec '", spec, "' names no file (expected bpe:<path to tokenizer.json>)");
    return std::make_unique<BpeTokenizer>(BpeTokenizer::load(path));
  }
  if (spec.starts_with("hf:")) {
    const std::string path = spec.substr(3);
    SKEIN_CHECK(!path.empty(), "tokenizer spec '", spec, "' names no file (expected hf:<path to tokenizer.json>)");
    return HfTokenizer::load(path);
  }
  SKEIN_CHECK(false, "unknown tokenizer spec '", spec,
              "' (expected \"bytes\", \"bpe:<path to tokenizer.json>\" or \"hf:<path to tokenizer.json>\")");
  return nullptr;
}

std::unique_ptr<Tokenizer> tokenizer_from_identity(const std::string& identity) {
  if (identity == "bytes") return std::make_unique<ByteTokenizer>();
  if (HfTokenizer::is_identity(identity)) return HfTokenizer::from_identity(identity);
  const size_t first = identity.find_first_not_of(" \t\r\n");
  SKEIN_CHECK(first != std::string::npos && identity[first] == '{', "tokenizer identity '",
              identity.substr(0, 60), identity.size() > 60 ? "..." : "",
              "' is neither \"bytes\" nor a tokenizer.json text");
  return std::make_unique<BpeTokenizer>(BpeTokenizer::from_json(identity, "tokenizer identity"));
}

}  // namespace skein
