// test_run_guard.cpp — what a run does at its start and on resume: a fresh run refuses a folder
// holding another run (and train.overwrite starts over), a warm-up longer than the run is
// clamped, an unwritable checkpoint folder fails before the first step, `--resume auto` skips
// a damaged newest checkpoint for the previous one, and a resume with a config that changes the
// model's function is refused naming the key. Each failed silently (or late) before.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include "configs/loader.h"
#include "data/prep.h"
#include "launch/checkpoint.h"
#include "launch/run_dir.h"
#include "launch/trainer.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("skein_guard_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string make_corpus(const fs::path& dir) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "And God said, Let there be light: and there was light. " + std::to_string(i) + " ";
  for (int i = 0; i < 4; ++i) std::ofstream(dir / ("doc" + std::to_string(i) + ".txt")) << text << i;
  PrepOptions p;
  p.inputs = {dir.string()};
  p.output = (dir / "corpus.h5").string();
  p.val_fraction = 0.25;
  p.progress = false;
  prep(p);
  return p.output;
}

Config tiny(const std::string& data, const fs::path& run, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"model.vocab_size=0", "model.d_model=16", "model.n_layers=2", "model.n_heads=2",
                                "model.mlp_hidden=32", "model.layer_pattern=S", "data.seq_len=16",
                                "data.batch_size=2", "train.steps=4", "train.log_every=1", "train.eval_every=0",
                                "train.eval_batches=1", "train.sample_tokens=0", "train.threads=1", "optim.warmup=1",
                                "checkpoint.every=2", "log.tensorboard=false"};
  o.insert(o.end(), extra.begin(), extra.end());
  Config c = load_config("", o);
  c.data.path = data;
  c.train.run_dir = run.string();
  return c;
}

size_t lines_of(const fs::path& file) {
  std::ifstream f(file);
  size_t n = 0;
  for (std::string line; std::getline(f, line);) ++n;
  return n;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RunGuard, FreshRunRefusesAnotherRunsFolder) {
  TempDir dir("fresh");
  const std::string data = make_corpus(dir.path);
  train(tiny(data, dir.path / "run"));
  ASSERT_EQ(lines_of(dir.path / "run" / "metrics.jsonl"), 5u);  // 4 steps and the final evaluation
  const std::string m = error_of([&] { train(tiny(data, dir.path / "run")); });
  for (const char* want : {"train.run_dir", "holds another run", "metrics.jsonl", "checkpoints/ckpt-000004",
                           "--resume auto", "train.overwrite=true"})
    EXPECT_NE(m.find(want), std::string::npos) << want << " in: " << m;
  EXPECT_EQ(lines_of(dir.path / "run" / "metrics.jsonl"), 5u);  // untouched
  // --resume continues the files; train.overwrite starts over in the same folder.
  EXPECT_NO_THROW(train(tiny(data, dir.path / "run", {"train.steps=6"}), "auto"));
  EXPECT_EQ(lines_of(dir.path / "run" / "metrics.jsonl"), 8u);  // + steps 5, 6 and their final evaluation
  EXPECT_NO_THROW(train(tiny(data, dir.path / "run", {"train.overwrite=true"})));
  EXPECT_EQ(lines_of(dir.path / "run" / "metrics.jsonl"), 5u);
  EXPECT_FALSE(fs::exists(dir.path / "run" / "checkpoints" / "ckpt-000006"));  // the old run's are gone
}

TEST(RunGuard, WarmupLongerThanTheRunIsClamped) {
  TempDir dir("warmup");
  Config c = tiny(make_corpus(dir.path), dir.path / "run", {"optim.warmup=100", "train.steps=3"});
  testing::internal::CaptureStdout();
  EXPECT_NO_THROW(train(c));
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("note: optim.warmup (100) exceeds train.steps (3): the warm-up is clamped to 3 steps"),
            std::string::npos) << out;
  EXPECT_EQ(load_config((dir.path / "run" / "config.yaml").string()).optim.warmup, 3);
}

