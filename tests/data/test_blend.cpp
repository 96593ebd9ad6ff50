// test_blend.cpp — the blended loader (data/blend.h): proportions within 1% of the weights over
// 10k windows, deterministic, resumed exactly from its cursor, the same stream split over dp
// ranks, and its errors; data.paths in the config.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include "configs/loader.h"
#include "core/error.h"
#include "data/blend.h"
#include "data/prep.h"

namespace skein {
namespace {
namespace fs = std::filesystem;

class Blend : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("skein_test_blend_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    uint32_t lcg = 12345;
    for (int k = 0; k < 3; ++k) {  // file k: letters 8k..8k+7 from 'a' only, so a window tells its source
      const std::string name(1, static_cast<char>('a' + k));
      std::string text;
      for (int i = 0; i < 800 + 300 * k; ++i) {
        lcg = lcg * 1664525u + 1013904223u;
        text += static_cast<char>('a' + 8 * k + static_cast<int>((lcg >> 24) % 8));
      }
      std::ofstream(dir_ / (name + ".txt")) << text;
      PrepOptions o;
      o.inputs = {(dir_ / (name + ".txt")).string()};
      o.output = (dir_ / (name + ".h5")).string();
      o.val_fraction = 0.2;
      o.progress = false;
      prep(o);
      files_.push_back(o.output);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<BlendSource> sources(std::vector<double> w) const {
    std::vector<BlendSource> s;
    for (size_t k = 0; k < w.size(); ++k) s.push_back({files_[k], w[k]});
    return s;
  }
  fs::path dir_;
  std::vector<std::string> files_;
};

std::vector<int64_t> ids(const Batch& b) {
  const int64_t* p = b.inputs.data<int64_t>();
  return std::vector<int64_t>(p, p + b.inputs.numel());
}

TEST_F(Blend, ProportionsHoldWithinOnePercentOver10kWindows) {
  const std::vector<double> w = {5, 3, 2};  // normalised: 0.5, 0.3, 0.2
  BlendedLoader l(sources(w), "train", 8, 100, 0, 1, 7, true);
  std::vector<int64_t> seen(3, 0);
  for (int b = 0; b < 100; ++b) {
    Batch batch = l.next();
    for (int64_t r = 0; r < 100; ++r) ++seen[static_cast<size_t>((batch.inputs.data<int64_t>()[r * 8] - 'a') / 8)];
  }
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(static_cast<double>(seen[k]) / 10000.0, w[k] / 10.0, 0.01) << "file " << k;
  // The rule keeps every prefix within one window of its share, not just the total.
  EXPECT_EQ(l.counts(), (std::vector<int64_t>{5000, 3000, 2000}));
  BlendedLoader m(sources(w), "train", 8, 1, 0, 1, 7, true);
  for (int i = 1; i <= 997; ++i) {
    m.next();
    for (int k = 0; k < 3; ++k) ASSERT_LE(std::abs(static_cast<double>(m.counts()[k]) - w[k] / 10.0 * i), 1.0) << i;
  }
}

TEST_F(Blend, DeterministicAndResumedExactly) {
  BlendedLoader a(sources({1, 1, 2}), "train", 8, 4, 0, 1, 3, true), b(sources({1, 1, 2}), "train", 8, 4, 0, 1, 3, true);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(ids(a.next()), ids(b.next())) << i;  // past several epochs of each file
  const Cursor c = a.cursor();
  EXPECT_EQ(c.position, 120);
  std::vector<std::vector<int64_t>> want;
  for (int i = 0; i < 10; ++i) want.push_back(ids(a.next()));
  BlendedLoader resumed(sources({1, 1, 2}), "train", 8, 4, 0, 1, 3, true);
  resumed.set_cursor(c);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ids(resumed.next()), want[static_cast<size_t>(i)]) << i;
  // Another seed: another order.
  BlendedLoader other(sources({1, 1, 2}), "train", 8, 4, 0, 1, 4, true);
  BlendedLoader first(sources({1, 1, 2}), "train", 8, 4, 0, 1, 3, true);
  bool differ = false;
  for (int i = 0; i < 10; ++i) differ = differ || ids(other.next()) != ids(first.next());
  EXPECT_TRUE(differ);
}

TEST_F(Blend, DataParallelRanksSplitTheSameStream) {
  BlendedLoader whole(sources({2, 1, 1}), "train", 8, 6, 0, 1, 5, true);
  BlendedLoader r0(sources({2, 1, 1}), "train", 8, 3, 0, 2, 5, true), r1(sources({2, 1, 1}), "train", 8, 3, 1, 2, 5, true);
  for (int i = 0; i < 8; ++i) {
    std::vector<int64_t> got = ids(r0.next()), tail = ids(r1.next());
    got.insert(got.end(), tail.begin(), tail.end());
    EXPECT_EQ(got, ids(whole.next())) << i;
  }
  EXPECT_EQ(r0.cursor(), whole.cursor());
}

TEST_F(Blend, Errors) {
  try {
    BlendedLoader l(sources({1, 0}), "train", 8, 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.paths[1].weight: 0"), std::string::npos) << e.what();
  }
  BlendedLoader l(sources({1, 1}), "train", 8, 2);
  EXPECT_THROW(l.set_cursor({3, 10}), Error);  // a single-file cursor
}

TEST_F(Blend, ConfigKey) {
  const Config c = parse_config("data:\n  paths: [{path: a.h5, weight: 0.7}, {path: 'b c.h5', weight: 3}]\n", "x.yaml");
  ASSERT_EQ(c.data.paths.size(), 2u);
  EXPECT_EQ(c.data.paths[1].path, "b c.h5");
  EXPECT_EQ(c.data.paths[1].weight, 3.0);
  EXPECT_EQ(parse_config(config_to_yaml(c), "round trip").data.paths, c.data.paths);
  Config o = load_config("", {"data.paths=[{path: x.h5, weight: 1}]"});
  EXPECT_EQ(o.data.paths.size(), 1u);
  auto err = [](const std::string& yaml) {
    try {
      parse_config(yaml, "x.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("data: {paths: [{path: a.h5, weight: -1}]}").find("data.paths: invalid value"), std::string::npos);
  EXPECT_NE(err("data: {paths: [{path: a.h5, weigth: 1}]}").find("data.paths[0]: unknown field 'weigth'"),
            std::string::npos);
  EXPECT_NE(err("data: {paths: [a.h5]}").find("data.paths[0]: expected {path: ..., weight: ...}"), std::string::npos);
}

}  // namespace
}  // namespace skein
