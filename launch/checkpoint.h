// checkpoint.h — one folder per checkpoint (`<root>/ckpt-000200/`): parameters by dotted
// name, optimizer state, step, counters (RNG, data cursor), and the resolved config.
// Written under a temporary name and renamed into place, so a crash or a full disk never
// damages the previous checkpoint; the newest K are kept; `latest_checkpoint` finds the
// newest complete one (what `--resume auto` loads).
//
// Two layouts, both read by every loader:
//  * one process (save_checkpoint): state.h5 holds everything.
//  * sharded (save_parallel_checkpoint): state.h5 holds step, config, counters and the
//    manifest (the writer's grid dp × sp × tp and each tensor's TpSplit); one
//    shard-tpRR-of-NN.h5 per tensor-parallel rank holds that rank's shard of every split
//    tensor (replicated tensors are in shard 0 only).
// Loading joins each tensor's shards (dropping vocabulary padding) and, for a tensor-parallel
// reader, cuts the reader's own shard (launch/tp_shard.h): a checkpoint saved under one grid
// loads under any other. Optimizer state "<slot>.<param>" shaped like its parameter is split
// as the parameter is; counters (0-d) are replicated.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "core/error.h"
#include "core/tensor.h"
#include "launch/tp_shard.h"

namespace skein {

class ProcessGrid;  // parallel/grid.h

// A checkpoint that fails verification: an unreadable, truncated or missing file, a dataset or
// the metadata failing its CRC32C, a non-finite weight or optimizer state. `--resume auto`
// skips such a checkpoint for the newest older one that verifies.
struct CorruptCheckpoint : Error {
  using Error::Error;
};

struct CheckpointState {
  int64_t step = 0;
  std::map<std::string, Tensor> model;      // Module::state_dict()
  std::map<std::string, Tensor> optimizer;  // Optimizer::state_dict()
  std::map<std::string, int64_t> counters;  // e.g. "rng.seed", "data.epoch", "data.position"
  std::string config_yaml;                  // the resolved config of the run
};

// The model tensors as a checkpoint stores them (checkpoint.dtype): "f32" keeps them as they
// are; "bf16" rounds every f32 tensor to bf16 (round-to-nearest-even; half the bytes, loaded
// back into f32 parameters by Module::load_state_dict). Other dtypes pass unchanged.
std::map<std::string, Tensor> model_tensors_stored_as(const std::map<std::string, Tensor>& model,
                                                      const std::string& dtype);

std::string checkpoint_name(int64_t step);                     // "ckpt-000200"
std::string checkpoint_shard_name(int tp_rank, int tp_size);  // "shard-tp01-of-02.h5"
// Writes <root>/<checkpoint_name(step)>/ atomically. `before_commit` (tests only) runs
// after everything is written and synced, just before the rename that publishes it.
std::string save_checkpoint(const std::string& root, const CheckpointState& state,
                            const std::function<void()>& before_commit = nullptr);
// Every dataset carries a CRC32C and the metadata (step, config, counters) one more; all are
// verified on load, and every floating tensor must be finite (CorruptCheckpoint naming the file
// and the tensor otherwise). Saving refuses a non-finite tensor (naming it); save_checkpoint
// (the path of `skein convert` and of distilled students) also refuses model weights beyond
// 1e20 in magnitude (a flipped exponent bit of a damaged import), while a training run's
// sharded save keeps what training made (on_nan=skip may leave huge but finite weights).
//
// Reads a checkpoint folder (or its state.h5) of either layout, every tensor whole (shards
// joined); errors name the file and the dataset.
CheckpointState load_checkpoint(const std::string& dir);
// The newest complete checkpoint folder under root, or "" when there is none.
std::string latest_checkpoint(const std::string& root);
// Every complete checkpoint folder under root, newest first.
std::vector<std::string> checkpoints_newest_first(const std::string& root);
// Deletes all but the newest `keep` checkpoints (and stale temporary folders).
void prune_checkpoints(const std::string& root, int64_t keep);

// ---- sharded checkpoints over a process grid ----------------------------------------------
// Collective over grid.world(). `local` is this rank's state: its model shards (as
// Module::state_dict() holds them under tensor parallelism) and its optimizer state in
// AdamW's per-parameter layout (for ZeRO-1 the gathered Zero1AdamW::state_dict(), itself
// collective over dp × sp); `splits` = Module::tp_splits(). The ranks with dp_rank == 0 and
// sp_rank == 0 each write their tp shard, rank 0 also state.h5; the folder is renamed into
// place by rank 0 only after every shard is written and synced (a crash before that leaves
// the previous checkpoint the newest), and every rank returns once it is. A write error on
// any rank is an error on every rank (nothing is published). Step, counters and config are
// rank 0's. `before_commit` (tests only) runs on rank 0 just before the rename.
std::string save_parallel_checkpoint(const std::string& root, const ProcessGrid& grid, const CheckpointState& local,
                                     const std::map<std::string, TpSplit>& splits,
                                     const std::function<void()>& before_commit = nullptr);
// Reads a checkpoint of either layout, saved under any grid, as tp rank tp_rank of tp_size
// holds it: every model tensor joined and cut by `splits` (the reader's Module::tp_splits());
// `local_shapes` = the reader's shard shapes (name -> shape of Module::state_dict()). A
// tensor missing from either side, or whose whole shape differs (a checkpoint of another
// model), is an error naming the tensor and both shapes; a missing shard file names the file.
// Not collective: each rank reads the files it needs.
CheckpointState load_checkpoint_shard(const std::string& dir, int tp_rank, int tp_size,
                                      const std::map<std::string, TpSplit>& splits,
                                      const std::map<std::string, Shape>& local_shapes);
// load_checkpoint_shard as grid.tp_rank() of grid.tp().
CheckpointState load_parallel_checkpoint(const std::string& dir, const ProcessGrid& grid,
                                         const std::map<std::string, TpSplit>& splits,
                                         const std::map<std::string, Shape>& local_shapes);

}  // namespace skein
