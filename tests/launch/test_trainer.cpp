// test_trainer.cpp — end-to-end runs of the trainer on a tiny byte-level corpus: the golden
// first losses of a fixed tiny config, bit-identical losses after an interrupted run is
// resumed, gradient accumulation equal to one big batch, NaN handling, a checkpoint from a
// different model refused with the tensor named, and MQAR / regression sources.
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "configs/loader.h"
#include "data/prep.h"
#include "launch/checkpoint.h"
#include "launch/trainer.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

const char* kCorpus =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
    "And God said, Let there be light: and there was light. And God saw the light, that it was good: and "
    "God divided the light from the darkness. And God called the light Day, and the darkness he called "
    "Night. And the evening and the morning were the first day. And God said, Let there be a firmament in "
    "the midst of the waters, and let it divide the waters from the waters.";

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("skein_trainer_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string make_corpus(const fs::path& dir) {
  for (int i = 0; i < 4; ++i) std::ofstream(dir / ("doc" + std::to_string(i) + ".txt")) << kCorpus << " " << i;
  PrepOptions p;
  p.inputs = {(dir / "doc0.txt").string(), (dir / "doc1.txt").string(), (dir / "doc2.txt").string(),
              (dir / "doc3.txt").string()};
  p.output = (dir / "corpus.h5").string();
  p.val_fraction = 0.25;
  p.progress = false;
  prep(p);
  return p.output;
}

Config tiny_config(const std::string& data, const fs::path& run) {
  Config c = load_config("", {"model.vocab_size=0", "model.d_model=16", "model.n_layers=2", "model.n_heads=2",
                              "model.mlp_hidden=32", "model.layer_pattern=LS", "model.chunk_size=8",
                              "data.seq_len=16", "data.batch_size=2", "train.steps=8", "train.log_every=1",
                              "train.eval_every=0", "train.eval_batches=1", "train.sample_tokens=0",
                              "train.threads=1", "optim.lr=0.01", "optim.warmup=2", "checkpoint.every=4",
                              "log.tensorboard=false"});
  c.data.path = data;
  c.train.run_dir = run.string();
  return c;
}

