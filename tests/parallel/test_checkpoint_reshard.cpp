// test_checkpoint_reshard.cpp — sharded checkpoints across process grids (np 2: grids
// dp×sp×tp 1×1×2, 2×1×1; np 4: 1×1×4, 2×1×2, 1×2×2). A toy model registers a column-split
// [8, 4], a row-split [4, 8], a vocabulary [7, 4] (padded to a multiple of tp) and a
// replicated [4]; two AdamW (or Zero1AdamW) steps with exact gradients make its state. The
// oracle is the same model trained in one process, cut by a naive element-wise slicer:
// saved under every grid and loaded under every grid (and as every tp rank of 1, 2, 4, and
// whole), model and optimizer state equal it exactly; a ZeRO-1 run's checkpoint loads into
// plain AdamW and the reverse (and trains on identically); a missing shard file and a failing
// writer are errors on every rank; the folder appears only once every shard is written.
#include <gtest/gtest.h>
#include <unistd.h>
#include <array>
#include <filesystem>
#include "helpers.h"
#include "launch/checkpoint.h"
#include "parallel/grid.h"
#include "parallel/zero.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

using test::world;
using GridDims = std::array<int, 3>;  // dp, sp, tp

struct ParamSpec {
  const char* name;
  Shape shape;
  TpSplit split;
};
const std::vector<ParamSpec> kParams = {
    {"col", {8, 4}, {0, 8}}, {"row", {4, 8}, {1, 8}}, {"embed", {7, 4}, {0, 7}}, {"norm", {4}, {}}};

std::vector<GridDims> grids() {
  if (world().size() == 2) return {{1, 1, 2}, {2, 1, 1}};
  if (world().size() == 4) return {{1, 1, 4}, {2, 1, 2}, {1, 2, 2}};
  return {};
}

ProcessGrid make_grid(const GridDims& g) { return ProcessGrid(world(), g[0], g[1], g[2]); }

// Rank r's shard of a 2-D whole tensor split into n blocks of ceil(F / n) along split.dim,
// element by element, rows past F zero (1-D tensors here are replicated).
Tensor naive_shard(const Tensor& whole, const TpSplit& split, int r, int n) {
  if (!split.sharded()) return whole.clone();
  const int64_t rows = whole.size(split.dim), s = (rows + n - 1) / n;
  Shape shape = whole.shape();
  shape[split.dim] = s;
  std::vector<double> v;
  for (int64_t i = 0; i < shape[0]; ++i)
    for (int64_t j = 0; j < shape[1]; ++j) {
      const int64_t gi = split.dim == 0 ? i + r * s : i, gj = split.dim == 1 ? j + r * s : j;
      v.push_back((split.dim == 0 ? gi : gj) < rows ? whole.at({gi, gj}) : 0.0);
    }
  return from_vector(v, shape, whole.dtype());
}

// Values in eighths (sums over a few ranks stay exact): the gradient of parameter k at step s.
Tensor grad_pattern(const Shape& shape, int k, int s) {
  std::vector<double> v;
  for (int64_t i = 0; i < shape_numel(shape); ++i)
    v.push_back(static_cast<double>((i * 7 + k * 5 + s * 3) % 17 - 8) / 8.0);
  return from_vector(v, shape);
}

// tp rank r of n's shards of the toy model (r = 0, n = 1: the whole one-process model).
class Toy : public Module {
 public:
  Toy(int tp_rank, int tp_size) : tp_rank_(tp_rank), tp_size_(tp_size) {
    uint64_t seed = 70;
    for (const ParamSpec& p : kParams)
      register_parameter(p.name, naive_shard(randn(p.shape, ++seed), p.split, tp_rank, tp_size), p.split);
  }
  // This rank's shard of step s's whole gradients, on every parameter.
  void set_grads(int s) {
    for (size_t k = 0; k < kParams.size(); ++k) {
      Tensor p = state_dict().at(kParams[k].name);
      p.impl()->grad = naive_shard(grad_pattern(kParams[k].shape, static_cast<int>(k), s), kParams[k].split, tp_rank_,
                                   tp_size_).impl_ptr();
    }
  }
  std::map<std::string, Shape> shapes() const {
    std::map<std::string, Shape> out;
    for (const auto& [name, t] : state_dict()) out[name] = t.shape();
    return out;
  }

 private:
  int tp_rank_, tp_size_;
};

AdamWOptions options() {
  AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  return o;
}

template <typename Opt>
void train(Toy& m, Opt& opt, int first_step, int steps) {
  for (int s = first_step; s < first_step + steps; ++s) {
    m.set_grads(s);
    opt.step();
    opt.zero_grad();
  }
}

CheckpointState state_of(const Toy& m, std::map<std::string, Tensor> optimizer) {
  CheckpointState st;
  st.step = 2;
  for (const auto& [name, t] : m.state_dict()) st.model[name] = t.clone();
  st.optimizer = std::move(optimizer);
  st.counters["data.position"] = 640;
  st.config_yaml = "model:\n  d_model: 4\n";
  return st;
}

