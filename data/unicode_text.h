// unicode_text.h — the Unicode machinery of the tokenizers, all from real libraries: regular
// expressions with Unicode classes (\p{L}, \p{N}, \s, (?i:...), lookahead) run by PCRE2 in
// UTF + UCP mode (JIT-compiled), normalization forms and lower-casing by utf8proc, and UTF-8
// validation / repair with U+FFFD per maximal invalid subpart (as Python's errors="replace" and
// Rust's String::from_utf8_lossy do).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace skein {

// A compiled pattern. Its syntax is Oniguruma's / Perl's as Hugging Face tokenizer.json files
// write it; `\s` and `\S` are widened to Unicode White_Space (PCRE2's UCP `\s` leaves out
// U+0085, Oniguruma's does not). Invalid UTF-8 in a subject never matches (PCRE2_MATCH_INVALID_UTF).
// Thread-safe: matching uses per-thread match data.
class Regex {
 public:
  // `where` names the pattern's origin for errors (e.g. "pre_tokenizer.pretokenizers[0].pattern.Regex").
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(start, end) for each successive non-overlapping match of the pattern in `text`,
  // left to right (empty matches are skipped).
  void for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& fn) const;
  // The first match at or after `from`: true and [start, end) when there is one.
  bool find(std::string_view text, size_t from, size_t& start, size_t& end) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
};

// Oniguruma / Perl pattern text with `\s` / `\S` widened to Unicode White_Space (see Regex).
std::string widen_whitespace_classes(std::string_view pattern);

// The pattern that matches `literal` exactly (every character escaped).
std::string regex_escape(std::string_view literal);

// The length of the maximal subpart of the UTF-8 sequence starting at s[pos] (pos < s.size())
// and, in `valid`, whether it is one whole valid character (strict UTF-8: no overlong forms,
// surrogates or code points > U+10FFFF; Unicode 15, 3.9 "maximal subparts").
size_t utf8_subpart(std::string_view s, size_t pos, bool& valid);

// True when `text` is valid UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool valid_utf8(std::string_view text);
// `text` with every maximal invalid subpart replaced by U+FFFD (Python's errors="replace").
std::string repair_utf8(std::string_view text);

// Unicode normalization of valid UTF-8 by utf8proc: form is "NFC", "NFD", "NFKC" or "NFKD".
std::string unicode_normalize(std::string_view text, std::string_view form);
// Full Unicode lower-casing (utf8proc_tolower per code point) of valid UTF-8.
std::string unicode_lowercase(std::string_view text);

// The UTF-8 length of the character starting with byte `lead` (1 for invalid leads).
inline size_t utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? (lead >= 0xC0 ? 2 : 1) : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}

}  // namespace skein
