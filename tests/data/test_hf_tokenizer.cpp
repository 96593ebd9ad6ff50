// test_hf_tokenizer.cpp — HfTokenizer against Hugging Face `tokenizers` 0.23.3: for each family's
// fixture (tests/fixtures/tokenizers, made by make_fixtures.py) the ids of the multilingual test
// text, of each of its lines and of strings with special tokens equal HF's id for id, with and
// without the template (BOS); decode equals HF's decode (special tokens skipped and kept) for
// those ids and for random ids; decode(encode(x)) == x where HF round-trips. No Python needed.
#include <gtest/gtest.h>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <nlohmann/json.hpp>
#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"
#include "data/unicode_text.h"

namespace skein {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const fs::path kDir = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers";
const char* kFamilies[] = {"gpt2", "llama3", "qwen2", "llama2", "mistral", "added"};

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

const json& reference() {
  static const json r = json::parse(read(kDir / "reference.json"));
  return r;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

class HfFamily : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<HfTokenizer> tok = HfTokenizer::load((kDir / (std::string(GetParam()) + ".json")).string());
  const json& ref = reference()[GetParam()];
};

TEST_P(HfFamily, IdsEqualHuggingFace) {
  EXPECT_EQ(tok->vocab_size(), ref["vocab_size"].get<int64_t>());
  size_t n = 0;
  for (const json& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(tok->encode(text), ids_of(c["ids"])) << GetParam() << ": " << text.substr(0, 80);
    EXPECT_EQ(tok->encode_with_template(text), ids_of(c["ids_template"])) << GetParam() << ": " << text.substr(0, 80);
    ++n;
  }
  EXPECT_GT(n, 20u);
}

TEST_P(HfFamily, InvalidUtf8IsRepairedAsPythonDoes) {
  // The first case is test_text.bin decoded with errors="replace"; the raw bytes give the same ids.
  const std::string raw = read(kDir / "test_text.bin");
  ASSERT_FALSE(valid_utf8(raw));
  EXPECT_EQ(repair_utf8(raw), ref["cases"][0]["text"].get<std::string>());
  EXPECT_EQ(tok->encode(raw), ids_of(ref["cases"][0]["ids"]));
}

TEST_P(HfFamily, DecodeEqualsHuggingFace) {
  for (const json& c : ref["cases"]) {
    const std::vector<int64_t> ids = ids_of(c["ids"]);
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>()) << GetParam();
    EXPECT_EQ(tok->decode(ids, false), c["decoded_special"].get<std::string>()) << GetParam();
  }
  for (const json& r : ref["random_ids"]) {
    const std::vector<int64_t> ids = ids_of(r["ids"]);
    EXPECT_EQ(tok->decode(ids), r["decoded"].get<std::string>()) << GetParam() << " ids " << r["ids"].dump();
    EXPECT_EQ(tok->decode(ids, false), r["decoded_special"].get<std::string>()) << GetParam() << " ids " << r["ids"].dump();
  }
}

TEST_P(HfFamily, RoundTripWhereHuggingFaceRoundTrips) {
  size_t round_trips = 0;
  for (const json& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    if (c["decoded_special"] != text) continue;  // e.g. SentencePiece's unk, or its stripped leading space
    EXPECT_EQ(tok->decode(tok->encode(text), false), text) << GetParam();
    ++round_trips;
  }
  EXPECT_GT(round_trips, 0u);
}

TEST_P(HfFamily, IdentityRebuildsTheSameTokenizer) {
  auto again = tokenizer_from_identity(tok->identity());
  EXPECT_EQ(again->kind(), "hf");
  EXPECT_EQ(again->eos_id(), tok->eos_id());
  const std::string text = ref["cases"][0]["text"].get<std::string>();
  EXPECT_EQ(again->encode_with_template(text), tok->encode_with_template(text));
  auto spec = make_tokenizer("hf:" + (kDir / (std::string(GetParam()) + ".json")).string());
  EXPECT_EQ(spec->encode(text), tok->encode(text));
}