// The one-process run: the whole model and its AdamW state after `steps` steps.
CheckpointState oracle(int steps = 2) {
  Toy m(0, 1);
  AdamW opt(m.named_parameters(), options());
  train(m, opt, 0, steps);
  return state_of(m, opt.state_dict());
}

TpSplit split_of(const std::string& param) {
  for (const ParamSpec& p : kParams)
    if (param == p.name) return p.split;
  ADD_FAILURE() << "no parameter " << param;
  return {};
}

// got (model and optimizer dicts) is tp rank r of n's share of the one-process state, exactly.
void expect_shard_of(const std::map<std::string, Tensor>& model, const std::map<std::string, Tensor>& optimizer,
                     const CheckpointState& whole, int r, int n, const std::string& what) {
  SCOPED_TRACE(what + ", tp rank " + std::to_string(r) + " of " + std::to_string(n));
  ASSERT_EQ(model.size(), whole.model.size());
  ASSERT_EQ(optimizer.size(), whole.optimizer.size());
  for (const auto& [name, t] : whole.model)
    EXPECT_EQ(model.at(name).to_vector(), naive_shard(t, split_of(name), r, n).to_vector()) << name;
  for (const auto& [key, t] : whole.optimizer) {
    const TpSplit split = t.dim() > 0 ? split_of(key.substr(key.find('.') + 1)) : TpSplit{};
    EXPECT_EQ(optimizer.at(key).shape(), naive_shard(t, split, r, n).shape()) << key;
    EXPECT_EQ(optimizer.at(key).to_vector(), naive_shard(t, split, r, n).to_vector()) << key;
  }
}

void expect_loaded_state(const CheckpointState& st, const CheckpointState& whole, int r, int n,
                         const std::string& what) {
  EXPECT_EQ(st.step, whole.step) << what;
  EXPECT_EQ(st.counters, whole.counters) << what;
  EXPECT_EQ(st.config_yaml, whole.config_yaml) << what;
  expect_shard_of(st.model, st.optimizer, whole, r, n, what);
}

// The same fresh folder on every rank (named after rank 0's pid).
std::string shared_root(const std::string& name) {
  Tensor pid = full({1}, world().rank() == 0 ? ::getpid() : 0, DType::i64);
  world().broadcast(pid, 0);
  const fs::path p = fs::temp_directory_path() /
                     ("skein_reshard_" + name + "_" + std::to_string(static_cast<int64_t>(pid.item())));
  if (world().rank() == 0) fs::remove_all(p);
  world().barrier();
  return p.string();
}

void remove_root(const std::string& root) {
  world().barrier();
  if (world().rank() == 0) fs::remove_all(root);
}

std::string grid_str(const GridDims& g) {
  return std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]);
}

// Trains the toy under `save` (plain AdamW, or Zero1AdamW over dp×sp) and saves it.
std::string train_and_save(const std::string& root, const GridDims& save, bool zero1) {
  ProcessGrid grid = make_grid(save);
  Toy m(grid.tp_rank(), grid.tp());
  std::map<std::string, Tensor> opt_state;
  if (zero1) {
    Zero1AdamW opt(grid.dp_sp_comm(), m.named_parameters(), options());
    train(m, opt, 0, 2);
    opt_state = opt.state_dict();  // collective over dp × sp: gathered whole per tp shard
  } else {
    AdamW opt(m.named_parameters(), options());
    train(m, opt, 0, 2);
    opt_state = opt.state_dict();
  }
  return save_parallel_checkpoint(root, grid, state_of(m, opt_state), m.tp_splits());
}

void expect_saved_loads_everywhere(bool zero1) {
  if (grids().empty()) GTEST_SKIP() << "runs under mpirun -np 2 or 4";
  const CheckpointState whole = oracle();
  const std::string root = shared_root(zero1 ? "zero1" : "plain");
  for (const GridDims& save : grids()) {
    if (zero1 && save[0] * save[1] == 1) continue;
    const std::string dir = train_and_save(root, save, zero1);
    const std::string from = "saved under " + grid_str(save);
    expect_loaded_state(load_checkpoint(dir), whole, 0, 1, from + ", loaded whole");
    for (int n : {1, 2, 4}) {
      Toy reader(0, n);
      for (int r = 0; r < n; ++r)
        expect_loaded_state(load_checkpoint_shard(dir, r, n, reader.tp_splits(), reader.shapes()), whole, r, n, from);
    }
    for (const GridDims& load : grids()) {  // the trainer's path: load into a model and AdamW
      ProcessGrid grid = make_grid(load);
      Toy m(grid.tp_rank(), grid.tp());
      AdamW opt(m.named_parameters(), options());
      CheckpointState st = load_parallel_checkpoint(dir, grid, m.tp_splits(), m.shapes());
      m.load_state_dict(st.model);
      opt.load_state_dict(st.optimizer);
      expect_shard_of(m.state_dict(), opt.state_dict(), whole, grid.tp_rank(), grid.tp(),
                      from + ", loaded under " + grid_str(load));
    }
  }
  remove_root(root);
}

