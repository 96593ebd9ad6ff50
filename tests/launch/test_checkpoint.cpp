// test_checkpoint.cpp — checkpoint save/load round trip, newest-complete lookup, pruning,
// and a writer killed (SIGKILL) mid-checkpoint leaving the previous checkpoint loadable.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <filesystem>
#include "core/ops.h"
#include "launch/checkpoint.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

std::string temp_root(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

CheckpointState sample_state(int64_t step) {
  CheckpointState st;
  st.step = step;
  st.model["blocks.0.mixer.q_proj.weight"] = randn({4, 3}, static_cast<uint64_t>(step));
  st.model["norm.weight"] = randn({3}, 2, DType::f64);
  st.optimizer["exp_avg.norm.weight"] = randn({3}, 3);
  st.optimizer["step"] = full({}, 7, DType::i64);
  st.counters["rng.offset"] = 123456789012LL;
  st.counters["data.epoch"] = 2;
  st.config_yaml = "model:\n  d_model: 512\n";
  return st;
}

TEST(Checkpoint, RoundTrip) {
  std::string root = temp_root("roundtrip");
  CheckpointState st = sample_state(200);
  std::string dir = save_checkpoint(root, st);
  EXPECT_EQ(fs::path(dir).filename(), "ckpt-000200");
  CheckpointState back = load_checkpoint(dir);
  EXPECT_EQ(back.step, 200);
  EXPECT_EQ(back.config_yaml, st.config_yaml);
  EXPECT_EQ(back.counters, st.counters);
  ASSERT_EQ(back.model.size(), 2u);
  for (auto& [k, t] : st.model) {
    EXPECT_EQ(back.model.at(k).dtype(), t.dtype()) << k;
    EXPECT_EQ(back.model.at(k).shape(), t.shape()) << k;
    EXPECT_EQ(back.model.at(k).to_vector(), t.to_vector()) << k;
  }
  EXPECT_EQ(back.optimizer.at("step").dim(), 0);
  EXPECT_EQ(back.optimizer.at("step").item(), 7);
  fs::remove_all(root);
}

TEST(Checkpoint, LatestAndPrune) {
  std::string root = temp_root("prune");
  EXPECT_EQ(latest_checkpoint(root), "");
  for (int64_t s : {100, 300, 200}) save_checkpoint(root, sample_state(s));
  fs::create_directories(fs::path(root) / "ckpt-000900.tmp-999999");  // a dead writer's leftovers
  EXPECT_EQ(fs::path(latest_checkpoint(root)).filename(), "ckpt-000300");
  prune_checkpoints(root, 2);
  EXPECT_FALSE(fs::exists(fs::path(root) / "ckpt-000100"));
  EXPECT_TRUE(fs::exists(fs::path(root) / "ckpt-000200"));
  EXPECT_TRUE(fs::exists(fs::path(root) / "ckpt-000300"));
  EXPECT_FALSE(fs::exists(fs::path(root) / "ckpt-000900.tmp-999999"));
  // re-saving the same step replaces it whole
  CheckpointState again = sample_state(300);
  again.counters["data.epoch"] = 5;
  save_checkpoint(root, again);
  EXPECT_EQ(load_checkpoint(latest_checkpoint(root)).counters.at("data.epoch"), 5);
  fs::remove_all(root);
}

TEST(Checkpoint, KilledWriterLeavesPreviousLoadable) {
  std::string root = temp_root("killed");
  save_checkpoint(root, sample_state(100));
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the child dies with everything written but not yet published
    save_checkpoint(root, sample_state(200), [] { ::kill(::getpid(), SIGKILL); });
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  std::string latest = latest_checkpoint(root);
  EXPECT_EQ(fs::path(latest).filename(), "ckpt-000100");
  EXPECT_EQ(load_checkpoint(latest).step, 100);
  prune_checkpoints(root, 3);  // cleans the dead child's temporary folder
  int leftovers = 0;
  for (auto& e : fs::directory_iterator(root)) leftovers += e.path().filename().string().find(".tmp-") != std::string::npos;
  EXPECT_EQ(leftovers, 0);
  fs::remove_all(root);
}

TEST(Checkpoint, ErrorsNameTheFile) {
  std::string root = temp_root("errors");
  fs::create_directories(root);
  try {
    load_checkpoint(root + "/ckpt-000001");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt-000001"), std::string::npos) << e.what();
  }
  fs::create_directories(root + "/ckpt-000002");
  { std::FILE* f = std::fopen((root + "/ckpt-000002/state.h5").c_str(), "w"); std::fputs("not hdf5", f); std::fclose(f); }
  try {
    load_checkpoint(root + "/ckpt-000002");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a readable HDF5"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace skein