INSTANTIATE_TEST_SUITE_P(Families, HfFamily, ::testing::ValuesIn(kFamilies));

TEST(HfTokenizer, SpecialTokensAndTemplate) {
  auto llama3 = HfTokenizer::load((kDir / "llama3.json").string());
  const int64_t bot = *llama3->token_id("<|begin_of_text|>"), eot = *llama3->token_id("<|eot_id|>");
  EXPECT_EQ(llama3->prefix_ids(), std::vector<int64_t>{bot});
  EXPECT_TRUE(llama3->suffix_ids().empty());
  EXPECT_EQ(llama3->eos_id(), *llama3->token_id("<|end_of_text|>"));
  const std::vector<int64_t> ids = llama3->encode("a<|eot_id|>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], eot);
  EXPECT_EQ(llama3->decode(ids), "ab");  // special tokens skipped
  EXPECT_EQ(llama3->decode(ids, false), "a<|eot_id|>b");
  auto llama2 = HfTokenizer::load((kDir / "llama2.json").string());
  EXPECT_EQ(llama2->prefix_ids(), std::vector<int64_t>{1});
  EXPECT_EQ(llama2->eos_id(), 2);
  auto gpt2 = HfTokenizer::load((kDir / "gpt2.json").string());
  EXPECT_TRUE(gpt2->prefix_ids().empty());
  EXPECT_EQ(gpt2->eos_id(), *gpt2->token_id("<|endoftext|>"));
}

TEST(HfTokenizer, CutSafety) {
  for (const char* f : {"gpt2", "llama3", "qwen2"})
    EXPECT_TRUE(HfTokenizer::load((kDir / (std::string(f) + ".json")).string())->cut_before_space_is_safe()) << f;
  for (const char* f : {"llama2", "mistral"})
    EXPECT_FALSE(HfTokenizer::load((kDir / (std::string(f) + ".json")).string())->cut_before_space_is_safe()) << f;
}

// The error names the JSON key of what is not supported.
void expect_error(const json& j, const std::string& key) {
  try {
    HfTokenizer tok(j.dump(), "test.json");
    ADD_FAILURE() << "no error for " << key;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test.json"), std::string::npos) << e.what();
  }
}

TEST(HfTokenizer, UnsupportedComponentsNameTheirKey) {
  const json base = json::parse(read(kDir / "qwen2.json"));
  json j = base;
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error(j, "normalizer.type");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
  expect_error(j, "pre_tokenizer.pretokenizers[0].type");
  j = base;
  j["model"]["type"] = "WordPiece";
  expect_error(j, "model.type");
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, "decoder.type");
  j = base;
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_error(j, "post_processor.type");
  j = base;
  j["model"]["merges"][3] = "nosuch token";
  expect_error(j, "model.merges[3]");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error(j, "pre_tokenizer.pretokenizers[0].pattern");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_error(j, "model.dropout");
  j = base;
  j["added_tokens"] = json::array();
  expect_error(j, "added_tokens");  // no end-of-document token left
}

