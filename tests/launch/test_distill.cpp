// test_distill.cpp — `skein distill` end to end on a tiny byte-level corpus: a softmax teacher
// trained here for a few hundred steps, distilled with Liger and with LoLCATs into a student
// with a short window, must recover a stated fraction of the teacher's perplexity; the same
// pipeline with no distillation steps (the converted, untrained student) must NOT reach it.
// Also: the exported student reloads to the same perplexity, and a run resumes.
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include "configs/loader.h"
#include "data/prep.h"
#include "launch/checkpoint.h"
#include "launch/distill.h"
#include "launch/trainer.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

const char* kVerses[] = {
    "In the beginning God created the heaven and the earth. ",
    "And the earth was without form, and void; and darkness was upon the face of the deep. ",
    "And the Spirit of God moved upon the face of the waters. ",
    "And God said, Let there be light: and there was light. ",
    "And God saw the light, that it was good: and God divided the light from the darkness. ",
    "And God called the light Day, and the darkness he called Night. ",
    "And the evening and the morning were the first day. ",
    "And God said, Let there be a firmament in the midst of the waters. ",
};

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("skein_distill_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A byte-level corpus of the verses in a shuffled order, documents split 3:1 train/val.
std::string make_corpus(const fs::path& dir) {
  std::vector<std::string> inputs;
  for (int doc = 0; doc < 8; ++doc) {
    std::ofstream f(dir / ("doc" + std::to_string(doc) + ".txt"));
    for (int i = 0; i < 40; ++i) f << kVerses[(i * 5 + doc * 3 + (i * i) % 7) % 8];
    inputs.push_back((dir / ("doc" + std::to_string(doc) + ".txt")).string());
  }
  PrepOptions p;
  p.inputs = inputs;
  p.output = (dir / "corpus.h5").string();
  p.val_fraction = 0.25;
  p.progress = false;
  prep(p);
  return p.output;
}

// The teacher: 2 softmax layers, d 32, trained 300 steps on 32-token windows.
std::string train_teacher(const std::string& data, const fs::path& run) {
  Config c = load_config("", {"model.vocab_size=0", "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
                              "model.mlp_hidden=64", "model.layer_pattern=S", "data.seq_len=32", "data.batch_size=8",
                              "train.steps=300", "train.log_every=100", "train.eval_every=0", "train.eval_batches=4",
                              "train.sample_tokens=0", "train.threads=1", "optim.lr=0.01", "optim.min_lr=0.001",
                              "optim.warmup=20", "log.tensorboard=false"});
  c.data.path = data;
  c.train.run_dir = run.string();
  return train(c).checkpoint;
}

Config distill_config(const std::string& teacher, const std::string& data, const fs::path& run,
                      const std::string& method, int64_t steps) {
  Config c = load_config("", {"distill.window=8", "distill.feature_dim=8", "distill.lora_rank=4",
                              "distill.stage1_lr=0.01", "distill.stage2_lr=0.003", "distill.eval_context=96",
                              "distill.eval_tokens=4", "data.seq_len=32", "data.batch_size=8", "train.log_every=50",
                              "train.eval_every=0", "train.eval_batches=4", "train.threads=1", "optim.warmup=5",
                              "optim.weight_decay=0", "log.tensorboard=false"});
  c.distill.teacher = teacher;
  c.distill.method = method;
  c.distill.stage1_steps = steps;
  c.distill.stage2_steps = steps;
  c.data.path = data;
  c.train.run_dir = run.string();
  return c;
}

// A broken pipeline (no distillation: the converted student as it comes) stays well below it.
constexpr double kRecovery = 0.90;

TEST(Distill, RecoversTheTeachersPerplexity) {
  TempDir dir("e2e");
  const std::string data = make_corpus(dir.path);
  const std::string teacher = train_teacher(data, dir.path / "teacher");
  for (const char* method : {"liger", "lolcats"}) {
    DistillSummary untrained = distill(distill_config(teacher, data, dir.path / (std::string(method) + "0"), method, 0));
    DistillSummary s = distill(distill_config(teacher, data, dir.path / method, method, 200));
    std::printf("%s: teacher ppl %.3f, student ppl %.3f (untrained %.3f), recovery %.3f (untrained %.3f)\n", method,
                s.teacher_val_ppl, s.student_val_ppl, untrained.student_val_ppl, s.recovery, untrained.recovery);
    EXPECT_LT(s.teacher_val_ppl, 20.0) << "the teacher did not learn the corpus";
    EXPECT_GE(s.recovery, kRecovery) << method;
    EXPECT_LT(untrained.recovery, kRecovery) << method << ": the threshold does not separate a broken pipeline";
    // the exported student reloads to the same perplexity
    Config cfg;
    auto student = load_student(s.student_checkpoint, &cfg);
    DataSources d = make_data(cfg);
    EXPECT_NEAR(evaluate(*student, *d.val, cfg, cfg.train.eval_batches).val_ppl, s.student_val_ppl,
                1e-6 * s.student_val_ppl);
    EXPECT_LT(s.student_gen.cache_mb, s.teacher_gen.cache_mb) << "the student's cache does not grow with the context";
  }
}

TEST(Distill, ResumeIsBitIdentical) {
  TempDir dir("resume");
  const std::string data = make_corpus(dir.path);
  const std::string teacher = train_teacher(data, dir.path / "teacher");
  Config full = distill_config(teacher, data, dir.path / "full", "lolcats", 20);
  full.checkpoint.every = 10;  // checkpoints at 10, 20 (stage 1 done), 30, 40 (stage 2 done)
  full.checkpoint.keep = 4;
  DistillSummary want = distill(full);
  // the same run interrupted after its step-30 checkpoint (stage 2, step 10)
  fs::copy(dir.path / "full", dir.path / "part", fs::copy_options::recursive);
  fs::remove_all(dir.path / "part" / "checkpoints" / "ckpt-000040");
  fs::remove_all(dir.path / "part" / "student");
  Config part = full;
  part.train.run_dir = (dir.path / "part").string();
  DistillSummary got = distill(part, "auto");
  EXPECT_EQ(got.student_val_ppl, want.student_val_ppl);
  EXPECT_EQ(got.teacher_val_ppl, want.teacher_val_ppl);
}

}  // namespace
}  // namespace skein