std::vector<double> logged_losses(const fs::path& run) {
  std::vector<double> out;
  std::ifstream f(run / "metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

TEST(Trainer, GoldenFirstLosses) {
  TempDir dir("golden");
  Config c = tiny_config(make_corpus(dir.path), dir.path / "run");
  RunSummary r = train(c);
  std::vector<double> l = logged_losses(dir.path / "run");
  ASSERT_EQ(l.size(), 8u);
  // A byte model starts near log(257) and learns this repetitive text quickly.
  EXPECT_NEAR(l[0], std::log(257.0), 0.05);
  // Golden values of this fixed config (seeded init, data order and optimizer); a change in
  // any op, the init, the loader or AdamW moves them.
  const double golden[4] = {5.549319, 5.492235, 5.400708, 5.364288};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(l[i], golden[i], 1e-4) << "step " << i + 1;
  EXPECT_LT(l.back(), l.front());
  EXPECT_TRUE(fs::exists(dir.path / "run" / "final.json"));
  EXPECT_TRUE(fs::exists(dir.path / "run" / "config.yaml"));
  EXPECT_GT(r.val_loss, 0.0);
  EXPECT_NEAR(r.val_ppl, std::exp(r.val_loss), 1e-9 * r.val_ppl);
}

TEST(Trainer, ResumeIsBitIdentical) {
  TempDir dir("resume");
  std::string data = make_corpus(dir.path);
  Config full = tiny_config(data, dir.path / "full");
  train(full);
  std::vector<double> want = logged_losses(dir.path / "full");
  // The same run interrupted just after its step-4 checkpoint: its folder as it was then.
  fs::copy(dir.path / "full", dir.path / "part", fs::copy_options::recursive);
  fs::remove_all(dir.path / "part" / "checkpoints" / "ckpt-000008");
  fs::remove(dir.path / "part" / "final.json");
  {
    std::ifstream in(dir.path / "full" / "metrics.jsonl");
    std::ofstream out(dir.path / "part" / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
      if (nlohmann::json::parse(line)["step"].get<int64_t>() <= 4) out << line << "\n";
  }
  Config rest = tiny_config(data, dir.path / "part");
  train(rest, "auto");
  std::vector<double> got = logged_losses(dir.path / "part");
  ASSERT_EQ(got.size(), 8u);  // 4 before the interruption, 4 after
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;
}

TEST(Trainer, GradAccumulationEqualsOneBigBatch) {
  TempDir dir("accum");
  std::string data = make_corpus(dir.path);
  Config big = tiny_config(data, dir.path / "big");
  big.data.batch_size = 4;
  big.train.steps = 3;
  big.checkpoint.every = 0;
  train(big);
  Config acc = tiny_config(data, dir.path / "acc");
  acc.data.batch_size = 2;
  acc.train.grad_accum = 2;
  acc.train.steps = 3;
  acc.checkpoint.every = 0;
  train(acc);
  auto a = logged_losses(dir.path / "big"), b = logged_losses(dir.path / "acc");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::fabs(a[i])) << i;
}

TEST(Trainer, NonFiniteLossStopsWithTheStep) {
  TempDir dir("nan");
  Config c = tiny_config(make_corpus(dir.path), dir.path / "run");
  c.optim.lr = 1e30;  // diverges at once
  c.optim.warmup = 0;
  c.train.clip_grad_norm = 0;
  try {
    train(c);
    FAIL() << "a diverged run finished";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at step"), std::string::npos) << e.what();
  }
  c.train.on_nan = "skip";
  c.train.run_dir = (dir.path / "skip").string();
  EXPECT_NO_THROW(train(c));
}

TEST(Trainer, CheckpointFromAnotherModelIsRefused) {
  TempDir dir("mismatch");
  std::string data = make_corpus(dir.path);
  Config c = tiny_config(data, dir.path / "run");
  c.train.steps = 2;
  RunSummary r = train(c);
  Config other = tiny_config(data, dir.path / "other");
  other.model.mlp_hidden = 48;
  try {
    train(other, r.checkpoint);
    FAIL() << "loaded a checkpoint of a different model";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("mlp.w1.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("[32,16]"), std::string::npos) << m;
    EXPECT_NE(m.find("[48,16]"), std::string::npos) << m;
  }
}

TEST(Trainer, SyntheticSources) {
  TempDir dir("synthetic");
  Config m = load_config("", {"data.source=mqar", "model.vocab_size=64", "model.d_model=16", "model.n_layers=2", "model.layer_pattern=LS",
                              "model.n_heads=2", "model.mlp_hidden=32", "data.seq_len=32", "data.batch_size=4",
                              "data.mqar_num_kv_pairs=4", "train.steps=3", "train.eval_batches=1", "optim.warmup=0",
                              "train.sample_tokens=0", "train.threads=1", "log.tensorboard=false"});
  m.train.run_dir = (dir.path / "mqar").string();
  RunSummary r = train(m);
  EXPECT_GE(r.metric, 0.0);
  EXPECT_LE(r.metric, 1.0);
  Config g = m;
  g.data.source = "icl_regression";
  g.data.icl_dim = 4;
  g.data.icl_points = 16;  // data.seq_len = 2 * icl_points
  g.model.vocab_size = 0;
  g.train.run_dir = (dir.path / "icl").string();
  RunSummary q = train(g);
  EXPECT_GT(q.val_loss, 0.0);
  EXPECT_EQ(q.metric, q.val_loss);
}

}  // namespace
}  // namespace skein

namespace skein {
namespace {

// train.precision bf16-mixed (bf16 GEMMs emulated where the CPU has no bf16 units, so this runs
// everywhere): the losses track the f32 run's (within 2% at the end, and not identical: the
// GEMMs did change), the master weights and optimizer state stay f32 (checkpointed weights are
// not all bf16 values), and an interrupted run resumes bit-identically.
TEST(Trainer, Bf16MixedTracksF32ResumesBitIdenticallyKeepsF32Masters) {
  ::setenv("SKEIN_BF16_EMULATE", "1", 1);
  TempDir dir("bf16");
  const std::string data = make_corpus(dir.path);
  Config f32 = tiny_config(data, dir.path / "f32");
  train(f32);
  Config bf = tiny_config(data, dir.path / "full");
  bf.train.precision = "bf16-mixed";
  train(bf);
  const std::vector<double> lf = logged_losses(dir.path / "f32"), want = logged_losses(dir.path / "full");
  ASSERT_EQ(want.size(), 8u);
  EXPECT_LT(std::fabs(want.back() - lf.back()), 0.02 * lf.back());
  EXPECT_NE(want, lf);
  const CheckpointState st = load_checkpoint(latest_checkpoint((dir.path / "full" / "checkpoints").string()));
  bool off_grid = false;  // some f32 master weight is not a bf16 value
  for (const auto& [name, t] : st.model) {
    ASSERT_EQ(t.dtype(), DType::f32) << name;
    off_grid = off_grid || t.to_vector() != t.to(DType::bf16).to_vector();
  }
  EXPECT_TRUE(off_grid);
  for (const auto& [name, t] : st.optimizer)
    if (is_floating(t.dtype())) { EXPECT_EQ(t.dtype(), DType::f32) << name; }
  // Interrupted after its step-4 checkpoint and resumed.
  fs::copy(dir.path / "full", dir.path / "part", fs::copy_options::recursive);
  fs::remove_all(dir.path / "part" / "checkpoints" / "ckpt-000008");
  fs::remove(dir.path / "part" / "final.json");
  {
    std::ifstream in(dir.path / "full" / "metrics.jsonl");
    std::ofstream out(dir.path / "part" / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
      if (nlohmann::json::parse(line)["step"].get<int64_t>() <= 4) out << line << "\n";
  }
  Config rest = tiny_config(data, dir.path / "part");
  rest.train.precision = "bf16-mixed";
  train(rest, "auto");
  const std::vector<double> got = logged_losses(dir.path / "part");
  ASSERT_EQ(got.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;
  ::unsetenv("SKEIN_BF16_EMULATE");
}

// checkpoint.dtype bf16: the weights are stored rounded, and a run resumes from them.
TEST(Trainer, Bf16CheckpointsStoreRoundedWeights) {
  TempDir dir("ckpt_bf16");
  Config c = tiny_config(make_corpus(dir.path), dir.path / "run");
  c.train.steps = 4;
  c.checkpoint.dtype = "bf16";
  train(c);
  const CheckpointState st = load_checkpoint(latest_checkpoint((dir.path / "run" / "checkpoints").string()));
  for (const auto& [name, t] : st.model) EXPECT_EQ(t.dtype(), DType::bf16) << name;
  c.train.steps = 6;
  EXPECT_NO_THROW(train(c, "auto"));
  EXPECT_EQ(logged_losses(dir.path / "run").size(), 6u);
}

}  // namespace
}  // namespace skein
