// test_bpe.cpp — byte-level BPE: training on hand-checkable and small embedded corpora,
// encode/decode identity on arbitrary input, merge priority, tokenizer.json round trips and
// the errors for malformed files. BpeHfExport feeds tests/data/check_hf_tokenizer.py.
#include <gtest/gtest.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include "core/error.h"
#include "data/bpe.h"
#include "data/bpe_internal.h"

namespace skein {
namespace {

const std::string kCorpus = std::string(R"(In the beginning the river ran quietly past the mill, and the miller's daughter
watched it from the window every morning. She didn't know where the water went, but she'd
often wondered about it. "One day," she said, "I'll follow the river to the sea."
The miller laughed. "The sea is 300 miles away, and the road isn't kind to travellers."
Years passed. The mill grew old; the wheel turned slower, and the daughter grew taller.
In 1887 the great flood came: the river rose 12 feet in a single night, and the mill's
lower rooms were filled with mud. When the water fell again, she packed a small bag --
bread, cheese, two apples, and her mother's map -- and set out along the bank.
   She walked for forty days.   The river widened; towns appeared and disappeared;
bridges of stone, of wood, of iron crossed above her head. At last, on the forty-first
morning, she smelled salt in the wind, and she knew she'd arrived.
)") + "\tTabs, CRLF line ends,\r\nand unicode: caf\xC3\xA9, na\xC3\xAFve, \xD0\x9C\xD0\xBE\xD1\x81"
      "\xD0\xBA\xD0\xB2\xD0\xB0, \xE6\x9D\xB1\xE4\xBA\xAC, \xF0\x9F\x8C\x8A!\n";

std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  std::istringstream in(kCorpus);
  for (std::string line; std::getline(in, line);) texts.push_back(line + "\n");
  return texts;
}

const BpeTokenizer& trained() {
  static const BpeTokenizer tok = train_bpe(corpus(), 400);
  return tok;
}

std::string random_utf8(std::mt19937& rng, size_t n) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x24F}, {0x300, 0x36F}, {0x391, 0x3C9}, {0x410, 0x44F},
      {0x5D0, 0x5EA}, {0x620, 0x64A}, {0x900, 0x97F}, {0x3000, 0x30FF}, {0x4E00, 0x4F00},
      {0xAC00, 0xAD00}, {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const auto [lo, hi] = ranges[rng() % ranges.size()];
    char32_t c = lo + rng() % (hi - lo + 1);
    if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
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
  return s;
}

std::vector<std::string> tricky_strings() {
  return {"", " ", "a", "the river", "   leading", "trailing   ", "a   b", "\r\n\r\n", "\t\t\tx",
          "don't STOP'S 'tis", "1234567890 3.14159", "!!!???...", "<|endoftext|>",
          std::string(300, ' ') + "x", std::string(1000, 'a'), "caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC",
          "e\xCC\x81\xCC\x81\xCC\x81", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
          std::string("nul\0byte", 8), "\xFF\xFE\x80\xC3", kCorpus};
}

TEST(Bpe, HandCheckedTraining) {
  // Pieces "ab", " ab" x2, " cd": (a,b) 3 times, then (Ġ,ab) 2, then the (Ġ,c) / (c,d) tie goes
  // to the smaller ids (Ġ is byte 32), then (Ġc,d). Then no pair is left: the vocabulary stops
  // short of the 1000 asked for.
  const BpeTokenizer tok = train_bpe({"ab ab ab cd"}, 1000);
  const std::string G = "\xC4\xA0";
  using M = std::pair<std::string, std::string>;
  EXPECT_EQ(tok.merges, (std::vector<M>{{"a", "b"}, {G, "ab"}, {G, "c"}, {G + "c", "d"}}));
  ASSERT_EQ(tok.vocab_size(), 256 + 4 + 1);
  EXPECT_EQ(tok.vocab[256], "ab");
  EXPECT_EQ(tok.vocab[259], G + "cd");
  EXPECT_EQ(tok.eos_id(), 260);
  EXPECT_EQ(tok.vocab[260], "<|endoftext|>");
  EXPECT_EQ(tok.token_to_id.at(G + "ab"), 257);
  EXPECT_EQ(tok.encode("ab cd"), (std::vector<int64_t>{256, 259}));
  EXPECT_EQ(tok.encode("cd ab"), (std::vector<int64_t>{'c', 'd', 257}));
  EXPECT_EQ(tok.decode({256, 260, 259}), "ab cd");  // <|endoftext|> decodes to ""
}

