// test_prep_scale.cpp — prep of real corpora: the same documents as text files, JSONL,
// JSONL.gz (zlib) and JSONL.zst (libzstd) give id-for-id the same token file; 1 and 3
// tokenising threads agree; glob patterns; the validation fraction holds with few documents;
// binary input is refused unless allowed; JSONL errors name the file, line and field.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "data/prep.h"
#include "core/error.h"
#include "data/token_file.h"
#include "data/tokenizer.h"

namespace skein {
namespace {
namespace fs = std::filesystem;

class PrepScale : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("skein_test_prep_scale_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (int i = 0; i < 30; ++i) {
      std::string d = "Document " + std::to_string(i) + ": In the beginning \"God\" created the heaven, ";
      for (int k = 0; k < i % 7 + 1; ++k) d += "and the earth was without form — ü ∑ 語 — line " + std::to_string(k) + "\n";
      docs_.push_back(d);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string jsonl() const {
    std::string s;
    for (const auto& d : docs_) s += nlohmann::json{{"id", 1}, {"body", d}}.dump() + "\n";
    return s;
  }
  void write(const fs::path& p, const std::string& bytes) const {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
  PrepOptions options(std::vector<std::string> inputs, const std::string& out) const {
    PrepOptions o;
    o.inputs = std::move(inputs);
    o.output = (dir_ / out).string();
    o.progress = false;
    o.text_field = "body";
    o.val_fraction = 0.1;
    o.threads = 2;
    return o;
  }
  static std::pair<std::vector<int64_t>, std::vector<int64_t>> ids(const std::string& file) {
    TokenFile tf = TokenFile::open(file);
    const TokenSplit &t = tf.split("train"), &v = tf.split("val");
    return {t.read(0, t.size()), v.read(0, v.size())};
  }
  fs::path dir_;
  std::vector<std::string> docs_;
};

TEST_F(PrepScale, JsonlGzZstEqualPlainText) {
  for (size_t i = 0; i < docs_.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "doc%02zu.txt", i);
    write(dir_ / "txt" / name, docs_[i]);
  }
  const std::string j = jsonl();
  write(dir_ / "j" / "c.jsonl", j);
  {
    gzFile g = gzopen((dir_ / "c.jsonl.gz").c_str(), "wb");
    ASSERT_TRUE(g);
    ASSERT_EQ(gzwrite(g, j.data(), static_cast<unsigned>(j.size())), static_cast<int>(j.size()));
    gzclose(g);
  }
  std::string z(ZSTD_compressBound(j.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), j.data(), j.size(), 3));
  write(dir_ / "c.jsonl.zst", z);

  PrepOptions base = options({(dir_ / "txt").string()}, "txt.h5");
  base.train_tokenizer_vocab = 300;  // a BPE trained on the text; every other prep uses it
  const PrepSummary s = prep(base);
  ASSERT_EQ(s.documents, 30);
  EXPECT_EQ(s.val_documents, 3);
  const auto want = ids(base.output);
  for (const std::string in : {"j/c.jsonl", "c.jsonl.gz", "c.jsonl.zst"}) {
    SCOPED_TRACE(in);
    PrepOptions o = options({(dir_ / in).string()}, in + ".h5");
    o.tokenizer = "bpe:" + s.tokenizer_path;
    EXPECT_EQ(prep(o).documents, 30);
    const auto got = ids(o.output);
    EXPECT_EQ(got.first, want.first);
    EXPECT_EQ(got.second, want.second);
  }
}

TEST_F(PrepScale, ThreadCountDoesNotChangeTheIds) {
  write(dir_ / "c.jsonl", jsonl());
  PrepOptions one = options({(dir_ / "c.jsonl").string()}, "one.h5");
  one.threads = 1;
  PrepOptions three = options({(dir_ / "c.jsonl").string()}, "three.h5");
  three.threads = 3;
  prep(one);
  prep(three);
  EXPECT_EQ(ids(one.output), ids(three.output));
}

// One long document is cut into ~1 MB pieces for several threads, only where the pre-split
// ends a piece anyway: the ids equal one thread's, for a BPE and for bytes.
TEST_F(PrepScale, LongDocumentCutForThreadsKeepsTheIds) {
  std::string text;
  uint32_t lcg = 7;
  const char* words[] = {"the", "  LORD", "said,", "don't", "we'll", "42", "3.14", "\n\n", "\t", " ü", "語語", "!!", "it's"};
  while (text.size() < (5u << 20) / 2) {
    lcg = lcg * 1664525u + 1013904223u;
    text += words[(lcg >> 24) % 13];
    text += (lcg >> 16) % 5 ? " " : "   ";
  }
  write(dir_ / "long.txt", text);
  PrepOptions one = options({(dir_ / "long.txt").string()}, "long1.h5");
  one.threads = 1;
  one.train_tokenizer_vocab = 400;
  const PrepSummary s = prep(one);
  PrepOptions three = options({(dir_ / "long.txt").string()}, "long3.h5");
  three.threads = 3;
  three.tokenizer = "bpe:" + s.tokenizer_path;
  prep(three);
  EXPECT_EQ(ids(one.output), ids(three.output));
  PrepOptions b1 = options({(dir_ / "long.txt").string()}, "b1.h5"), b3 = b1;
  b1.threads = 1;
  b3.output = (dir_ / "b3.h5").string();
  b3.threads = 3;
  prep(b1);
  prep(b3);
  EXPECT_EQ(ids(b1.output), ids(b3.output));
}

// Hugging Face tokenizers: each document is the template's prefix (Llama 3's BOS), the
// tokenizer's ids and the eos; a long document cut for threads keeps its ids (Llama 3's and
// Qwen2's regexes, NFC) and is not cut where cutting is unsafe (SentencePiece: Mistral).
TEST_F(PrepScale, HfTokenizersTemplateEosAndThreads) {
  std::string text;
  uint32_t lcg = 11;
  const char* words[] = {"the", "  LORD", "said,", "DON'T", "we'Ll", "123456", "3.14", "\n\n", "\t", " ü", "語語", "!!", "e\xCC\x81"};
  while (text.size() < (3u << 20) / 2) {
    lcg = lcg * 1664525u + 1013904223u;
    text += words[(lcg >> 24) % 13];
    text += (lcg >> 16) % 5 ? " " : "   ";
  }
  write(dir_ / "long.txt", text);
  write(dir_ / "short.txt", "Hello, world!");
  const fs::path fixtures = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers";
  for (const char* family : {"llama3", "qwen2", "mistral"}) {
    const std::string spec = "hf:" + (fixtures / (std::string(family) + ".json")).string();
    const auto tok = make_tokenizer(spec);
    PrepOptions one = options({(dir_ / "long.txt").string()}, std::string(family) + "1.h5"), three = one;
    one.tokenizer = three.tokenizer = spec;
    one.threads = 1;
    one.val_fraction = three.val_fraction = 0;
    three.output = (dir_ / (std::string(family) + "3.h5")).string();
    three.threads = 3;
    prep(one);
    prep(three);
    EXPECT_EQ(ids(one.output), ids(three.output)) << family;
    PrepOptions s = options({(dir_ / "short.txt").string()}, std::string(family) + "s.h5");
    s.tokenizer = spec;
    s.val_fraction = 0;
    prep(s);
    std::vector<int64_t> want = tok->encode_with_template("Hello, world!");
    want.push_back(tok->eos_id());
    EXPECT_EQ(ids(s.output).first, want) << family;
    EXPECT_EQ(tok->prefix_ids().empty(), std::string(family) == "qwen2") << family;  // Qwen2 has no BOS
    if (!tok->prefix_ids().empty()) {
      EXPECT_EQ(want.front(), tok->prefix_ids()[0]) << family;
    }
  }
}

TEST_F(PrepScale, GlobsAndManyInputs) {
  const std::string j = jsonl();
  write(dir_ / "shards" / "a.jsonl", j);
  write(dir_ / "shards" / "b.jsonl", j);
  write(dir_ / "shards" / "skip.txt", "not matched");
  write(dir_ / "extra.txt", "one more document");
  PrepOptions o = options({(dir_ / "shards" / "*.jsonl").string(), (dir_ / "extra.txt").string()}, "g.h5");
  EXPECT_EQ(prep(o).documents, 61);
  PrepOptions none = options({(dir_ / "shards" / "*.parquet").string()}, "n.h5");
  try {
    prep(none);
    FAIL() << "a pattern matching nothing was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matches no file"), std::string::npos) << e.what();
  }
}

