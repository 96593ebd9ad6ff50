// test_prep.cpp — prep end to end: text files -> HDF5 -> Loader gives back the same ids with
// documents separated by eos; folder expansion order, empty documents, separators, stdin,
// the deterministic train/val split (by document, and by tokens for a single document),
// progress lines, a trained BPE saved next to the output, and input errors.
#include <gtest/gtest.h>
#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include "data/loader.h"
#include "data/prep.h"
#include "data/tokenizer.h"

namespace skein {
namespace {
namespace fs = std::filesystem;

class PrepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("skein_test_prep_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "corpus" / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  PrepOptions options(std::vector<std::string> inputs) {
    PrepOptions o;
    o.inputs = std::move(inputs);
    o.output = (dir_ / "out" / "corpus.h5").string();
    o.progress = false;
    return o;
  }
  // The documents of a split, decoded (eos stripped, checked to end each document).
  static std::vector<std::string> documents(const TokenFile& tf, const std::string& split, const Tokenizer& tok) {
    const TokenSplit& s = tf.split(split);
    std::vector<int64_t> all = s.read(0, s.size());
    std::vector<std::string> docs;
    for (int64_t d = 0; d < s.num_documents(); ++d) {
      int64_t lo = s.doc_offsets()[static_cast<size_t>(d)];
      int64_t hi = d + 1 < s.num_documents() ? s.doc_offsets()[static_cast<size_t>(d + 1)] : s.size();
      EXPECT_EQ(all[static_cast<size_t>(hi - 1)], tok.eos_id()) << "document " << d << " ends with eos";
      docs.push_back(tok.decode(std::vector<int64_t>(all.begin() + lo, all.begin() + hi - 1)));
    }
    return docs;
  }
  fs::path dir_;
};

TEST_F(PrepTest, TextToHdf5ToLoaderRoundTrip) {
  write("corpus/b.txt", "world!\n");
  write("corpus/a.txt", "Hello, ");
  write("corpus/sub/c.txt", "caf\xc3\xa9 \xe2\x82\xac");  // UTF-8
  write("corpus/empty.txt", "");
  PrepOptions o = options({(dir_ / "corpus").string()});
  o.val_fraction = 0;
  PrepSummary s = prep(o);
  EXPECT_EQ(s.documents, 3);
  EXPECT_EQ(s.skipped_empty, 1);
  EXPECT_EQ(s.val_tokens, 0);
  // Sorted by path: a.txt, b.txt, empty.txt (skipped), sub/c.txt; each followed by eos.
  ByteTokenizer bytes;
  std::vector<int64_t> expect;
  for (const char* text : {"Hello, ", "world!\n", "caf\xc3\xa9 \xe2\x82\xac"}) {
    for (unsigned char c : std::string(text)) expect.push_back(c);
    expect.push_back(bytes.eos_id());
  }
  EXPECT_EQ(s.train_tokens, static_cast<int64_t>(expect.size()));
  TokenFile tf = TokenFile::open(o.output);
  EXPECT_EQ(tf.tokenizer_identity(), "bytes");
  EXPECT_EQ(tf.vocab_size(), 257);
  EXPECT_EQ(tf.eos_id(), 256);
  EXPECT_EQ(tf.split("train").doc_offsets(), (std::vector<int64_t>{0, 8, 16}));
  // Through the Loader, unshuffled: consecutive windows reproduce the token stream.
  const int64_t T = 4;
  Loader l(tf, "train", T, 2, 0, 1, 0, false);
  std::vector<int64_t> got;
  for (int64_t k = 0; k < l.num_windows() / 2; ++k) {
    Batch b = l.next();
    std::vector<double> in = b.inputs.to_vector(), tg = b.targets.to_vector();
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t t = 0; t < T; ++t) {
        got.push_back(static_cast<int64_t>(in[static_cast<size_t>(r * T + t)]));
        EXPECT_EQ(tg[static_cast<size_t>(r * T + t)], expect[got.size()]);
      }
  }
  ASSERT_GE(got.size(), 24u);
  EXPECT_EQ(got, std::vector<int64_t>(expect.begin(), expect.begin() + static_cast<int64_t>(got.size())));
}

TEST_F(PrepTest, SplitByDocumentIsDeterministicAndComplete) {
  std::set<std::string> texts;
  for (int i = 0; i < 20; ++i) {
    std::string t = "document number " + std::to_string(i) + std::string(static_cast<size_t>(i), '.');
    write("corpus/d" + std::to_string(100 + i) + ".txt", t);
    texts.insert(t);
  }
  PrepOptions o = options({(dir_ / "corpus").string()});
  o.val_fraction = 0.1;
  PrepSummary s = prep(o);
  EXPECT_EQ(s.val_documents, 2);
  EXPECT_EQ(s.train_documents, 18);
  ByteTokenizer tok;
  TokenFile tf = TokenFile::open(o.output);
  std::vector<std::string> train = documents(tf, "train", tok), val = documents(tf, "val", tok);
  std::set<std::string> all(train.begin(), train.end());
  all.insert(val.begin(), val.end());
  EXPECT_EQ(all, texts) << "every document in exactly one split";
  EXPECT_EQ(train.size() + val.size(), 20u);
  EXPECT_EQ(s.train_tokens + s.val_tokens, tf.split("train").size() + tf.split("val").size());

  // Same seed: same split; another seed: (here) another one.
  PrepSummary again = prep(o);
  EXPECT_EQ(documents(TokenFile::open(o.output), "val", tok), val);
  EXPECT_EQ(again.val_tokens, s.val_tokens);
  o.seed = 99;
  prep(o);
  EXPECT_NE(documents(TokenFile::open(o.output), "val", tok), val);
}