TEST(CheckpointReshard, SavedUnderEveryGridLoadsUnderEveryGrid) { expect_saved_loads_everywhere(false); }
TEST(CheckpointReshard, Zero1CheckpointLoadsIntoPlainAdamW) { expect_saved_loads_everywhere(true); }

// A plain checkpoint loads into Zero1AdamW (which keeps its dp×sp shard), gathers back the
// same state, and the next step equals the one-process third step.
TEST(CheckpointReshard, PlainCheckpointLoadsIntoZero1) {
  if (grids().empty()) GTEST_SKIP() << "runs under mpirun -np 2 or 4";
  const CheckpointState whole = oracle(), third = oracle(3);
  const std::string root = shared_root("into_zero1");
  const std::string dir = train_and_save(root, grids().front(), false);
  for (const GridDims& load : grids()) {
    if (load[0] * load[1] == 1) continue;
    ProcessGrid grid = make_grid(load);
    Toy m(grid.tp_rank(), grid.tp());
    Zero1AdamW opt(grid.dp_sp_comm(), m.named_parameters(), options());
    CheckpointState st = load_parallel_checkpoint(dir, grid, m.tp_splits(), m.shapes());
    m.load_state_dict(st.model);
    opt.load_state_dict(st.optimizer);
    const std::string what = "Zero1AdamW under " + grid_str(load);
    expect_shard_of(m.state_dict(), opt.state_dict(), whole, grid.tp_rank(), grid.tp(), what);
    train(m, opt, 2, 1);
    expect_shard_of(m.state_dict(), opt.state_dict(), third, grid.tp_rank(), grid.tp(), what + ", one step on");
  }
  remove_root(root);
}

TEST(CheckpointReshard, MissingShardFileIsAnErrorNamingIt) {
  if (grids().empty()) GTEST_SKIP() << "runs under mpirun -np 2 or 4";
  const std::string root = shared_root("missing");
  const int n = world().size();
  const std::string dir = train_and_save(root, {1, 1, n}, false);
  world().barrier();
  const std::string lost = checkpoint_shard_name(1, n);
  if (world().rank() == 0) fs::remove(fs::path(dir) / lost);
  world().barrier();
  Toy reader(world().rank(), n);
  try {
    load_checkpoint_shard(dir, world().rank(), n, reader.tp_splits(), reader.shapes());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(lost), std::string::npos) << e.what();
  }
  remove_root(root);
}

// The folder is published only after every shard is written (checked on rank 0 just before
// the rename: the previous checkpoint is still the newest), every rank returns after it is,
// and a writer that fails makes every rank fail with nothing published.
TEST(CheckpointReshard, PublishedOnlyWhenEveryShardIsWritten) {
  if (grids().empty()) GTEST_SKIP() << "runs under mpirun -np 2 or 4";
  const std::string root = shared_root("atomic");
  const int n = world().size();
  ProcessGrid grid = make_grid({1, 1, n});
  Toy m(grid.tp_rank(), n);
  CheckpointState st = state_of(m, {});
  st.step = 10;
  const std::string first = save_parallel_checkpoint(root, grid, st, m.tp_splits());
  st.step = 20;
  const std::string second = (fs::path(root) / checkpoint_name(20)).string();
  bool checked = false;
  save_parallel_checkpoint(root, grid, st, m.tp_splits(), [&] {
    checked = true;
    EXPECT_FALSE(fs::exists(second));
    EXPECT_EQ(latest_checkpoint(root), first);
    int tmp_dirs = 0;
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.path().filename().string().find(".tmp-") == std::string::npos) continue;
      ++tmp_dirs;
      EXPECT_TRUE(fs::exists(e.path() / "state.h5"));
      for (int r = 0; r < n; ++r) EXPECT_TRUE(fs::exists(e.path() / checkpoint_shard_name(r, n))) << r;
    }
    EXPECT_EQ(tmp_dirs, 1);
  });
  EXPECT_EQ(checked, world().rank() == 0);
  EXPECT_EQ(latest_checkpoint(root), second);
  EXPECT_EQ(load_checkpoint(second).step, 20);

  st.step = 30;
  if (grid.tp_rank() == 1) st.optimizer["exp_avg.col"] = zeros({3, 3});  // not shaped like col
  try {
    save_parallel_checkpoint(root, grid, st, m.tp_splits());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(grid.tp_rank() == 1 ? "exp_avg.col" : "nothing was published"), std::string::npos) << msg;
  }
  world().barrier();
  EXPECT_EQ(latest_checkpoint(root), second);
  for (const auto& e : fs::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().find(checkpoint_name(30)), std::string::npos) << e.path();
  remove_root(root);
}

}  // namespace
}  // namespace skein