TEST(RunGuard, UnwritableCheckpointFolderFailsAtStart) {
  TempDir dir("unwritable");
  Config c = tiny(make_corpus(dir.path), dir.path / "run", {"checkpoint.every=0"});
  std::ofstream(dir.path / "a-file") << "x";
  c.checkpoint.dir = (dir.path / "a-file" / "ckpts").string();  // under a regular file: never creatable
  const std::string m = error_of([&] { train(c); });
  EXPECT_NE(m.find("checkpoint.dir: cannot create the folder"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(dir.path / "run" / "metrics.jsonl"));  // no step was run
}

TEST(RunGuard, ResumeAutoSkipsADamagedNewestCheckpoint) {
  TempDir dir("fallback");
  const std::string data = make_corpus(dir.path);
  train(tiny(data, dir.path / "run"));  // checkpoints at 2 and 4
  const fs::path newest = dir.path / "run" / "checkpoints" / "ckpt-000004" / "state.h5";
  fs::resize_file(newest, fs::file_size(newest) / 3);  // a truncated write
  testing::internal::CaptureStdout();
  RunSummary r;
  EXPECT_NO_THROW(r = train(tiny(data, dir.path / "run", {"train.steps=5"}), "auto"));
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("resume: skipped " + (dir.path / "run" / "checkpoints" / "ckpt-000004").string() + ": checkpoint"),
            std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + (dir.path / "run" / "checkpoints" / "ckpt-000002").string() + " at step 2"),
            std::string::npos) << out;
  EXPECT_EQ(r.step, 5);
  // Every checkpoint damaged: an error listing each, not a silent fresh start.
  for (auto& e : fs::directory_iterator(dir.path / "run" / "checkpoints")) fs::resize_file(e.path() / "state.h5", 100);
  const std::string m = error_of([&] { train(tiny(data, dir.path / "run", {"train.steps=6"}), "auto"); });
  EXPECT_NE(m.find("none of the 3 checkpoints"), std::string::npos) << m;
}

TEST(RunGuard, ResumeWithAFunctionChangingKeyIsRefused) {
  TempDir dir("changed");
  const std::string data = make_corpus(dir.path);
  train(tiny(data, dir.path / "run"));
  // Same parameter shapes (head dim 8 -> 4), another function: refused, naming the key.
  const std::string m = error_of([&] { train(tiny(data, dir.path / "run", {"model.n_heads=4", "train.steps=6"}), "auto"); });
  EXPECT_NE(m.find("model.n_heads is 2 in the checkpoint but 4 now"), std::string::npos) << m;
  // Keys that do not change the function may: more steps, another learning rate.
  EXPECT_NO_THROW(train(tiny(data, dir.path / "run", {"train.steps=6", "optim.lr=1e-3"}), "auto"));
}

std::vector<double> losses(const fs::path& run) {
  std::vector<double> out;
  std::ifstream f(run / "metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    const size_t at = line.find("\"loss\": ");
    if (at != std::string::npos) out.push_back(std::stod(line.substr(at + 8)));
  }
  return out;
}

TEST(RunGuard, BlendedRunResumesExactly) {
  TempDir dir("blend");
  const std::string a = make_corpus(dir.path);
  fs::create_directories(dir.path / "b");
  std::ofstream(dir.path / "b" / "x.txt") << std::string(3000, 'z');
  PrepOptions p;
  p.inputs = {(dir.path / "b" / "x.txt").string()};
  p.output = (dir.path / "b.h5").string();
  p.val_fraction = 0.25;
  p.progress = false;
  prep(p);
  const std::string blend = "data.paths=[{path: " + a + ", weight: 3}, {path: " + p.output + ", weight: 1}]";
  train(tiny(a, dir.path / "full", {blend}));
  fs::copy(dir.path / "full", dir.path / "part", fs::copy_options::recursive);
  fs::remove_all(dir.path / "part" / "checkpoints" / "ckpt-000004");
  fs::remove(dir.path / "part" / "metrics.jsonl");
  train(tiny(a, dir.path / "part", {blend}), "auto");
  const auto want = losses(dir.path / "full"), got = losses(dir.path / "part");
  ASSERT_EQ(want.size(), 4u);
  ASSERT_EQ(got.size(), 2u);  // steps 3 and 4 after the resume
  EXPECT_EQ(got[0], want[2]);
  EXPECT_EQ(got[1], want[3]);
}

TEST(RunGuard, MetricIsNamedByWhatItIs) {
  TempDir dir("metric");
  Config m = load_config("", {"data.source=mqar", "model.vocab_size=64", "model.d_model=16", "model.n_layers=2",
                              "model.layer_pattern=LS", "model.n_heads=2", "model.mlp_hidden=32", "data.seq_len=32",
                              "data.batch_size=2", "data.mqar_num_kv_pairs=4", "train.steps=1", "train.eval_batches=1",
                              "train.sample_tokens=0", "train.threads=1", "log.tensorboard=false"});
  m.train.run_dir = (dir.path / "mqar").string();
  EXPECT_EQ(train(m).metric_name, "mqar_accuracy");
  std::ifstream f(dir.path / "mqar" / "final.json");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"mqar_accuracy\": "), std::string::npos) << text;
}

}  // namespace
}  // namespace skein