TEST_F(PrepScale, ValidationFractionHoldsWithFewDocuments) {
  // Three documents at 0.05: one whole document would be a third of the data; the last 5% of
  // the text goes to validation instead.
  for (int i = 0; i < 3; ++i) write(dir_ / "few" / ("d" + std::to_string(i)), std::string(1000, static_cast<char>('a' + i)));
  PrepOptions o = options({(dir_ / "few").string()}, "few.h5");
  o.val_fraction = 0.05;
  const PrepSummary s = prep(o);
  const double share = static_cast<double>(s.val_tokens) / static_cast<double>(s.train_tokens + s.val_tokens);
  EXPECT_NEAR(share, 0.05, 0.002) << s.val_tokens << " val tokens";
  // Enough documents: whole documents, round(fraction * documents) of them.
  for (int i = 0; i < 40; ++i) {
    char name[16], text[32];
    std::snprintf(name, sizeof name, "d%d", 100 + i);
    std::snprintf(text, sizeof text, "document %d", i);
    write(dir_ / "many" / name, text);
  }
  PrepOptions m = options({(dir_ / "many").string()}, "many.h5");
  m.val_fraction = 0.05;
  const PrepSummary t = prep(m);
  EXPECT_EQ(t.val_documents, 2);
  EXPECT_EQ(t.train_documents, 38);
}

TEST_F(PrepScale, BinaryInputIsRefusedUnlessAllowed) {
  std::string bin(4096, '\0');
  for (size_t i = 0; i < bin.size(); i += 3) bin[i] = static_cast<char>(i * 7);
  write(dir_ / "in" / "a.txt", "plain text");
  write(dir_ / "in" / "model.bin", bin);
  PrepOptions o = options({(dir_ / "in").string()}, "b.h5");
  try {
    prep(o);
    FAIL() << "a binary file was tokenised";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.bin' looks binary (a NUL byte at offset 0)"), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-binary"), std::string::npos) << m;
  }
  o.allow_binary = true;
  EXPECT_EQ(prep(o).documents, 2);
}

TEST_F(PrepScale, JsonlErrorsNameFileLineAndField) {
  write(dir_ / "bad.jsonl", "{\"body\": \"ok\"}\n\n{\"text\": \"no body\"}\n");
  PrepOptions o = options({(dir_ / "bad.jsonl").string()}, "e.h5");
  try {
    prep(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:3: no field 'body' (set --text-field; this line has fields text)"),
              std::string::npos) << e.what();
  }
  write(dir_ / "bad2.jsonl", "{\"body\": 3}\n");
  o.inputs = {(dir_ / "bad2.jsonl").string()};
  try {
    prep(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad2.jsonl:1: field 'body' is number, not a string"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skein