// A hand-built tokenizer: the 256 byte symbols plus the given merges.
BpeTokenizer with_merges(const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeTokenizer tok;
  for (int b = 0; b < 256; ++b) tok.vocab.push_back(bpe_detail::byte_symbol(static_cast<uint8_t>(b)));
  for (const auto& [a, b] : merges) {
    tok.merges.emplace_back(a, b);
    if (std::find(tok.vocab.begin(), tok.vocab.end(), a + b) == tok.vocab.end()) tok.vocab.push_back(a + b);
  }
  tok.vocab.push_back("<|endoftext|>");
  for (size_t i = 0; i < tok.vocab.size(); ++i) tok.token_to_id[tok.vocab[i]] = static_cast<int64_t>(i);
  tok.special["<|endoftext|>"] = static_cast<int64_t>(tok.vocab.size()) - 1;
  return tok;
}

TEST(Bpe, MergesApplyByRankThenLeftmost) {
  const BpeTokenizer bc_first = with_merges({{"b", "c"}, {"a", "b"}});
  EXPECT_EQ(bc_first.encode("abc"), (std::vector<int64_t>{'a', 256}));
  const BpeTokenizer ab_first = with_merges({{"a", "b"}, {"b", "c"}});
  EXPECT_EQ(ab_first.encode("abc"), (std::vector<int64_t>{256, 'c'}));
  const BpeTokenizer aa = with_merges({{"a", "a"}});
  EXPECT_EQ(aa.encode("aaa"), (std::vector<int64_t>{256, 'a'}));
  EXPECT_EQ(aa.encode("aaaa"), (std::vector<int64_t>{256, 256}));
  // Merges never cross pieces: "a" and " a" are different pieces.
  EXPECT_EQ(aa.encode("a a"), (std::vector<int64_t>{'a', ' ', 'a'}));
}

TEST(Bpe, TrainedVocabularyAndCompression) {
  const BpeTokenizer& tok = trained();
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.eos_id(), 399);
  EXPECT_EQ(static_cast<int64_t>(tok.token_to_id.size()), 400);
  EXPECT_GE(tok.merges.size(), 143u);
  const std::string text = kCorpus;
  const size_t n = tok.encode(text).size();
  EXPECT_LT(static_cast<double>(n), 0.5 * static_cast<double>(text.size())) << n << " tokens";
  // Frequent words of the corpus became single tokens.
  EXPECT_EQ(tok.encode(" the"), std::vector<int64_t>{tok.token_to_id.at("\xC4\xA0the")});
  EXPECT_EQ(tok.encode(" river").size(), 1u);
}

TEST(Bpe, DeterministicTraining) {
  const BpeTokenizer again = train_bpe(corpus(), 400);
  EXPECT_EQ(again.merges, trained().merges);
  EXPECT_EQ(again.vocab, trained().vocab);
  EXPECT_EQ(again.to_json(), trained().to_json());
}

TEST(Bpe, RoundTripOnAnyInput) {
  const BpeTokenizer& tok = trained();
  for (const std::string& s : tricky_strings()) EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes(rng() % 100, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    const std::vector<int64_t> ids = tok.encode(bytes);
    for (int64_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.eos_id());
    EXPECT_EQ(tok.decode(ids), bytes);
    const std::string utf8 = random_utf8(rng, rng() % 50);
    EXPECT_EQ(tok.decode(tok.encode(utf8)), utf8);
  }
  // Special tokens are not parsed from text: the literal string encodes as ordinary bytes.
  for (int64_t id : tok.encode("<|endoftext|>")) EXPECT_NE(id, tok.eos_id());
}

