// test_checkpoint.cpp — checkpoint save/load round trip, newest-complete lookup, pruning,
// and a writer killed (SIGKILL) mid-checkpoint leaving the previous checkpoint loadable;
// in one process, the sharded paths: tp shard join/cut against a naive slicer, a one-process
// checkpoint loaded as each tp rank's shard, the sharded layout written by a 1-rank grid, and
// the errors (another model, a missing shard file). tests/parallel/test_checkpoint_reshard.cpp
// covers real grids under mpirun.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <filesystem>
#include "core/ops.h"
#include "launch/checkpoint.h"
#include "parallel/grid.h"

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

// ---- sharded checkpoints in one process ----------------------------------------------------

// Rank r's shard of a 2-D full [a, b] split along dim into n blocks of ceil(F / n), element
// by element (rows past F are zero): the oracle for cut_tp_shard.
Tensor naive_shard(const Tensor& full, const TpSplit& split, int r, int n) {
  if (!split.sharded()) return full;
  const int64_t rows = full.size(split.dim), s = (rows + n - 1) / n;
  Shape shape = full.shape();
  shape[split.dim] = s;
  std::vector<double> v;
  for (int64_t i = 0; i < shape[0]; ++i)
    for (int64_t j = 0; j < shape[1]; ++j) {
      const int64_t gi = split.dim == 0 ? i + r * s : i, gj = split.dim == 1 ? j + r * s : j;
      v.push_back((split.dim == 0 ? gi : gj) < rows ? full.at({gi, gj}) : 0.0);
    }
  return from_vector(v, shape, full.dtype());
}

void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(got.to_vector(), want.to_vector()) << what;
}

TEST(TpShard, CutAndJoinMatchANaiveSlicer) {
  const Tensor rows = randn({7, 4}, 11, DType::f64), cols = randn({4, 8}, 12);
  for (int n = 1; n <= 4; ++n) {
    std::vector<Tensor> vocab, col;
    for (int r = 0; r < n; ++r) {
      vocab.push_back(cut_tp_shard(rows, TpSplit{0, 7}, r, n));
      expect_equal(vocab.back(), naive_shard(rows, TpSplit{0, 7}, r, n), "vocab rank " + std::to_string(r));
      if (8 % n) continue;
      col.push_back(cut_tp_shard(cols, TpSplit{1, 8}, r, n));
      expect_equal(col.back(), naive_shard(cols, TpSplit{1, 8}, r, n), "column rank " + std::to_string(r));
    }
    expect_equal(join_tp_shards(vocab, TpSplit{0, 7}), rows, "joined vocab");
    if (!col.empty()) expect_equal(join_tp_shards(col, TpSplit{1, 0}), cols, "joined columns (full 0)");
  }
  expect_equal(cut_tp_shard(rows, TpSplit{}, 1, 2), rows, "replicated");
  EXPECT_THROW(cut_tp_shard(rows, TpSplit{0, 0}, 0, 2), Error);  // 7 rows, no padding allowed
  EXPECT_THROW(join_tp_shards({rows, cols}, TpSplit{0, 0}), Error);
}

// A toy model: a column-split [8, 4], a row-split [4, 8], a vocabulary [7 -> padded, 4] and a
// replicated [4], with AdamW-layout optimizer state.
const std::map<std::string, TpSplit> kSplits = {
    {"col.weight", {0, 8}}, {"row.weight", {1, 8}}, {"embed.weight", {0, 7}}, {"norm.weight", {}}};

CheckpointState toy_state() {
  CheckpointState st = sample_state(40);
  st.model.clear();
  st.optimizer.clear();
  uint64_t seed = 20;
  const std::map<std::string, Shape> shapes = {
      {"col.weight", {8, 4}}, {"row.weight", {4, 8}}, {"embed.weight", {7, 4}}, {"norm.weight", {4}}};
  for (const auto& [name, shape] : shapes) {
    st.model[name] = randn(shape, ++seed);
    st.optimizer["exp_avg." + name] = randn(shape, ++seed);
    st.optimizer["exp_avg_sq." + name] = randn(shape, ++seed);
    st.optimizer["step." + name] = full({}, 3, DType::i64);
  }
  st.optimizer["step"] = full({}, 3, DType::i64);
  return st;
}

std::map<std::string, Shape> local_shapes(const CheckpointState& whole, int n) {
  std::map<std::string, Shape> out;
  for (const auto& [name, t] : whole.model) out[name] = cut_tp_shard(t, kSplits.at(name), 0, n).shape();
  return out;
}

// `got` is tp rank r of n's share of the whole state `whole`.
void expect_shard_of(const CheckpointState& got, const CheckpointState& whole, int r, int n) {
  SCOPED_TRACE("tp rank " + std::to_string(r) + " of " + std::to_string(n));
  EXPECT_EQ(got.step, whole.step);
  EXPECT_EQ(got.counters, whole.counters);
  EXPECT_EQ(got.config_yaml, whole.config_yaml);
  ASSERT_EQ(got.model.size(), whole.model.size());
  ASSERT_EQ(got.optimizer.size(), whole.optimizer.size());
  for (const auto& [name, t] : whole.model)
    expect_equal(got.model.at(name), naive_shard(t, kSplits.at(name), r, n), name);
  for (const auto& [key, t] : whole.optimizer) {
    const std::string param = key.substr(key.find('.') + 1);
    const TpSplit split = t.dim() > 0 ? kSplits.at(param) : TpSplit{};
    expect_equal(got.optimizer.at(key), t.dim() == 2 ? naive_shard(t, split, r, n) : t, key);
  }
}

