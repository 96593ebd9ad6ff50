// test_safetensors.cpp — safetensors: write/read round trip, F16/BF16 widening, the files
// transformers wrote (tests/fixtures/tiny_llama), sharded folders, one clear error per kind of
// malformed file, and a fuzz test (random mutations of a valid file load or throw skein::Error).
#include <gtest/gtest.h>
#include <unistd.h>
#include <bit>
#include <chrono>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include "core/ops.h"
#include "data/safetensors.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

const fs::path kFixture = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tiny_llama";

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_st_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// A file from its parts: the 8-byte little-endian header length, the header, the data.
std::string raw_file(const std::string& header, const std::string& data) {
  const uint64_t n = header.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

std::string bytes_of(const std::vector<uint16_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 2);
}

std::string bytes_of(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

void expect_same(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  EXPECT_EQ(a.to_vector(), b.to_vector()) << name;
}

// The error of parsing `bytes` (as file "bad.safetensors"); "" when it parses.
std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& bytes, const std::vector<std::string>& parts) {
  const std::string msg = error_of(bytes);
  ASSERT_FALSE(msg.empty()) << "parsed without error";
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(Safetensors, RoundTripEveryDtype) {
  const std::string dir = temp_dir("roundtrip");
  TensorMap t;
  t["a.weight"] = randn({3, 5}, 1);
  t["b"] = randn({2, 2, 2}, 2, DType::f64);
  t["ids"] = from_vector({-3, 0, 1LL << 40}, {3}, DType::i64);
  t["small_ids"] = from_vector({7, -8}, {2}, DType::i32);
  t["scalar"] = full({}, 2.5);
  t["empty"] = zeros({0, 4});
  t["view"] = randn({4, 6}, 3).transpose(0, 1);  // written as its contiguous copy
  const std::string path = dir + "/x.safetensors";
  save_safetensors(path, t, {{"format", "pt"}});
  StringMap meta;
  TensorMap back = load_safetensors(path, &meta);
  EXPECT_EQ(meta, (StringMap{{"format", "pt"}}));
  ASSERT_EQ(back.size(), t.size());
  for (auto& [k, v] : t) expect_same(back.at(k), v.contiguous(), k);
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);  // data 8-byte aligned
  fs::remove_all(dir);
}

TEST(Safetensors, WidensF16AndBf16) {
  // f16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf; bf16: 1, -3.5, 2^-128 (subnormal)
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC060, 0x0020};
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[12,18]}})";
  TensorMap t = parse_safetensors(raw_file(header, bytes_of(f16) + bytes_of(bf16)), "mem");
  ASSERT_EQ(t.at("h").dtype(), DType::f32);
  EXPECT_EQ(t.at("h").shape(), (Shape{2, 3}));
  const std::vector<double> h = t.at("h").to_vector();
  EXPECT_EQ(h[0], 1.0);
  EXPECT_EQ(h[1], -2.0);
  EXPECT_EQ(h[2], 65504.0);
  EXPECT_EQ(h[3], std::ldexp(1.0, -24));
  EXPECT_TRUE(h[4] == 0.0 && std::signbit(h[4]));
  EXPECT_TRUE(std::isinf(h[5]) && h[5] > 0);
  EXPECT_EQ(t.at("b").to_vector(), (std::vector<double>{1.0, -3.5, std::ldexp(1.0, -128)}));
}

TEST(Safetensors, ReadsTransformersFiles) {
  StringMap meta;
  TensorMap f32 = load_safetensors((kFixture / "model.safetensors").string(), &meta);
  EXPECT_EQ(meta.at("format"), "pt");
  EXPECT_EQ(f32.size(), 21u);  // embed, lm_head, final norm, 9 per layer
  EXPECT_EQ(f32.at("model.layers.1.self_attn.k_proj.weight").shape(), (Shape{16, 32}));
  EXPECT_EQ(f32.at("lm_head.weight").shape(), (Shape{96, 32}));
  // The bf16 copy holds each f32 weight rounded to nearest-even bf16.
  TensorMap bf16 = load_safetensors((kFixture / "bf16" / "model.safetensors").string());
  ASSERT_EQ(bf16.size(), f32.size());
  for (auto& [name, t] : f32) {
    const std::vector<double> a = t.to_vector(), b = bf16.at(name).to_vector();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t i = 0; i < a.size(); ++i) {
      const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(a[i]));
      const uint32_t rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
      ASSERT_EQ(static_cast<float>(b[i]), std::bit_cast<float>(rounded)) << name << "[" << i << "]";
    }
  }
}

