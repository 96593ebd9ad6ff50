// pretokenize.cpp — the GPT-2 pre-split (pretokenize, next_piece), written by hand over UTF-8
// code points, and GPT-2's byte <-> printable-unicode symbol map.
//
// reference: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"
// (openai/gpt-2 src/encoder.py: bytes_to_unicode and the pattern below).
//
// The pattern, tried alternative by alternative at each position (leftmost first match):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Character classes. ASCII is exact. \s is the Unicode White_Space property (exact). \p{L} and
// \p{N} are exact inside these blocks, and everything else counts as "other" (punctuation):
// Latin-1 Supplement, Latin Extended-A/B, IPA, spacing modifier letters, Greek, Cyrillic,
// Armenian, Hebrew, Arabic, Devanagari, Thai, Georgian, Hangul Jamo, Latin Extended
// Additional, Greek Extended, super/subscripts, letterlike symbols, number forms, enclosed
// alphanumerics, CJK symbols, Hiragana, Katakana, Hangul compatibility Jamo, CJK Unified
// Ideographs (+ Ext. A, Ext. B..F, compatibility), Hangul syllables, halfwidth/fullwidth
// forms. The tables were generated with Python's unicodedata (Unicode 14.0): category L* ->
// letter, N* -> number. Letters of other scripts (Tamil, Bengali, Ethiopic, ...) count as
// "other": they still form runs, but runs that also take in adjacent punctuation. This changes
// which pieces BPE sees (and so ids versus Hugging Face's), never the round trip.
// Invalid UTF-8 bytes are single "other" characters.
#include <algorithm>
#include <iterator>
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace bpe_detail {
namespace {

struct Range {
  char32_t lo, hi;
};

constexpr Range kLetters[] = {
    {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1},
    {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374},
    {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
    {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F},
    {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2},
    {0x620, 0x64A}, {0x66E, 0x66F}, {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6},
    {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x904, 0x939}, {0x93D, 0x93D},
    {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x97F}, {0xE01, 0xE30}, {0xE32, 0xE33},
    {0xE40, 0xE46}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA},
    {0x10FC, 0x11FF}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D},
    {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D},
    {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
    {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x3005, 0x3006}, {0x3031, 0x3035}, {0x303B, 0x303C},
    {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3131, 0x318E},
    {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9},
    {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF},
    {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B738},
    {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0}, {0x2F800, 0x2FA1D},
};

constexpr Range kNumbers[] = {
    {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x966, 0x96F},
    {0xE50, 0xE59}, {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182},
    {0x2185, 0x2189}, {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x3007, 0x3007}, {0x3021, 0x3029},
    {0x3038, 0x303A}, {0xFF10, 0xFF19},
};

// Unicode White_Space.
constexpr Range kSpaces[] = {
    {0x09, 0x0D}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

template <size_t N>
bool in_ranges(const Range (&table)[N], char32_t c) {
  const Range* it = std::upper_bound(std::begin(table), std::end(table), c,
                                     [](char32_t v, const Range& r) { return v < r.lo; });
  return it != std::begin(table) && c <= (it - 1)->hi;
}

enum class Cls : uint8_t { Letter, Number, Space, Other };

constexpr char32_t kInvalid = 0xFFFFFFFF;  // a byte that does not start valid UTF-8

Cls classify(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return Cls::Letter;
    if (c >= '0' && c <= '9') return Cls::Number;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return Cls::Space;
    return Cls::Other;
  }
  if (c == kInvalid) return Cls::Other;
  if (in_ranges(kSpaces, c)) return Cls::Space;
  if (in_ranges(kLetters, c)) return Cls::Letter;
  if (in_ranges(kNumbers, c)) return Cls::Number;
  return Cls::Other;
}

struct CodePoint {
  char32_t c;
  size_t len;
};

// The code point at s[pos] (strict UTF-8: no overlong forms, surrogates or > U+10FFFF);
// anything else reads as one invalid byte.
CodePoint decode_at(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1};
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kInvalid, 1};
  }
  if (pos + len > s.size()) return {kInvalid, 1};
  if (byte(pos + 1) < lo || byte(pos + 1) > hi) return {kInvalid, 1};
  char32_t c = b0 & (0xFF >> (len + 1));
  for (size_t i = 1; i < len; ++i) {
    const uint8_t b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return {kInvalid, 1};
    c = (c << 6) | (b & 0x3F);
  }
  return {c, len};
}

// The end of the run of characters of class `cls` starting at pos.
size_t run_end(std::string_view s, size_t pos, Cls cls) {
  while (pos < s.size()) {
    const CodePoint cp = decode_at(s, pos);
    if (classify(cp.c) != cls) break;
    pos += cp.len;
  }
  return pos;
}

size_t contraction_len(std::string_view rest) {  // rest starts after the apostrophe
  for (std::string_view c : {"s", "t", "re", "ve", "m", "ll", "d"})
    if (rest.starts_with(c)) return c.size();
  return 0;
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
  // 's|'t|'re|'ve|'m|'ll|'d
  if (s[pos] == '\'') {
    const size_t n = contraction_len(s.substr(pos + 1));
    if (n > 0) return pos + 1 + n;
  }
  // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+' with the optional leading space
  if (s[pos] == ' ' && pos + 1 < s.size()) {
    const Cls next = classify(decode_at(s, pos + 1).c);
    if (next != Cls::Space) return run_end(s, pos + 1, next);
  }
  const CodePoint first = decode_at(s, pos);
  const Cls cls = classify(first.c);
  if (cls != Cls::Space) return run_end(s, pos, cls);
  // \s+(?!\S): the whitespace run minus its last character when a non-space follows;
  // \s+ : the whole run when that would leave nothing (a single space character).
  size_t end = pos, last = pos;
  while (end < s.size()) {
    const CodePoint cp = decode_at(s, end);
    if (classify(cp.c) != Cls::Space) break;
    last = end;
    end += cp.len;
  }
  if (end == s.size() || last == pos) return end;
  return last;
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