TEST(Checkpoint, OneProcessCheckpointLoadsAsEveryTpShard) {
  const std::string root = temp_root("as_shards");
  const CheckpointState whole = toy_state();
  const std::string dir = save_checkpoint(root, whole);
  for (int n : {1, 2, 4})
    for (int r = 0; r < n; ++r)
      expect_shard_of(load_checkpoint_shard(dir, r, n, kSplits, local_shapes(whole, n)), whole, r, n);
  fs::remove_all(root);
}

TEST(Checkpoint, ShardedLayoutFromAOneRankGrid) {
  const std::string root = temp_root("one_rank_grid");
  SingleProcessComm world;
  ProcessGrid grid(world, 1, 1, 1);
  const CheckpointState whole = toy_state();
  const std::string dir = save_parallel_checkpoint(root, grid, whole, kSplits);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "state.h5"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / checkpoint_shard_name(0, 1)));
  EXPECT_EQ(latest_checkpoint(root), dir);
  expect_shard_of(load_checkpoint(dir), whole, 0, 1);  // whole tensors
  expect_shard_of(load_parallel_checkpoint(dir, grid, kSplits, local_shapes(whole, 1)), whole, 0, 1);
  expect_shard_of(load_checkpoint_shard(dir, 1, 2, kSplits, local_shapes(whole, 2)), whole, 1, 2);
  fs::remove(fs::path(dir) / checkpoint_shard_name(0, 1));
  try {
    load_checkpoint(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard-tp00-of-01.h5"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Checkpoint, ShardedLoadOfAnotherModelNamesTheTensorAndShapes) {
  const std::string root = temp_root("other_model");
  const CheckpointState whole = toy_state();
  const std::string dir = save_checkpoint(root, whole);
  auto expect_error = [&](const std::map<std::string, TpSplit>& splits, const std::map<std::string, Shape>& shapes,
                          const std::vector<std::string>& parts) {
    try {
      load_checkpoint_shard(dir, 0, 2, splits, shapes);
      FAIL();
    } catch (const Error& e) {
      for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  std::map<std::string, Shape> shapes = local_shapes(whole, 2);
  shapes["col.weight"] = {3, 4};  // a model with 6 rows
  std::map<std::string, TpSplit> splits = kSplits;
  splits["col.weight"] = {0, 6};
  expect_error(splits, shapes, {"'col.weight'", "[8,4]", "[6,4]"});
  std::map<std::string, Shape> more = local_shapes(whole, 2);
  more["extra.weight"] = {2};
  splits = kSplits;
  splits["extra.weight"] = {};
  expect_error(splits, more, {"'extra.weight'", "missing from the checkpoint"});
  std::map<std::string, Shape> fewer = local_shapes(whole, 2);
  fewer.erase("norm.weight");
  splits = kSplits;
  splits.erase("norm.weight");
  expect_error(splits, fewer, {"'norm.weight'", "not in the model"});
  fs::remove_all(root);
}

}  // namespace
}  // namespace skein

namespace skein {
namespace {

// checkpoint.dtype bf16: f32 model tensors stored as bf16 (HDF5 16-bit floats), read back bit
// for bit as bf16 tensors, by the one-file and the sharded layouts (tp shards joined and cut
// in bf16); optimizer state and other dtypes unchanged.
TEST(Checkpoint, Bf16ModelTensorsRoundTrip) {
  const std::string root = temp_root("bf16");
  CheckpointState whole = toy_state();
  whole.model["f64.weight"] = randn({3}, 9, DType::f64);
  CheckpointState st = whole;
  st.model = model_tensors_stored_as(whole.model, "bf16");
  EXPECT_EQ(model_tensors_stored_as(whole.model, "f32").at("col.weight").dtype(), DType::f32);
  EXPECT_THROW(model_tensors_stored_as(whole.model, "f16"), Error);
  EXPECT_EQ(st.model.at("f64.weight").dtype(), DType::f64);
  for (const auto& [name, t] : st.model) {
    if (name == "f64.weight") continue;
    ASSERT_EQ(t.dtype(), DType::bf16) << name;
    EXPECT_EQ(t.to_vector(), whole.model.at(name).to(DType::bf16).to_vector()) << name;
  }
  const std::string dir = save_checkpoint(root, st);
  const CheckpointState back = load_checkpoint(dir);
  for (const auto& [name, t] : st.model) expect_equal(back.model.at(name), t, name);
  for (const auto& [name, t] : st.optimizer) expect_equal(back.optimizer.at(name), t, name);
  // The sharded layout: rank r of 2 gets its bf16 shard.
  SingleProcessComm world;
  ProcessGrid grid(world, 1, 1, 1);
  st.model.erase("f64.weight");
  whole.model.erase("f64.weight");
  const std::string root2 = temp_root("bf16_sharded");
  const std::string dir2 = save_parallel_checkpoint(root2, grid, st, kSplits);
  for (int r = 0; r < 2; ++r) {
    const CheckpointState part = load_checkpoint_shard(dir2, r, 2, kSplits, local_shapes(whole, 2));
    for (const auto& [name, t] : st.model) {
      const Tensor want = cut_tp_shard(t, kSplits.at(name), r, 2);
      ASSERT_EQ(part.model.at(name).dtype(), DType::bf16) << name;
      EXPECT_EQ(part.model.at(name).to_vector(), want.to_vector()) << name << " rank " << r;
    }
  }
  fs::remove_all(root);
  fs::remove_all(root2);
}

}  // namespace
}  // namespace skein
