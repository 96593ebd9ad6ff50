// test_loader.cpp — the Loader: windows and targets, every window exactly once per epoch
// across simulated data-parallel ranks, per-epoch reshuffle, seed reproducibility, wrap at
// the epoch end, exact resume from a cursor, and error messages.
#include <gtest/gtest.h>
#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <set>
#include "data/loader.h"

namespace skein {
namespace {
namespace fs = std::filesystem;

// A token file whose train split is tokens 0, 1, ..., n-1 (split into a few documents), so a
// window is identified by its first token.
class LoaderTest : public ::testing::Test {
 protected:
  void make(int64_t n) {
    dir_ = fs::temp_directory_path() / ("skein_test_loader_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / ("seq" + std::to_string(n) + ".h5")).string();
    TokenFileWriter w(path_, "test", "bytes", 100000, 0, 0, 128);
    for (int64_t s = 0; s < n; s += 97) {
      std::vector<int64_t> doc;
      for (int64_t i = s; i < std::min(n, s + 97); ++i) doc.push_back(i);
      w.append("train", doc);
    }
    w.append("val", {1, 2, 3});
    w.finalize();
    file_ = TokenFile::open(path_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Window ids (first input token / T) of the next batch.
  static std::vector<int64_t> windows(Loader& l) {
    Batch b = l.next();
    std::vector<int64_t> w;
    const int64_t B = b.inputs.size(0), T = b.inputs.size(1);
    const int64_t* in = b.inputs.data<int64_t>();
    for (int64_t r = 0; r < B; ++r) w.push_back(in[r * T] / T);
    return w;
  }

  fs::path dir_;
  std::string path_;
  TokenFile file_;
};

TEST_F(LoaderTest, WindowsAndShiftedTargets) {
  make(1000);
  const int64_t T = 16, B = 4;
  Loader l(file_, "train", T, B, 0, 1, 7, true);
  EXPECT_EQ(l.num_windows(), (1000 - 1) / T);
  Batch b = l.next();
  ASSERT_EQ(b.inputs.shape(), (Shape{B, T}));
  ASSERT_EQ(b.targets.shape(), (Shape{B, T}));
  EXPECT_EQ(b.inputs.dtype(), DType::i64);
  const int64_t* in = b.inputs.data<int64_t>();
  const int64_t* tg = b.targets.data<int64_t>();
  for (int64_t r = 0; r < B; ++r) {
    EXPECT_EQ(in[r * T] % T, 0);  // windows start at multiples of T (stride seq_len)
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(in[r * T + t], in[r * T] + t);      // packed across document boundaries
      EXPECT_EQ(tg[r * T + t], in[r * T + t] + 1);  // targets = inputs shifted by one
    }
  }
}

TEST_F(LoaderTest, EveryWindowOncePerEpochAcrossRanks) {
  const int64_t T = 10, B = 3, dp = 4;
  make(1 + 48 * T);  // 48 windows = 4 global batches of 12
  std::vector<Loader> ranks;
  for (int64_t r = 0; r < dp; ++r) ranks.emplace_back(file_, "train", T, B, r, dp, 1234, true);
  ASSERT_EQ(ranks[0].num_windows(), 48);
  std::vector<std::vector<int64_t>> epochs;
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    for (int step = 0; step < 4; ++step)
      for (auto& l : ranks) {
        auto w = windows(l);
        seen.insert(seen.end(), w.begin(), w.end());
      }
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 48; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i) << "epoch " << epoch;
    epochs.push_back(seen);
    for (auto& l : ranks) EXPECT_EQ(l.cursor(), (Cursor{epoch + 1, 0}));
  }
  EXPECT_NE(epochs[0], epochs[1]);  // a new order each epoch
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_EQ(epochs[0], ranks[0].epoch_order(0));  // ranks take consecutive runs of B

