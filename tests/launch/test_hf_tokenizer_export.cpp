// test_hf_tokenizer_export.cpp — Hugging Face tokenizer.json files of every family through the
// HF folder helpers (launch/hf_export.h): a folder's tokenizer with its tokenizer_config.json
// eos, the identity match that convert checks, the checks' errors, and export writing an hf
// tokenizer.json back unchanged with its eos / BOS ids.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include "core/error.h"
#include "data/hf_tokenizer.h"
#include "launch/hf_export.h"

namespace skein {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const fs::path kFixtures = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tokenizers";

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

class HfFolderTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("skein_test_hf_folder_tok_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
    fs::copy_file(kFixtures / "llama3.json", dir_ / "model" / "tokenizer.json");
    std::ofstream(dir_ / "model" / "tokenizer_config.json") << R"({"eos_token": "<|eot_id|>"})";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(HfFolderTokenizer, LoadsAnyFamilyWithTheConfigsEos) {
  const auto tok = load_hf_folder_tokenizer((dir_ / "model").string());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->kind(), "hf");
  EXPECT_EQ(tok->decode({tok->eos_id()}), "");  // special tokens decode to ""
  const auto hf = HfTokenizer::load((dir_ / "model" / "tokenizer.json").string());
  EXPECT_EQ(hf->eos_id(), *hf->token_id("<|eot_id|>"));
  EXPECT_FALSE(load_hf_folder_tokenizer(dir_.string()));  // no tokenizer.json
}

TEST_F(HfFolderTokenizer, IdentityMatchAndConvertChecks) {
  const auto tok = load_hf_folder_tokenizer((dir_ / "model").string());
  // The same tokenizer.json prepped from elsewhere (another eos choice) matches; Qwen2 does not.
  const std::string same = HfTokenizer::load((kFixtures / "llama3.json").string())->identity();
  const std::string other = HfTokenizer::load((kFixtures / "qwen2.json").string())->identity();
  EXPECT_TRUE(tokenizer_matches_identity(*tok, same));
  EXPECT_FALSE(tokenizer_matches_identity(*tok, other));
  EXPECT_FALSE(tokenizer_matches_identity(*tok, "bytes"));
  const std::string model = (dir_ / "model").string();
  EXPECT_NO_THROW(check_hf_folder_tokenizer(model, tok->vocab_size(), same));
  EXPECT_NO_THROW(check_hf_folder_tokenizer(model, tok->vocab_size(), ""));
  EXPECT_THROW(check_hf_folder_tokenizer(model, tok->vocab_size() - 1, ""), Error);
  try {
    check_hf_folder_tokenizer(model, tok->vocab_size(), other);
    ADD_FAILURE() << "no error for another tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tokenizer hf:"), std::string::npos) << e.what();
  }
}

TEST_F(HfFolderTokenizer, ExportWritesTheTokenizerJsonBack) {
  const auto tok = HfTokenizer::load((dir_ / "model" / "tokenizer.json").string());
  fs::create_directories(dir_ / "out");
  json config;
  write_hf_tokenizer((dir_ / "out").string(), tok->identity(), 4096, config);
  EXPECT_EQ(read(dir_ / "out" / "tokenizer.json"), read(kFixtures / "llama3.json"));
  const json cfg = json::parse(read(dir_ / "out" / "tokenizer_config.json"));
  EXPECT_EQ(cfg["eos_token"], "<|eot_id|>");
  EXPECT_EQ(cfg["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(config["eos_token_id"], tok->eos_id());
  EXPECT_EQ(config["bos_token_id"], tok->prefix_ids().at(0));
  // Read back, it is the same tokenizer with the same eos.
  const auto again = load_hf_folder_tokenizer((dir_ / "out").string());
  EXPECT_EQ(again->identity(), tok->identity());
}

}  // namespace
}  // namespace skein