TEST(Bpe, DecodeRejectsBadIds) {
  const BpeTokenizer& tok = trained();
  try {
    tok.decode({1, 2, 400});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 400 at position 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok.decode({-1}), Error);
  EXPECT_THROW(train_bpe({"abc"}, 256), Error);
}

TEST(Bpe, JsonRoundTrip) {
  const BpeTokenizer& tok = trained();
  const std::string text = tok.to_json();
  EXPECT_EQ(text, tok.identity());
  const BpeTokenizer back = BpeTokenizer::from_json(text, "mem");
  EXPECT_EQ(back.vocab, tok.vocab);
  EXPECT_EQ(back.merges, tok.merges);
  EXPECT_EQ(back.special, tok.special);
  EXPECT_EQ(back.token_to_id, tok.token_to_id);
  EXPECT_EQ(back.to_json(), text);
  for (const std::string& s : tricky_strings()) EXPECT_EQ(back.encode(s), tok.encode(s));

  // The newer merges layout, [["a", "b"], ...], reads the same.
  nlohmann::json j = nlohmann::json::parse(text);
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& [a, b] : tok.merges) pairs.push_back({a, b});
  j["model"]["merges"] = pairs;
  EXPECT_EQ(BpeTokenizer::from_json(j.dump(), "mem").merges, tok.merges);

  // Hugging Face's own trainer puts the special token first: ids shift by one, same pieces.
  for (auto& [token, id] : j["model"]["vocab"].items())
    id = token == "<|endoftext|>" ? 0 : id.get<int64_t>() + 1;
  j["added_tokens"][0]["id"] = 0;
  j["model"]["ignore_merges"] = false;
  const BpeTokenizer shifted = BpeTokenizer::from_json(j.dump(), "mem");
  EXPECT_EQ(shifted.eos_id(), 0);
  for (const std::string& s : tricky_strings()) {
    std::vector<int64_t> expect = tok.encode(s);
    for (int64_t& id : expect) ++id;
    EXPECT_EQ(shifted.encode(s), expect);
  }
}

