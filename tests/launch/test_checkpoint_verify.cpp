// test_checkpoint_verify.cpp — damaged checkpoints are refused, naming the file and what failed:
// one flipped byte in a weight, in optimizer state, in a counter; a truncated file; a NaN
// written by a writer without checks; and saving (the path of `skein convert`) refuses
// non-finite weights. Before checksums, each of these loaded silently.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include "core/ops.h"
#include "launch/checkpoint.h"
#include "launch/checkpoint_verify.h"
#include "launch/hf_llama.h"
#include "data/safetensors.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

constexpr int64_t kCounterMark = 0x1234567890ABCDLL;  // a byte pattern found once in the file

struct TempRoot {
  std::string path;
  explicit TempRoot(const std::string& name)
      : path((fs::temp_directory_path() / ("skein_verify_" + name + "_" + std::to_string(::getpid()))).string()) {
    fs::remove_all(path);
  }
  ~TempRoot() { fs::remove_all(path); }
};

CheckpointState sample_state(int64_t step) {
  CheckpointState st;
  st.step = step;
  st.model["blocks.0.mixer.q_proj.weight"] = randn({8, 8}, 1);
  st.model["norm.weight"] = randn({8}, 2, DType::f64);
  st.optimizer["exp_avg.norm.weight"] = randn({8}, 3);
  st.optimizer["step"] = full({}, 7, DType::i64);
  st.counters["data.position"] = kCounterMark;
  st.counters["data.epoch"] = 2;
  st.config_yaml = "model:\n  d_model: 8\n";
  return st;
}

// The byte offset in `file` of dataset `path`'s raw data (contiguous layout).
int64_t data_offset(const std::string& file, const std::string& path) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  EXPECT_NE(off, HADDR_UNDEF) << path;
  return static_cast<int64_t>(off);
}

void flip_byte(const std::string& file, int64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(offset);
  f.write(&c, 1);
}

int64_t find_bytes(const std::string& file, const void* pattern, size_t n) {
  std::ifstream f(file, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t at = all.find(std::string(static_cast<const char*>(pattern), n));
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(all.find(std::string(static_cast<const char*>(pattern), n), at + 1), std::string::npos) << "not unique";
  return static_cast<int64_t>(at);
}

// load_checkpoint(dir) throws CorruptCheckpoint whose message holds every one of `want`.
void expect_corrupt(const std::string& dir, const std::vector<std::string>& want) {
  try {
    load_checkpoint(dir);
    FAIL() << "a damaged checkpoint loaded";
  } catch (const CorruptCheckpoint& e) {
    for (const auto& w : want) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

TEST(CheckpointVerify, FlippedByteInEachKindOfDatasetIsFound) {
  struct Case {
    std::string dataset;  // "" : the counters (attributes)
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {"model/blocks.0.mixer.q_proj.weight", {"model/blocks.0.mixer.q_proj.weight", "checksum", "state.h5"}},
      {"model/norm.weight", {"model/norm.weight", "checksum"}},
      {"optimizer/exp_avg.norm.weight", {"optimizer/exp_avg.norm.weight", "checksum"}},
      {"optimizer/step", {"optimizer/step", "checksum"}},
      {"", {"counters", "checksum", "state.h5"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dataset.empty() ? "counters" : c.dataset);
    TempRoot root("flip");
    const std::string dir = save_checkpoint(root.path, sample_state(10));
    const std::string file = dir + "/state.h5";
    ASSERT_NO_THROW(load_checkpoint(dir));
    const int64_t at = c.dataset.empty() ? find_bytes(file, &kCounterMark, sizeof kCounterMark)
                                         : data_offset(file, c.dataset) + 1;
    flip_byte(file, at);
    expect_corrupt(dir, c.want);
  }
}

TEST(CheckpointVerify, TruncatedFileIsCorrupt) {
  TempRoot root("trunc");
  const std::string dir = save_checkpoint(root.path, sample_state(10));
  fs::resize_file(dir + "/state.h5", fs::file_size(dir + "/state.h5") / 2);
  expect_corrupt(dir, {"state.h5"});
}

TEST(CheckpointVerify, NonFiniteWeightsAreRefusedOnSaveAndLoad) {
  TempRoot root("nan");
  CheckpointState st = sample_state(10);
  st.model["norm.weight"].data<double>()[3] = std::numeric_limits<double>::quiet_NaN();
  try {
    save_checkpoint(root.path, st);
    FAIL() << "saved a NaN weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model tensor 'norm.weight' [8] holds nan at element 3"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(latest_checkpoint(root.path).empty());
  // A file written without checks (another writer): an infinity in optimizer state, checksum
  // removed, is still refused on load.
  const std::string dir = save_checkpoint(root.path, sample_state(20));
  const std::string file = dir + "/state.h5";
  {
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "optimizer/exp_avg.norm.weight", H5P_DEFAULT);
    std::vector<float> v(8, 1.0f);
    v[5] = std::numeric_limits<float>::infinity();
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
    ASSERT_GE(H5Adelete(d, "crc32c"), 0);
    H5Dclose(d);
    H5Fclose(f);
  }
  expect_corrupt(dir, {"optimizer tensor 'exp_avg.norm.weight'", "inf at element 5"});
}

// `skein convert --from hf` of a damaged safetensors file (a NaN weight) stops naming the tensor
// instead of writing a checkpoint that trains or evaluates to nan.
TEST(CheckpointVerify, ConvertRefusesNonFiniteWeights) {
  const fs::path fixture = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tiny_llama";
  TempRoot root("convert");
  fs::create_directories(root.path + "/hf");
  fs::copy_file(fixture / "config.json", root.path + "/hf/config.json");
  TensorMap t = load_safetensors((fixture / "model.safetensors").string());
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  ASSERT_TRUE(t.count(name));
  Tensor w = t.at(name).contiguous();
  w.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  t[name] = w;
  save_safetensors(root.path + "/hf/model.safetensors", t);
  try {
    convert_hf_to_checkpoint(root.path + "/hf", root.path + "/ckpt", {});
    FAIL() << "converted a NaN weight";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("mlp.w"), std::string::npos) << m;  // the tensor, by its skein name
    EXPECT_NE(m.find("holds nan at element 5"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(root.path + "/ckpt"));
  // A flipped exponent bit: finite but absurd (3.4e38), refused the same way.
  uint32_t bits = 0;
  std::memcpy(&bits, &w.data<float>()[4], 4);
  bits |= 0x7e000000u;
  w.data<float>()[5] = 0.5f;
  std::memcpy(&w.data<float>()[4], &bits, 4);
  t[name] = w;
  save_safetensors(root.path + "/hf/model.safetensors", t);
  try {
    convert_hf_to_checkpoint(root.path + "/hf", root.path + "/ckpt", {});
    FAIL() << "converted a weight of " << w.data<float>()[4];
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at element 4 (beyond 1e+20)"), std::string::npos) << e.what();
  }
}

TEST(CheckpointVerify, FirstNonFinite) {
  Tensor t = zeros({5});
  EXPECT_EQ(first_non_finite(t), -1);
  t.data<float>()[4] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_non_finite(t), 4);
  EXPECT_EQ(first_non_finite(full({3}, 1, DType::i64)), -1);
  Tensor big = zeros({3});
  big.data<float>()[1] = 3e30f;
  EXPECT_EQ(first_non_finite(big), -1);
  EXPECT_EQ(first_non_finite(big, kMaxWeight), 1);
}

}  // namespace
}  // namespace skein