TEST(UnicodeText, RepairAndRegex) {
  EXPECT_EQ(repair_utf8("a\xE0\xA0x"), "a\xEF\xBF\xBDx");                 // one maximal subpart
  EXPECT_EQ(repair_utf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");                  // truncated emoji
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3
  EXPECT_EQ(repair_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");          // overlong
  // \s is Unicode White_Space (U+0085 too), \p{L} covers every script.
  Regex space(R"(\s+)", "test");
  size_t b = 0, e = 0;
  ASSERT_TRUE(space.find("x\xC2\x85y", 0, b, e));
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(e, 3u);
  Regex letters(R"(\p{L}+)", "test");
  ASSERT_TRUE(letters.find("1 \xE0\xAE\xA4\xE0\xAE\xAE", 0, b, e));  // Tamil
  EXPECT_EQ(b, 2u);
  EXPECT_EQ(unicode_normalize("e\xCC\x81", "NFC"), "\xC3\xA9");
  EXPECT_EQ(unicode_normalize("\xEF\xAC\x81", "NFKC"), "fi");
  EXPECT_EQ(unicode_lowercase("\xD0\x81" "Ab"), "\xD1\x91" "ab");
}

// Random strings over many scripts, whitespace, digits, contractions, combining marks and the
// families' special tokens; code point ranges assigned before Unicode 14 (PCRE2 10.42's tables).
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {0x21, 0x2F}, {0xC0, 0x17F}, {0x300, 0x36F}, {0x391, 0x3C9},
      {0x410, 0x44F}, {0x5D0, 0x5EA}, {0x627, 0x64A}, {0x660, 0x669}, {0x905, 0x939}, {0xB85, 0xBB9},
      {0xE01, 0xE30}, {0x1100, 0x1112}, {0x2000, 0x200B}, {0x2160, 0x2188}, {0x3041, 0x3096},
      {0x30A1, 0x30FA}, {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3}, {0xFF10, 0xFF5A}, {0x1F300, 0x1F64F},
      {0x1F900, 0x1F9FF}, {0x20000, 0x2A6D6}};
  static const std::vector<std::string> bits = {" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "'s", "'S", "'ll",
                                                "'T", "'Re", "'VE", "'d", "'M", "'", "12345678", "3.14", "\u00a0",
                                                "\u3000", "\u0085", "\u200d", "<|endoftext|>", "<|eot_id|>",
                                                "<|im_start|>", "</s>", "<s>", "\xE2\x96\x81"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < n; ++i) {
    if (rng() % 3 == 0) {
      s += bits[rng() % bits.size()];
      continue;
    }
    const auto [lo, hi] = ranges[rng() % ranges.size()];
    const int len = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < len; ++k) {
      const char32_t c = lo + static_cast<char32_t>(rng() % (hi - lo + 1));
      if (c < 0x80) {
        s += static_cast<char>(c);
      } else if (c < 0x800) {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
      } else if (c < 0x10000) {
        s += static_cast<char>(0xE0 | (c >> 12));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (c >> 18));
        s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (c & 0x3F));
      }
    }
  }
  return s;
}

// The live comparison: 400 fresh random strings through Hugging Face `tokenizers` (Python) and
// through skein, every fixture. Skipped where python3 cannot import tokenizers (as in CI).
TEST(HfTokenizer, LiveComparisonOnRandomStrings) {
  if (std::system("python3 -c 'import tokenizers' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with tokenizers is not available";
  std::mt19937 rng(std::random_device{}());
  json req;
  for (const char* f : kFamilies) req["files"][f] = (kDir / (std::string(f) + ".json")).string();
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back(random_text(rng));
  req["texts"] = texts;
  const fs::path dir = fs::temp_directory_path() / ("skein_hf_live_" + std::to_string(rng()));
  fs::create_directories(dir);
  std::ofstream(dir / "req.json") << req.dump();
  const std::string cmd = "python3 " + (fs::path(SKEIN_SOURCE_DIR) / "tests" / "data" / "hf_tokenizer_oracle.py").string() +
                          " " + (dir / "req.json").string() + " " + (dir / "out.json").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const json out = json::parse(read(dir / "out.json"));
  fs::remove_all(dir);
  for (const char* f : kFamilies) {
    auto tok = HfTokenizer::load((kDir / (std::string(f) + ".json")).string());
    int bad = 0;
    for (size_t i = 0; i < texts.size() && bad < 5; ++i) {
      const std::vector<int64_t> ids = tok->encode(texts[i]);
      const bool ok = ids == ids_of(out[f]["ids"][i]) && tok->encode_with_template(texts[i]) == ids_of(out[f]["ids_template"][i]) &&
                      tok->decode(ids, false) == out[f]["decoded"][i].get<std::string>();
      if (!ok) ++bad;
      EXPECT_TRUE(ok) << f << ": " << json(texts[i]).dump() << "\n skein " << json(ids).dump() << "\n hf    "
                      << out[f]["ids"][i].dump();
    }
  }
}

}  // namespace
}  // namespace skein