TEST(Bpe, SaveAndLoad) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("skein_test_bpe_" + std::to_string(::getpid()) + ".json");
  trained().save(path.string());
  const BpeTokenizer back = BpeTokenizer::load(path.string());
  EXPECT_EQ(back.to_json(), trained().to_json());
  std::filesystem::remove(path);
  try {
    BpeTokenizer::load(path.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

// from_json on `j` must throw an Error that names the source and contains `what`.
void expect_json_error(const nlohmann::json& j, const std::string& what) {
  try {
    BpeTokenizer::from_json(j.dump(), "bad.json");
    ADD_FAILURE() << "no error for: " << what;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'bad.json'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(Bpe, MalformedJsonErrors) {
  const BpeTokenizer tok = with_merges({{"a", "b"}, {"ab", "c"}});
  const nlohmann::json good = nlohmann::json::parse(tok.to_json());
  ASSERT_NO_THROW(BpeTokenizer::from_json(good.dump(), "bad.json"));
  try {
    BpeTokenizer::from_json("{\"model\": ", "bad.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  auto edit = [&](auto f) { nlohmann::json j = good; f(j); return j; };
  expect_json_error(edit([](auto& j) { j["model"]["type"] = "WordPiece"; }), "only BPE");
  expect_json_error(edit([](auto& j) { j.erase("model"); }), "no \"model\"");
  expect_json_error(edit([](auto& j) { j["model"].erase("vocab"); }), "model.vocab is missing");
  expect_json_error(edit([](auto& j) { j["model"].erase("merges"); }), "model.merges is missing");
  expect_json_error(edit([](auto& j) { j["model"]["merges"].push_back("x zz"); }), "'zz' is not in the vocabulary");
  expect_json_error(edit([](auto& j) { j["model"]["merges"].push_back("abc"); }), "not of the form");
  expect_json_error(edit([](auto& j) { j["model"]["merges"].push_back("a b"); }), "repeats an earlier merge");
  expect_json_error(edit([](auto& j) { j["model"]["vocab"]["ab"] = 5000; }), "not contiguous");
  expect_json_error(edit([](auto& j) { j["model"]["vocab"]["ab"] = 0; }), "id 0 is given to both");
  expect_json_error(edit([](auto& j) { j["model"]["vocab"]["ab"] = "x"; }), "not an integer id");
  expect_json_error(edit([](auto& j) {
                      j["model"]["vocab"].erase("<|endoftext|>");
                      j["added_tokens"] = nlohmann::json::array();
                    }),
                    "no <|endoftext|>");
  expect_json_error(edit([](auto& j) {  // drop byte 'z' and renumber: a byte symbol is missing
                      const int64_t z = j["model"]["vocab"]["z"];
                      j["model"]["vocab"].erase("z");
                      for (auto& [k, v] : j["model"]["vocab"].items())
                        if (v.template get<int64_t>() > z) v = v.template get<int64_t>() - 1;
                      j["added_tokens"][0]["id"] = j["added_tokens"][0]["id"].template get<int64_t>() - 1;
                    }),
                    "lacks the symbol 'z' of byte 122");
  expect_json_error(edit([](auto& j) { j["model"]["vocab"]["a b"] = j["model"]["vocab"]["ab"]; j["model"]["vocab"].erase("ab"); }),
                    "not a string of byte-level symbols");
  expect_json_error(edit([](auto& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }), "add_prefix_space is true");
  expect_json_error(edit([](auto& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }), "must be null or of type ByteLevel");
  expect_json_error(edit([](auto& j) { j["normalizer"] = {{"type", "NFC"}}; }), "normalizer");
  expect_json_error(edit([](auto& j) { j["model"]["dropout"] = 0.1; }), "model.dropout");
  expect_json_error(edit([](auto& j) { j["added_tokens"][0]["id"] = 3; }), "in the vocab but");
}

// Not a check by itself: with SKEIN_HF_EXPORT_DIR set (by tests/data/check_hf_tokenizer.py),
// trains a tokenizer (on SKEIN_HF_TRAIN_FILE, else the embedded corpus; SKEIN_HF_VOCAB ids) or
// loads SKEIN_HF_LOAD_FILE,
// writes tokenizer.json, and the ids and pre-split pieces of each string of strings.json to
// ids.json and pieces.json there.
TEST(BpeHfExport, WritesTokenizerAndIds) {
  const char* dir = std::getenv("SKEIN_HF_EXPORT_DIR");
  if (!dir) GTEST_SKIP() << "SKEIN_HF_EXPORT_DIR not set";
  const std::filesystem::path out(dir);
  std::vector<std::string> texts = corpus();
  if (const char* file = std::getenv("SKEIN_HF_TRAIN_FILE")) {
    std::ifstream f(file, std::ios::binary);
    ASSERT_TRUE(f) << file;
    std::ostringstream os;
    os << f.rdbuf();
    texts = {os.str()};
  }
  const char* vocab = std::getenv("SKEIN_HF_VOCAB");
  const char* load = std::getenv("SKEIN_HF_LOAD_FILE");  // a tokenizer.json made elsewhere
  const BpeTokenizer tok = load ? BpeTokenizer::load(load) : train_bpe(texts, vocab ? std::atoll(vocab) : 400);
  tok.save((out / "tokenizer.json").string());
  std::ifstream in(out / "strings.json");
  ASSERT_TRUE(in) << (out / "strings.json");
  const nlohmann::json strings = nlohmann::json::parse(in);
  nlohmann::json ids = nlohmann::json::array(), pieces = nlohmann::json::array();
  for (const auto& s : strings) {
    const std::string text = s.get<std::string>();
    ids.push_back(tok.encode(text));
    EXPECT_EQ(tok.decode(ids.back().get<std::vector<int64_t>>()), text);
    nlohmann::json p = nlohmann::json::array();  // in byte symbols, as HF's pre_tokenize_str
    for (const std::string& piece : pretokenize(text)) {
      std::string sym;
      bpe_detail::append_symbols(piece, sym);
      p.push_back(sym);
    }
    pieces.push_back(p);
  }
  std::ofstream(out / "ids.json") << ids.dump();
  std::ofstream(out / "pieces.json") << pieces.dump();
}

}  // namespace
}  // namespace skein
