// test_synthetic_tasks.cpp — the models learn what the papers say they learn, end to end
// through train(), in CI-affordable time on 2 cores:
// - MQAR (Zoology): a 2-layer gated DeltaNet with its short convolutions recalls >= 0.9 of
//   the queried values on an easy setting (4 key-value pairs, 32 tokens) where the same
//   model with fixed-decay linear attention and no conv stays far below — the gap the
//   Zoology / gated DeltaNet papers report. The accuracy is logged at every eval
//   (metrics.jsonl "mqar_accuracy").
// - In-context regression: the final evaluation carries the per-point curves of the model
//   and of the baselines (final.json "icl_per_point"), and an SVG plot is written.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "configs/loader.h"
#include "launch/trainer.h"

namespace skein {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("skein_tasks_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

Config mqar_config(const std::string& variant, const fs::path& run_dir) {
  Config c = load_config("", {"data.source=mqar", "model.vocab_size=64", "model.d_model=64", "model.n_layers=2",
                              "model.n_heads=2", "model.mlp_hidden=128", "model.layer_pattern=LL",
                              "model.linear_variant=" + variant, "data.seq_len=32", "data.batch_size=32",
                              "data.mqar_num_kv_pairs=4", "train.steps=400", "train.eval_every=100",
                              "train.eval_batches=4", "train.log_every=100", "optim.lr=3e-3", "optim.warmup=20",
                              "train.sample_tokens=0", "train.threads=1", "log.tensorboard=false",
                              "checkpoint.every=0"});
  c.train.run_dir = run_dir.string();
  return c;
}

std::vector<double> logged(const fs::path& jsonl, const std::string& key) {
  std::vector<double> out;
  std::ifstream f(jsonl);
  for (std::string line; std::getline(f, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out.push_back(j[key].get<double>());
  }
  return out;
}

TEST(SyntheticTasks, MqarGatedDeltaNetWithShortConvRecallsDecayDoesNot) {
  TempDir dir("mqar");
  Config gd = mqar_config("gated_delta", dir.path / "gated_delta");  // short conv: auto (on)
  RunSummary a = train(gd);
  Config decay = mqar_config("decay", dir.path / "decay");  // short conv: auto (off)
  RunSummary b = train(decay);
  EXPECT_GE(a.metric, 0.9) << "gated DeltaNet + short conv";
  EXPECT_LT(b.metric, 0.6) << "fixed decay, no conv";
  // accuracy at every eval (steps 100, 200, 300) and at the end, in metrics.jsonl
  std::vector<double> acc = logged(dir.path / "gated_delta" / "metrics.jsonl", "mqar_accuracy");
  ASSERT_EQ(acc.size(), 4u);
  EXPECT_DOUBLE_EQ(acc.back(), a.metric);
  EXPECT_LT(acc.front(), acc.back());
}

TEST(SyntheticTasks, IclFinalEvaluationHasThePerPointCurves) {
  TempDir dir("icl");
  Config c = load_config("", {"data.source=icl_regression", "model.vocab_size=0", "model.d_model=16",
                              "model.n_layers=2", "model.layer_pattern=LS", "model.n_heads=2", "model.mlp_hidden=32", "data.icl_dim=3",
                              "data.icl_points=6", "data.seq_len=12", "data.batch_size=4", "train.steps=4",
                              "train.eval_batches=2", "optim.warmup=0", "train.sample_tokens=0", "train.threads=1",
                              "log.tensorboard=false", "data.icl_curriculum=true", "data.icl_curriculum_interval=1"});
  c.train.run_dir = (dir.path / "run").string();
  RunSummary r = train(c);
  ASSERT_FALSE(r.icl.empty());
  for (const char* k : {"model", "least_squares", "nearest_3", "averaging"}) EXPECT_EQ(r.icl.per_point.at(k).size(), 6u) << k;
  EXPECT_NEAR(r.icl.mean("model"), r.val_loss, 1e-9);
  auto final_json = nlohmann::json::parse(std::ifstream(dir.path / "run" / "final.json"));
  EXPECT_EQ(final_json["icl_per_point"]["least_squares"].size(), 6u);
  EXPECT_DOUBLE_EQ(final_json["icl_per_point"]["least_squares"][4].get<double>(), 0.0 + r.icl.per_point["least_squares"][4]);
  EXPECT_TRUE(fs::exists(dir.path / "run" / "icl_curve.svg"));
}

}  // namespace
}  // namespace skein