TEST_F(PrepTest, SingleDocumentSplitsItsTokensAndSeparators) {
  std::string one = write("one.txt", std::string(99, 'x') + "y");  // 100 bytes + eos = 101 tokens
  PrepOptions o = options({one});
  o.val_fraction = 0.1;
  PrepSummary s = prep(o);
  EXPECT_EQ(s.train_tokens, 91);
  EXPECT_EQ(s.val_tokens, 10);  // the last round(0.1 * 101) tokens
  TokenFile tf = TokenFile::open(o.output);
  std::vector<int64_t> val = tf.split("val").read(0, 10);
  EXPECT_EQ(val.back(), 256);
  EXPECT_EQ(val[8], 'y');

  // A separator cuts a file into documents; empty pieces are skipped; stdin works as "-".
  const std::string sep = "\n=====\n";
  std::istringstream in("alpha" + sep + "beta" + sep + sep + "gamma");
  o = options({"-"});
  o.doc_separator = sep;
  o.val_fraction = 0;
  o.stdin_stream = &in;
  s = prep(o);
  EXPECT_EQ(s.documents, 3);
  EXPECT_EQ(s.skipped_empty, 1);
  ByteTokenizer tok;
  EXPECT_EQ(documents(TokenFile::open(o.output), "train", tok), (std::vector<std::string>{"alpha", "beta", "gamma"}));
}

TEST_F(PrepTest, ProgressLinesWhenNotATerminal) {
  for (int i = 0; i < 10; ++i) write("corpus/f" + std::to_string(i), std::string(100, 'a'));
  PrepOptions o = options({(dir_ / "corpus").string()});
  o.progress = true;
  testing::internal::CaptureStderr();
  prep(o);
  std::string err = testing::internal::GetCapturedStderr();
  if (isatty(fileno(stderr))) GTEST_SKIP() << "stderr is a terminal";
  EXPECT_NE(err.find("prep: 50%"), std::string::npos) << err;
  EXPECT_NE(err.find("prep: 100%"), std::string::npos) << err;
  EXPECT_NE(err.find("ETA"), std::string::npos) << err;
  EXPECT_NE(err.find("10/10 docs"), std::string::npos) << err;
  EXPECT_NE(err.find("docs/s"), std::string::npos) << err;
  EXPECT_NE(err.find("MB/s"), std::string::npos) << err;
}

TEST_F(PrepTest, TrainedBpeIsSavedAndRoundTrips) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  write("corpus/a.txt", text);
  write("corpus/b.txt", "the dog sleeps; the fox runs away.");
  PrepOptions o = options({(dir_ / "corpus").string()});
  o.train_tokenizer_vocab = 300;
  o.val_fraction = 0.5;
  PrepSummary s = prep(o);
  EXPECT_EQ(s.tokenizer_path, (dir_ / "out" / "tokenizer.json").string());
  ASSERT_TRUE(fs::exists(s.tokenizer_path));
  TokenFile tf = TokenFile::open(o.output);
  EXPECT_EQ(tf.tokenizer_kind(), "bpe");
  auto tok = tokenizer_from_identity(tf.tokenizer_identity());
  EXPECT_EQ(tok->vocab_size(), tf.vocab_size());
  EXPECT_EQ(make_tokenizer("bpe:" + s.tokenizer_path)->identity(), tf.tokenizer_identity());
  std::vector<std::string> train = documents(tf, "train", *tok), val = documents(tf, "val", *tok);
  ASSERT_EQ(train.size() + val.size(), 2u);
  std::set<std::string> got{train.front(), val.front()};
  EXPECT_EQ(got, (std::set<std::string>{text, "the dog sleeps; the fox runs away."}));
  EXPECT_LT(s.train_tokens + s.val_tokens, static_cast<int64_t>(text.size()) / 2) << "merges compress";
}

TEST_F(PrepTest, OutputInsideTheInputFolderIsNotReadBack) {
  write("corpus/a.txt", "some text");
  PrepOptions o = options({(dir_ / "corpus").string()});
  o.output = (dir_ / "corpus" / "out.h5").string();
  o.train_tokenizer_vocab = 260;  // also writes corpus/tokenizer.json
  PrepSummary first = prep(o);
  ASSERT_TRUE(fs::exists(dir_ / "corpus" / "tokenizer.json"));
  PrepSummary second = prep(o);
  EXPECT_EQ(second.documents, 1);
  EXPECT_EQ(second.bytes, first.bytes);
}

TEST_F(PrepTest, InputErrorsNameTheInput) {
  std::string missing = (dir_ / "nothing.txt").string();
  try {
    prep(options({missing}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  write("corpus/empty", "");
  EXPECT_THROW(prep(options({(dir_ / "corpus").string()})), Error);  // no non-empty document
  PrepOptions o = options({write("x.txt", "abc")});
  o.val_fraction = 1.0;
  EXPECT_THROW(prep(o), Error);
  EXPECT_FALSE(fs::exists(o.output));
}

}  // namespace
}  // namespace skein
