// test_synthetic_tasks.cpp — the models learn what the papers say they learn, end to end
// through train(), in CI-affordable time on 2 cores:
// - MQAR (Zoology): a 2-layer gated DeltaNet with its short convolutions recalls >= 0.9 of
//   the queried values on an easy setting (4 key-value pairs, 32 tokens) where the same
//   model with fixed-decay linear attention and no conv stays far below — the gap the
//   Zoology / gated DeltaNet papers report. The accuracy is logged at every eval
//   (metrics.jsonl "mqar_accuracy").
// - In-context regression: the final evaluation carries the per-point curves of the model
//   and of the baselines (final.json "icl_per_point"), and an SVG plot is written; a small
//   softmax model trained with Garg et al.'s curriculum gets within 50% of least squares at
//   dim 4 (mean squared error over the points, on the same validation sequences) — the issue
//   asks 25%, which this model reaches only at ~8000-15000 steps depending on the seed
//   (docs/RESULTS.md), too close to the edge for a test that must not flake.
#include <gtest/gtest.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <set>
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

// data.mqar_min_kv_pairs reaches the training source only (evaluation stays at the target pair
// count); data.mqar_random_non_queries=false leaves every non-query position 0 in both.
TEST(SyntheticTasks, MqarConfigKeysReachTheSources) {
  Config c = load_config("", {"data.source=mqar", "model.vocab_size=64", "data.seq_len=64", "data.batch_size=64",
                              "data.mqar_num_kv_pairs=8", "data.mqar_min_kv_pairs=2",
                              "data.mqar_random_non_queries=false"});
  DataSources d = make_data(c);
  auto queries_per_example = [](const Batch& b) {
    std::set<int64_t> counts;
    const int64_t B = b.targets.size(0), L = b.targets.size(1);
    const int64_t* y = b.targets.data<int64_t>();
    const int64_t* x = b.inputs.data<int64_t>();
    for (int64_t e = 0; e < B; ++e) {
      int64_t K = 0;
      for (int64_t p = 0; p < L; ++p) K += y[e * L + p] != -100;
      for (int64_t p = 2 * K; p < L; ++p) {
        if (y[e * L + p] == -100) {
          EXPECT_EQ(x[e * L + p], 0) << "a non-query position is filled";
        }
      }
      counts.insert(K);
    }
    return counts;
  };
  EXPECT_EQ(queries_per_example(d.train->next()), (std::set<int64_t>{2, 4, 8}));
  EXPECT_EQ(queries_per_example(d.val->next()), (std::set<int64_t>{8}));
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

// reference: Garg et al. 2022, "What Can Transformers Learn In-Context?" (curriculum, Figure 2)
// 8000 steps of a 6-layer d 64 softmax model on 8 points (16 tokens): ~3 min of one core.
// Measured (docs/RESULTS.md): 1.135x least squares with these seeds, 1.120x with data and
// model seed 7 (4 layers: 1.19x and ~1.29x; predict-zero is ~3x) — the "within 25%".
TEST(SyntheticTasks, IclSoftmaxModelWithCurriculumApproachesLeastSquaresAtDim4) {
  TempDir dir("icl_dim4");
  Config c = load_config("", {"data.source=icl_regression", "model.vocab_size=0", "model.d_model=64",
                              "model.n_layers=6", "model.layer_pattern=SSSSSS", "model.n_heads=2", "model.mlp_hidden=128",
                              "data.icl_dim=4", "data.icl_points=8", "data.seq_len=16", "data.batch_size=64",
                              "data.icl_curriculum=true", "data.icl_curriculum_start_dim=2",
                              "data.icl_curriculum_start_points=4", "data.icl_curriculum_dim_step=1",
                              "data.icl_curriculum_points_step=2", "data.icl_curriculum_interval=250",
                              "train.steps=8000", "train.eval_every=0", "train.eval_batches=8", "train.log_every=1000",
                              "optim.lr=1e-3", "optim.min_lr=1e-4", "optim.warmup=50", "train.sample_tokens=0",
                              "train.threads=1", "log.tensorboard=false", "checkpoint.every=0"});
  c.train.run_dir = (dir.path / "run").string();
  RunSummary r = train(c);
  ASSERT_FALSE(r.icl.empty());
  const double model = r.icl.mean("model"), ls = r.icl.mean("least_squares");
  // least squares' expected mean over k = 0..7 is (1 + 3/4 + 1/2 + 1/4) / 8 = 0.3125
  EXPECT_NEAR(ls, 0.3125, 0.06);
  EXPECT_LE(model, 1.25 * ls) << "model " << model << " vs least squares " << ls;
  EXPECT_LT(model, 0.5 * r.icl.mean("nearest_3"));
  EXPECT_LT(model, 0.5 * r.icl.mean("averaging"));
  // the least-squares shape: past k = d examples the error is a fraction of the first point's
  const std::vector<double>& curve = r.icl.per_point.at("model");
  EXPECT_LT(curve.back(), 0.15 * curve.front());
}

}  // namespace
}  // namespace skein
