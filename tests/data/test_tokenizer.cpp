// test_tokenizer.cpp — the byte tokenizer (round trip, eos, id errors) and the factories
// make_tokenizer / tokenizer_from_identity.
#include <gtest/gtest.h>
#include <filesystem>
#include <unistd.h>
#include "core/error.h"
#include "data/bpe.h"
#include "data/tokenizer.h"

namespace skein {
namespace {

// fn() must throw an Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << parts.front();
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(ByteTokenizer, EncodesBytesAndRoundTrips) {
  const ByteTokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 257);
  EXPECT_EQ(tok.eos_id(), 256);
  EXPECT_EQ(tok.identity(), "bytes");
  EXPECT_EQ(tok.kind(), "bytes");
  EXPECT_EQ(tok.encode("h\xC3\xA9"), (std::vector<int64_t>{'h', 0xC3, 0xA9}));
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::vector<int64_t> ids = tok.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(tok.decode(ids), all);
  EXPECT_EQ(tok.decode({'a', 256, 'b', 256}), "ab");  // <|endoftext|> decodes to ""
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(ByteTokenizer, RejectsIdsOutsideVocab) {
  const ByteTokenizer tok;
  expect_error([&] { tok.decode({'a', 'b', 257}); }, {"id 257", "position 2", "[0, 257)"});
  expect_error([&] { tok.decode({-3}); }, {"id -3", "position 0"});
}

TEST(MakeTokenizer, Specs) {
  EXPECT_EQ(make_tokenizer("bytes")->kind(), "bytes");
  expect_error([] { make_tokenizer("gpt2"); }, {"unknown tokenizer spec 'gpt2'", "bpe:<path"});
  expect_error([] { make_tokenizer("bpe:"); }, {"names no file"});
  expect_error([] { make_tokenizer("bpe:/nonexistent/tokenizer.json"); }, {"/nonexistent/tokenizer.json"});
}

TEST(MakeTokenizer, BpeFromFileAndIdentity) {
  const BpeTokenizer bpe = train_bpe({"the cat sat on the mat; the cat ate the rat.\n"}, 280);
  const auto path = std::filesystem::temp_directory_path() /
                    ("skein_test_tokenizer_" + std::to_string(::getpid()) + ".json");
  bpe.save(path.string());
  const auto loaded = make_tokenizer("bpe:" + path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(loaded->kind(), "bpe");
  EXPECT_EQ(loaded->identity(), bpe.identity());
  EXPECT_EQ(loaded->vocab_size(), bpe.vocab_size());
  EXPECT_EQ(loaded->eos_id(), bpe.eos_id());
  const std::string text = "the rat sat on the cat";
  EXPECT_EQ(loaded->encode(text), bpe.encode(text));
  EXPECT_LT(loaded->encode(text).size(), text.size());

  const auto from_id = tokenizer_from_identity(bpe.identity());
  EXPECT_EQ(from_id->kind(), "bpe");
  EXPECT_EQ(from_id->encode(text), bpe.encode(text));
  EXPECT_EQ(from_id->decode(from_id->encode(text)), text);
  EXPECT_EQ(tokenizer_from_identity("bytes")->kind(), "bytes");
  expect_error([] { tokenizer_from_identity("sentencepiece"); }, {"'sentencepiece'", "neither"});
  expect_error([] { tokenizer_from_identity("{\"model\": {}}"); }, {"tokenizer identity", "pre_tokenizer is missing"});
}

}  // namespace
}  // namespace skein
