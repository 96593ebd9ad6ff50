// pretokenize.cpp — the GPT-2 pre-split (pretokenize, next_piece), run by PCRE2 with Unicode
// properties (data/unicode_text.h), and GPT-2's byte <-> printable-unicode symbol map.
//
// reference: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"
// (openai/gpt-2 src/encoder.py: bytes_to_unicode and the pattern below).
//
// The pattern, tried alternative by alternative at each position (leftmost first match):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \p{L}, \p{N} and \s (White_Space) from PCRE2's Unicode tables: the same pieces as
// Hugging Face's ByteLevel pre-tokenizer for every script. Bytes that are not valid UTF-8 match
// nothing: each run of them is a piece of its own (skein's BPE encodes them byte for byte, so
// decode(encode(x)) == x for any bytes).
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"
#include "data/unicode_text.h"

namespace skein {
namespace bpe_detail {
namespace {

constexpr char32_t kInvalid = 0xFFFFFFFF;  // a byte that does not start valid UTF-8

struct CodePoint {
  char32_t c;
  size_t len;
};

// The code point at s[pos] (strict UTF-8: no overlong forms, surrogates or > U+10FFFF);
// anything else reads as one invalid byte.
CodePoint decode_at(std::string_view s, size_t pos) {
  bool valid = false;
  const size_t len = utf8_subpart(s, pos, valid);
  if (!valid) return {kInvalid, 1};
  if (len == 1) return {static_cast<uint8_t>(s[pos]), 1};
  char32_t c = static_cast<uint8_t>(s[pos]) & (0xFF >> (len + 1));
  for (size_t i = 1; i < len; ++i) c = (c << 6) | (static_cast<uint8_t>(s[pos + i]) & 0x3F);
  return {c, len};
}

struct ByteMaps {
  std::array<std::string, 256> symbol;
  std::array<int16_t, 324> byte_of;  // symbol code point -> byte, -1 for others
  ByteMaps() {
    byte_of.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int cp = printable ? b : next++;
      byte_of[cp] = static_cast<int16_t>(b);
      std::string& out = symbol[b];
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
    SKEIN_ASSERT(next == 324, "bytes_to_unicode must use code points 256..323, got ", next);
  }
};

const ByteMaps& byte_maps() {
  static const ByteMaps maps;
  return maps;
}

}  // namespace

const std::string& byte_symbol(uint8_t b) { return byte_maps().symbol[b]; }

void append_symbols(std::string_view bytes, std::string& out) {
  const ByteMaps& m = byte_maps();
  for (char ch : bytes) out += m.symbol[static_cast<uint8_t>(ch)];
}

bool symbols_to_bytes(std::string_view symbols, std::string& out) {
  const ByteMaps& m = byte_maps();
  for (size_t pos = 0; pos < symbols.size();) {
    const CodePoint cp = decode_at(symbols, pos);
    if (cp.c >= m.byte_of.size() || m.byte_of[cp.c] < 0) return false;
    out.push_back(static_cast<char>(m.byte_of[cp.c]));
    pos += cp.len;
  }
  return true;
}

size_t next_piece(std::string_view s, size_t pos) {
  SKEIN_ASSERT(pos < s.size(), "next_piece at ", pos, " of ", s.size());
  static const Regex gpt2(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", "GPT-2 pre-split");
  size_t start = 0, end = 0;
  if (!gpt2.find(s, pos, start, end)) return s.size();  // invalid bytes to the end
  return start > pos ? start : end;                       // a run of invalid bytes, or the match
}

}  // namespace bpe_detail

std::vector<std::string> pretokenize(std::string_view text) {
  std::vector<std::string> pieces;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = bpe_detail::next_piece(text, pos);
    pieces.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

}  // namespace skein
