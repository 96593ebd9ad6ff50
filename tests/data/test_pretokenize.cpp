// test_pretokenize.cpp — the GPT-2 pre-split against pieces derived by hand from the pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, and GPT-2's
// byte <-> symbol map.
#include <gtest/gtest.h>
#include <random>
#include <set>
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace {

using Pieces = std::vector<std::string>;

TEST(Pretokenize, WordsAndLeadingSpace) {
  EXPECT_EQ(pretokenize("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(pretokenize(""), Pieces{});
  EXPECT_EQ(pretokenize(" hi"), (Pieces{" hi"}));
  EXPECT_EQ(pretokenize("  hi"), (Pieces{" ", " hi"}));
}

TEST(Pretokenize, Contractions) {
  EXPECT_EQ(pretokenize("I'm don't they're we've I'll he'd it's"),
            (Pieces{"I", "'m", " don", "'t", " they", "'re", " we", "'ve", " I", "'ll", " he", "'d",
                    " it", "'s"}));
  // Case-sensitive: 'S is no contraction; an apostrophe run swallows the would-be contraction.
  EXPECT_EQ(pretokenize("IT'S"), (Pieces{"IT", "'", "S"}));
  EXPECT_EQ(pretokenize("'''s"), (Pieces{"'''", "s"}));
  EXPECT_EQ(pretokenize(" 's"), (Pieces{" '", "s"}));
  EXPECT_EQ(pretokenize("'sx"), (Pieces{"'s", "x"}));
}

TEST(Pretokenize, NumbersAndPunctuation) {
  EXPECT_EQ(pretokenize("abc123 456.78"), (Pieces{"abc", "123", " 456", ".", "78"}));
  EXPECT_EQ(pretokenize("Hi!!! ...ok?"), (Pieces{"Hi", "!!!", " ...", "ok", "?"}));
  EXPECT_EQ(pretokenize("x=(y+1);"), (Pieces{"x", "=(", "y", "+", "1", ");"}));
  EXPECT_EQ(pretokenize("a!'s"), (Pieces{"a", "!'", "s"}));
}

TEST(Pretokenize, WhitespaceRuns) {
  // The last space of a run stays with the following word.
  EXPECT_EQ(pretokenize("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(pretokenize("end   "), (Pieces{"end", "   "}));
  EXPECT_EQ(pretokenize("a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(pretokenize("a\r\nb"), (Pieces{"a", "\r", "\n", "b"}));
  EXPECT_EQ(pretokenize("a \n b"), (Pieces{"a", " \n", " b"}));
  EXPECT_EQ(pretokenize("x\ty"), (Pieces{"x", "\t", "y"}));
  EXPECT_EQ(pretokenize("\t\tfoo"), (Pieces{"\t", "\t", "foo"}));
  EXPECT_EQ(pretokenize("a \t!"), (Pieces{"a", " ", "\t", "!"}));
  EXPECT_EQ(pretokenize("a\n  b"), (Pieces{"a", "\n ", " b"}));
}

TEST(Pretokenize, Unicode) {
  EXPECT_EQ(pretokenize("h\xC3\xA9llo w\xC3\xB6rld"), (Pieces{"h\xC3\xA9llo", " w\xC3\xB6rld"}));
  // Cyrillic, then CJK + Hiragana + Katakana as one letter run.
  EXPECT_EQ(pretokenize("\xD0\x9F\xD1\x80\xD0\xB8 \xD0\xBC\xD0\xB8\xD1\x80"),
            (Pieces{"\xD0\x9F\xD1\x80\xD0\xB8", " \xD0\xBC\xD0\xB8\xD1\x80"}));
  EXPECT_EQ(pretokenize("\xE6\x97\xA5\xE6\x9C\xAC\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD"),
            (Pieces{"\xE6\x97\xA5\xE6\x9C\xAC\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD"}));
  // An emoji (with skin-tone modifier) and "!" form one punctuation run with the space.
  EXPECT_EQ(pretokenize("hi \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD!"),
            (Pieces{"hi", " \xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD!"}));
  // A combining acute accent (Mn) is not a letter.
  EXPECT_EQ(pretokenize("e\xCC\x81" "cole"), (Pieces{"e", "\xCC\x81", "cole"}));
  // Superscript two is a number; no-break space is whitespace; Arabic-Indic digits are numbers.
  EXPECT_EQ(pretokenize("x\xC2\xB2"), (Pieces{"x", "\xC2\xB2"}));
  EXPECT_EQ(pretokenize("a\xC2\xA0" "b"), (Pieces{"a", "\xC2\xA0", "b"}));
  EXPECT_EQ(pretokenize(" \xD9\xA3\xD9\xA4"), (Pieces{" \xD9\xA3\xD9\xA4"}));
  // Ideographic space (U+3000) runs like other whitespace.
  EXPECT_EQ(pretokenize("a\xE3\x80\x80\xE3\x80\x80" "b"), (Pieces{"a", "\xE3\x80\x80", "\xE3\x80\x80", "b"}));
}

TEST(Pretokenize, InvalidUtf8FormsItsOwnPieces) {
  EXPECT_EQ(pretokenize("\xFF\xFE" "ab"), (Pieces{"\xFF\xFE", "ab"}));
  EXPECT_EQ(pretokenize("a\xC3"), (Pieces{"a", "\xC3"}));            // truncated sequence
  EXPECT_EQ(pretokenize("a\xED\xA0\x80"), (Pieces{"a", "\xED\xA0\x80"}));  // a surrogate
  EXPECT_EQ(pretokenize(" \x80x"), (Pieces{" ", "\x80", "x"}));
  EXPECT_EQ(pretokenize("ab\x80\x81!!"), (Pieces{"ab", "\x80\x81", "!!"}));
}

TEST(Pretokenize, PiecesTileRandomBytes) {
  const std::string alphabet("  \t\n\r'sSa1!\xC3\xA9\0", 14);  // even trials: a tricky alphabet
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s(rng() % 60, '\0');
    for (char& c : s) c = static_cast<char>(trial % 2 ? rng() % 256 : alphabet[rng() % alphabet.size()]);
    std::string joined;
    for (const std::string& p : pretokenize(s)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    EXPECT_EQ(joined, s);
  }
}

TEST(ByteSymbols, Gpt2Map) {
  using bpe_detail::byte_symbol;
  EXPECT_EQ(byte_symbol(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_symbol('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_symbol(0), "\xC4\x80");     // U+0100 'Ā'
  EXPECT_EQ(byte_symbol('a'), "a");
  EXPECT_EQ(byte_symbol(0xE9), "\xC3\xA9");  // printable Latin-1 maps to itself
  EXPECT_EQ(byte_symbol(0xAD), "\xC5\x83");  // soft hyphen is the last remapped byte: U+0143
  std::set<std::string> all;
  for (int b = 0; b < 256; ++b) {
    const std::string& sym = byte_symbol(static_cast<uint8_t>(b));
    all.insert(sym);
    std::string back;
    ASSERT_TRUE(bpe_detail::symbols_to_bytes(sym, back));
    EXPECT_EQ(back, std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(all.size(), 256u);
  std::string out;
  EXPECT_FALSE(bpe_detail::symbols_to_bytes(" ", out));  // a raw space is no byte symbol
}

}  // namespace
}  // namespace skein