TEST(Safetensors, ShardedFolderEqualsSingleFile) {
  TensorMap single = load_safetensors_folder(kFixture.string());
  TensorMap sharded = load_safetensors_folder((kFixture / "sharded").string());
  ASSERT_EQ(sharded.size(), single.size());
  for (auto& [k, v] : single) expect_same(sharded.at(k), v, k);
}

TEST(Safetensors, WritesShardedFolders) {
  const std::string dir = temp_dir("shards");
  TensorMap t;
  for (int i = 0; i < 5; ++i)  // 400 bytes each
    t[std::string(1, static_cast<char>('a' + i))] = randn({10, 10}, static_cast<uint64_t>(i));
  auto files = save_safetensors_folder(dir + "/one", t, 2000);
  EXPECT_EQ(files, (std::vector<std::string>{"model.safetensors"}));
  files = save_safetensors_folder(dir + "/three", t, 900);  // 2 + 2 + 1 tensors
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                             "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  EXPECT_EQ(load_safetensors(dir + "/three/model-00003-of-00003.safetensors").size(), 1u);
  for (const char* sub : {"/one", "/three"}) {
    TensorMap back = load_safetensors_folder(dir + sub);
    ASSERT_EQ(back.size(), t.size());
    for (auto& [k, v] : t) expect_same(back.at(k), v, k);
  }
  fs::remove_all(dir);
}

TEST(Safetensors, FolderErrors) {
  const std::string dir = temp_dir("folder_errors");
  auto expect_folder_error = [&](const std::string& index, const std::string& part) {
    std::ofstream(dir + "/model.safetensors.index.json") << index;
    try {
      load_safetensors_folder(dir);
      ADD_FAILURE() << "no error for " << index;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  try {
    load_safetensors_folder(dir);
    ADD_FAILURE() << "no error for an empty folder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither model.safetensors"), std::string::npos) << e.what();
  }
  save_safetensors(dir + "/a.safetensors", {{"x", zeros({2})}, {"y", zeros({2})}});
  expect_folder_error(R"({"weight_map": {"x": "a.safetensors"}})", "'y' of a.safetensors is not listed");
  expect_folder_error(R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "a.safetensors"}})",
                      "'z' is listed in a.safetensors but is not there");
  expect_folder_error(R"({"weight_map": {"x": "b.safetensors"}})", "shard b.safetensors (of 'x') does not exist");
  expect_folder_error(R"({"weight_map": {"x": "../a.safetensors"}})", "is not a file name in the folder");
  expect_folder_error(R"({"metadata": {}})", "needs a \"weight_map\"");
  expect_folder_error(R"({"weight_map": {"x": "a.safetensors", "x": "a.safetensors"}})", "repeats the key 'x'");
  fs::remove_all(dir);
}

TEST(Safetensors, MalformedFilesAreClearErrors) {
  const std::string data = bytes_of(std::vector<float>{1, 2, 3, 4});
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  ASSERT_EQ(error_of(raw_file(good, data)), "");
  expect_error("abc", {"3 bytes, fewer than the 8"});
  std::string huge = raw_file(good, data);
  huge[7] = 0x10;  // header length ~2^60
  expect_error(huge, {"header length", "exceeds the limit"});
  expect_error(raw_file(good, data).substr(0, 8 + good.size() - 5), {"header length", "runs past the end of the file"});
  expect_error(raw_file(good.substr(0, good.size() - 3), data), {"header is not valid JSON"});
  expect_error(raw_file("[1,2]", ""), {"header must be a JSON object"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", data),
               {"tensor 'b'", "run past the end of the data (16 bytes)"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data),
               {"tensor 'b'", "overlap tensor 'a'"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})", data),
               {"tensor 'b'", "a gap of 4 bytes"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
               {"cover 8 bytes of the data but it has 16"});
  expect_error(raw_file(R"({"a":{"dtype":"F31","shape":[4],"data_offsets":[0,16]}})", data),
               {"tensor 'a'", "unknown dtype 'F31'"});
  expect_error(raw_file(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})", data),
               {"tensor 'a'", "dtype U8 is not supported"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data),
               {"tensor 'a'", "shape [3] of dtype F32 needs 3 x 4 bytes", "hold 16"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data),
               {"tensor 'a'", "shape must hold non-negative integers"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", data),
               {"tensor 'a'", "overflows"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})", data),
               {"tensor 'a'", "end before they begin"});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[4]}})", data), {"tensor 'a'", "missing \"data_offsets\""});
  expect_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data),
               {"repeats the key 'a'"});
  expect_error(raw_file(R"({"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data),
               {"__metadata__ 'format' must be a string"});
}