  // Same seed: same order; another seed: another order; no shuffle: 0, 1, 2, ...
  Loader again(file_, "train", T, B * dp, 0, 1, 1234, true), other(file_, "train", T, B * dp, 0, 1, 99, true);
  Loader plain(file_, "train", T, B * dp, 0, 1, 1234, false);
  auto a = windows(again);
  EXPECT_EQ(a, std::vector<int64_t>(epochs[0].begin(), epochs[0].begin() + B * dp));
  EXPECT_NE(windows(other), a);
  auto p = windows(plain);
  for (int64_t i = 0; i < B * dp; ++i) EXPECT_EQ(p[static_cast<size_t>(i)], i);
}

TEST_F(LoaderTest, LastBatchWrapsIntoTheNextEpoch) {
  const int64_t T = 8;
  make(1 + 50 * T);  // 50 windows, global batch 12: the 5th batch takes 2 of epoch 0, 10 of epoch 1
  std::vector<Loader> ranks;
  for (int64_t r = 0; r < 2; ++r) ranks.emplace_back(file_, "train", T, 6, r, 2, 5, true);
  std::vector<int64_t> stream;
  for (int step = 0; step < 9; ++step)
    for (auto& l : ranks) {
      auto w = windows(l);
      stream.insert(stream.end(), w.begin(), w.end());
    }
  EXPECT_EQ(ranks[1].cursor(), (Cursor{2, 8}));  // 108 windows = 2 epochs + 8
  std::vector<int64_t> e0(stream.begin(), stream.begin() + 50), e1(stream.begin() + 50, stream.begin() + 100);
  EXPECT_EQ(e0, ranks[0].epoch_order(0));
  EXPECT_EQ(e1, ranks[0].epoch_order(1));
  std::sort(e1.begin(), e1.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(e1[static_cast<size_t>(i)], i);
  EXPECT_DOUBLE_EQ(ranks[0].batches_per_epoch(), 50.0 / 12.0);
}

TEST_F(LoaderTest, ResumeFromCursorGivesTheSameBatches) {
  make(1000);
  for (int64_t dp : {1, 2}) {
    const int64_t rank = dp - 1;
    Loader run(file_, "train", 12, 5, rank, dp, 42, true);
    Cursor saved;
    std::vector<std::vector<double>> after;
    for (int step = 0; step < 40; ++step) {  // crosses several epochs (83 windows)
      if (step == 23) saved = run.cursor();
      Batch b = run.next();
      if (step >= 23) {
        after.push_back(b.inputs.to_vector());
        after.push_back(b.targets.to_vector());
      }
    }
    Loader resumed(file_, "train", 12, 5, rank, dp, 42, true);
    resumed.set_cursor(saved);
    for (size_t i = 0; i < after.size(); i += 2) {
      Batch b = resumed.next();
      ASSERT_EQ(b.inputs.to_vector(), after[i]) << "dp " << dp << " batch " << i / 2;
      ASSERT_EQ(b.targets.to_vector(), after[i + 1]);
    }
    EXPECT_EQ(resumed.cursor(), run.cursor());
  }
}

TEST_F(LoaderTest, ErrorsNameTheNumbersAndTheFile) {
  make(300);
  auto message = [](auto f) -> std::string {
    try { f(); } catch (const Error& e) { return e.what(); }
    return "";
  };
  std::string m = message([&] { Loader(file_, "val", 8, 2); });
  EXPECT_NE(m.find(path_), std::string::npos) << m;
  EXPECT_NE(m.find("has 3 tokens"), std::string::npos) << m;
  EXPECT_NE(m.find("seq_len + 1 = 9"), std::string::npos) << m;
  m = message([&] { Loader(file_, "train", 8, 2, 2, 2); });
  EXPECT_NE(m.find("dp_rank 2"), std::string::npos) << m;
  Loader l(file_, "train", 8, 2);
  m = message([&] { l.set_cursor({0, 37}); });  // 37 windows: positions 0..36
  EXPECT_NE(m.find("position 37"), std::string::npos) << m;
  EXPECT_NE(m.find("37 windows"), std::string::npos) << m;
}

}  // namespace
}  // namespace skein