// Random byte edits of a valid file (mostly in the header, where they matter), truncations and
// insertions: each must load or throw skein::Error, never crash or throw anything else.
TEST(Safetensors, FuzzedFilesLoadOrThrow) {
  const std::vector<uint16_t> halfs = {0x3C00, 0x7C00, 0x0001, 0xFFFF};
  const std::string header = R"({"__metadata__":{"format":"pt"},)"
                             R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("h":{"dtype":"F16","shape":[4],"data_offsets":[16,24]},)"
                             R"("b":{"dtype":"BF16","shape":[2,1,2],"data_offsets":[24,32]},)"
                             R"("e":{"dtype":"F64","shape":[0],"data_offsets":[32,32]}})";
  const std::string valid = raw_file(header, bytes_of(std::vector<float>{1, 2, 3, 4}) + bytes_of(halfs) + bytes_of(halfs));
  ASSERT_EQ(parse_safetensors(valid, "fuzz").size(), 4u);
  std::mt19937_64 rng(42);
  const auto t0 = std::chrono::steady_clock::now();
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const size_t limit = rng() % 5 ? 8 + header.size() : bytes.size();  // 80% in the length + header
      const size_t pos = rng() % std::max<size_t>(1, std::min(limit, bytes.size()));
      switch (rng() % 5) {
        case 0: bytes.resize(pos); break;
        case 1: bytes.insert(pos, 1, static_cast<char>(rng())); break;
        case 2: if (pos < bytes.size()) bytes[pos] = static_cast<char>("0123456789[]{},:\"-e."[rng() % 20]); break;
        default: if (pos < bytes.size()) bytes[pos] = static_cast<char>(bytes[pos] ^ (1 << (rng() % 8))); break;
      }
    }
    try {
      parse_safetensors(bytes, "fuzz");
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(loaded, 0);
  EXPECT_LT(seconds, 2.0);
}

}  // namespace
}  // namespace skein

namespace skein {
namespace {

// SafetensorsRead{keep_bf16}: BF16 tensors arrive as bf16 tensors holding the file's bits
// (transformers rounded them from the f32 weights; skein's Tensor::to rounds the same), and
// bf16 tensors are written as BF16.
TEST(Safetensors, KeepsBf16WhenAsked) {
  const std::string file = (kFixture / "bf16" / "model.safetensors").string();
  TensorMap widened = load_safetensors(file);
  TensorMap kept = load_safetensors(file, nullptr, SafetensorsRead{true});
  TensorMap f32 = load_safetensors((kFixture / "model.safetensors").string());
  ASSERT_EQ(kept.size(), widened.size());
  for (auto& [name, t] : kept) {
    ASSERT_EQ(t.dtype(), DType::bf16) << name;
    EXPECT_EQ(t.to_vector(), widened.at(name).to_vector()) << name;
    Tensor mine = f32.at(name).to(DType::bf16);
    ASSERT_EQ(std::memcmp(mine.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()) * 2), 0) << name;
  }
  TensorMap folder = load_safetensors_folder((kFixture / "bf16").string(), SafetensorsRead{true});
  EXPECT_EQ(folder.begin()->second.dtype(), DType::bf16);
  const std::string out = (fs::temp_directory_path() / ("skein_bf16_" + std::to_string(::getpid()) + ".safetensors")).string();
  save_safetensors(out, kept);
  TensorMap again = load_safetensors(out, nullptr, SafetensorsRead{true});
  for (auto& [name, t] : kept) {
    ASSERT_EQ(again.at(name).dtype(), DType::bf16);
    ASSERT_EQ(std::memcmp(again.at(name).raw_data(), t.raw_data(), static_cast<size_t>(t.numel()) * 2), 0) << name;
  }
  fs::remove(out);
}

}  // namespace
}  // namespace skein
