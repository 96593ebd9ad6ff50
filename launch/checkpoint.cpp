// checkpoint.cpp — HDF5 checkpoints, written atomically, one file or one file per tp shard
// (see checkpoint.h).
// state.h5: root attributes format_version (1: tensors inline; 2: sharded), step,
// config_yaml; one int64 attribute per counter under /counters. Format 1 also holds groups
// /model and /optimizer with one dataset per tensor (named by its dotted key; f32, f64 or
// i64). Format 2 instead holds attributes grid_dp, grid_sp, grid_tp and the manifest
// /tp_splits/{model,optimizer}/<key> = int64 [dim, full] per tensor; shard-tpRR-of-NN.h5
// holds /model and /optimizer with tp rank RR's shards (replicated tensors: in shard 0).
#include "launch/checkpoint.h"
#include <signal.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>
#include "core/ops.h"
#include "launch/checkpoint_verify.h"
#include "launch/h5_io.h"
#include "parallel/grid.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

using h5::Hid;

constexpr int kFormatInline = 1, kFormatSharded = 2;
const char* const kMetaChecksum = "meta_crc32c";  // root attribute: meta_checksum() of step, config, counters

template <typename... Args>
void verify(bool ok, const Args&... args) {
  if (!ok) throw CorruptCheckpoint(detail::concat(args...));
}
const char* const kGroups[] = {"model", "optimizer"};

void write_meta(hid_t f, int format, const CheckpointState& st, const std::string& file) {
  h5::write_attr_i64(f, "format_version", format, file);
  h5::write_attr_i64(f, "step", st.step, file);
  h5::write_attr_str(f, "config_yaml", st.config_yaml, file);
  h5::write_attr_i64(f, kMetaChecksum, meta_checksum(st.step, st.config_yaml, st.counters), file);
  Hid gc(h5::create_group(f, "counters", file), H5Gclose);
  for (auto& [name, v] : st.counters) h5::write_attr_i64(gc, name, v, file);
}

// max_abs: the largest magnitude accepted (beyond it, like NaN, the save is refused).
void write_tensors(hid_t f, const std::string& group, const std::map<std::string, Tensor>& tensors,
                   const std::string& file, double max_abs = INFINITY) {
  const std::string bad = non_finite_report(group, tensors, max_abs);
  SKEIN_CHECK(bad.empty(), "checkpoint ", file, ": ", bad, "; a non-finite or absurd value is not saved");
  Hid g(h5::create_group(f, group, file), H5Gclose);
  for (auto& [name, t] : tensors) h5::write_tensor(g, name, t, file);
}

// Replaces final_dir by the complete tmp_dir (an existing checkpoint of the same step goes
// only after the new one is in place).
void publish(const std::string& tmp_dir, const std::string& final_dir, const std::string& root) {
  h5::fsync_path(tmp_dir);
  if (fs::exists(final_dir)) {
    const std::string old = final_dir + ".old-" + std::to_string(::getpid());
    fs::rename(final_dir, old);
    fs::rename(tmp_dir, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp_dir, final_dir);
  }
  h5::fsync_path(root);
}

// The split of optimizer entry `key` = "<slot>.<param>": its parameter's, when it is shaped
// like it (not a 0-d counter); else replicated.
TpSplit optimizer_split(const std::string& key, const Tensor& t, const std::map<std::string, TpSplit>& splits) {
  const size_t dot = key.find('.');
  if (t.dim() == 0 || dot == std::string::npos) return {};
  auto it = splits.find(key.substr(dot + 1));
  return it == splits.end() ? TpSplit{} : it->second;
}

// Writes tp rank tp_rank's shard file into dir: its split tensors (and, for rank 0, the
// replicated ones), checking first that each is this rank's share of its split.
void write_shard(const std::string& dir, const CheckpointState& local, const std::map<std::string, TpSplit>& splits,
                 int tp_rank, int tp_size) {
  std::map<std::string, Tensor> keep[2];
  auto add = [&](int g, const std::string& key, const Tensor& t, const TpSplit& split) {
    if (split.sharded()) {
      const bool fits = split.dim < t.dim() &&
          t.size(split.dim) == tp_shard_size(split.full > 0 ? split.full : t.size(split.dim) * tp_size, tp_size);
      SKEIN_CHECK(fits, "save_parallel_checkpoint: '", key, "' ", shape_str(t.shape()), " is not one of ", tp_size,
                  " shards of ", split.full, " rows along dim ", split.dim);
    }
    if (split.sharded() || tp_rank == 0) keep[g].emplace(key, t);
  };
  for (auto& [key, t] : local.model) {
    auto it = splits.find(key);
    SKEIN_CHECK(it != splits.end(), "save_parallel_checkpoint: model tensor '", key, "' ", shape_str(t.shape()),
                " has no TpSplit");
    add(0, key, t, it->second);
  }
  for (auto& [key, t] : local.optimizer) {
    const TpSplit split = optimizer_split(key, t, splits);
    if (split.sharded()) {
      auto p = local.model.find(key.substr(key.find('.') + 1));
      SKEIN_CHECK(p != local.model.end() && p->second.shape() == t.shape(),
                  "save_parallel_checkpoint: optimizer state '", key, "' ", shape_str(t.shape()),
                  " is not shaped like its parameter ",
                  p == local.model.end() ? std::string("(not in the model)") : shape_str(p->second.shape()));
    }
    add(1, key, t, split);
  }
  const std::string file = (fs::path(dir) / checkpoint_shard_name(tp_rank, tp_size)).string();
  {
    Hid f(h5::create_file(file), H5Fclose);
    for (int g = 0; g < 2; ++g) write_tensors(f, kGroups[g], keep[g], file);
    h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), "flushing", file);
  }
  h5::fsync_path(file);
}

// Rank 0's state.h5 of a sharded checkpoint: step, config, counters and the manifest.
void write_manifest(const std::string& dir, const ProcessGrid& grid, const CheckpointState& local,
                    const std::map<std::string, TpSplit>& splits) {
  const std::string file = (fs::path(dir) / "state.h5").string();
  {
    Hid f(h5::create_file(file), H5Fclose);
    write_meta(f, kFormatSharded, local, file);
    h5::write_attr_i64(f, "grid_dp", grid.dp(), file);
    h5::write_attr_i64(f, "grid_sp", grid.sp(), file);
    h5::write_attr_i64(f, "grid_tp", grid.tp(), file);
    Hid gs(h5::create_group(f, "tp_splits", file), H5Gclose);
    for (int g = 0; g < 2; ++g) {
      Hid gg(h5::create_group(gs, kGroups[g], file), H5Gclose);
      for (auto& [key, t] : g == 0 ? local.model : local.optimizer) {
        const TpSplit s = g == 0 ? splits.at(key) : optimizer_split(key, t, splits);
        const Tensor dim_full = from_vector({static_cast<double>(s.dim), static_cast<double>(s.full)}, {2}, DType::i64);
        h5::write_tensor(gg, key, dim_full, file);
      }
    }
    h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), "flushing", file);
  }
  h5::fsync_path(file);
}

// Whether every rank of world passed an empty `error` (collective; a barrier).
bool all_ok(Communicator& world, const std::string& error) {
  Tensor flag = full({1}, error.empty() ? 0 : 1, DType::i64);
  world.all_reduce(flag, ReduceOp::max);
  return flag.data<int64_t>()[0] == 0;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---- reading --------------------------------------------------------------------------------
// How a checkpoint folder stores its tensors: the files holding the shards (format 1: just
// state.h5) and each tensor's split among them.
struct Stored {
  std::vector<std::string> files;  // one per tp shard of the writer
  std::map<std::string, TpSplit> splits[2];  // model, optimizer
};

// Reads meta (step, config, counters) into st and returns where the tensors are.
Stored read_meta(const std::string& dir, CheckpointState& st) {
  const std::string file = fs::is_directory(dir) ? (fs::path(dir) / "state.h5").string() : dir;
  verify(fs::exists(file), "checkpoint: ", file, " does not exist");
  Hid f(h5::open_file(file), H5Fclose);
  const int64_t version = h5::read_attr_i64(f, "format_version", file);
  verify(version == kFormatInline || version == kFormatSharded, "checkpoint ", file, ": format_version ",
         version, " is not ", kFormatInline, " or ", kFormatSharded);
  st.step = h5::read_attr_i64(f, "step", file);
  st.config_yaml = h5::read_attr_str(f, "config_yaml", file);
  Hid gc(h5::open_group(f, "counters", file), H5Gclose);
  st.counters = h5::read_attrs_i64(gc, file);
  if (h5::has_attr(f, kMetaChecksum)) {  // checkpoints written before checksums have none
    const int64_t want = h5::read_attr_i64(f, kMetaChecksum, file);
    const uint32_t got = meta_checksum(st.step, st.config_yaml, st.counters);
    verify(static_cast<int64_t>(got) == want, "checkpoint ", file, ": the step, config and counters fail their "
           "checksum (stored crc32c ", want, ", computed ", got, "): the file is damaged");
  }
  Stored out;
  if (version == kFormatInline) {
    out.files = {file};
    for (int g = 0; g < 2; ++g) {
      Hid gg(h5::open_group(f, kGroups[g], file), H5Gclose);
      for (const std::string& key : h5::list_group(gg, kGroups[g], file)) out.splits[g][key] = TpSplit{};
    }
    return out;
  }
  const int64_t tp = h5::read_attr_i64(f, "grid_tp", file);
  verify(tp >= 1, "checkpoint ", file, ": grid_tp = ", tp);
  for (int r = 0; r < tp; ++r) {
    const std::string shard = (fs::path(file).parent_path() / checkpoint_shard_name(r, static_cast<int>(tp))).string();
    verify(fs::exists(shard), "checkpoint: shard file ", shard, " is missing (the checkpoint was written by ",
                tp, " tensor-parallel ranks)");
    out.files.push_back(shard);
  }
  Hid gs(h5::open_group(f, "tp_splits", file), H5Gclose);
  for (int g = 0; g < 2; ++g) {
    const std::string path = std::string("tp_splits/") + kGroups[g];
    for (auto& [key, t] : h5::read_group(gs, kGroups[g], file)) {
      verify(t.numel() == 2, "checkpoint ", file, ": '", path, "/", key, "' is not [dim, full]");
      const std::vector<double> v = t.to_vector();
      out.splits[g][key] = TpSplit{static_cast<int>(v[0]), static_cast<int64_t>(v[1])};
    }
  }
  return out;
}

// What the reader holds: its tp coordinates, its splits and shard shapes (null: whole tensors).
struct Reader {
  int tp_rank, tp_size;
  const std::map<std::string, TpSplit>& splits;
  const std::map<std::string, Shape>& local_shapes;
};

// The checkpoint's whole tensor `full` of group g cut into the reader's shard; errors when it
// does not fit the reader's model.
Tensor reshard(const std::string& dir, int g, const std::string& key, const Tensor& full, const Reader& rd) {
  std::string param = key;
  TpSplit split;
  if (g == 0) {
    SKEIN_CHECK(rd.splits.count(key), "checkpoint ", dir, ": tensor '", key, "' ", shape_str(full.shape()),
                " is not in the model (a checkpoint of another model?)");
    split = rd.splits.at(key);
  } else {
    split = optimizer_split(key, full, rd.splits);
    if (!split.sharded()) return full;
    param = key.substr(key.find('.') + 1);
  }
  SKEIN_CHECK(rd.local_shapes.count(param), "load_checkpoint_shard: '", param, "' has a TpSplit but no local shape");
  const Shape want = tp_full_shape(rd.local_shapes.at(param), split, rd.tp_size);
  SKEIN_CHECK(full.shape() == want, "checkpoint ", dir, ": tensor '", key, "' is ", shape_str(full.shape()),
              " in the checkpoint but ", shape_str(want), " in the model (whole, unsharded shapes)");
  return split.sharded() ? cut_tp_shard(full, split, rd.tp_rank, rd.tp_size) : full;
}

CheckpointState load(const std::string& dir, const Reader* rd) {
  CheckpointState st;
  const Stored stored = read_meta(dir, st);
  std::vector<std::unique_ptr<Hid>> files;
  for (const std::string& file : stored.files) files.push_back(std::make_unique<Hid>(h5::open_file(file), H5Fclose));
  for (int g = 0; g < 2; ++g) {
    std::vector<std::unique_ptr<Hid>> groups;
    for (size_t r = 0; r < files.size(); ++r)
      groups.push_back(std::make_unique<Hid>(h5::open_group(*files[r], kGroups[g], stored.files[r]), H5Gclose));
    auto& out = g == 0 ? st.model : st.optimizer;
    for (const auto& [key, split] : stored.splits[g]) {
      std::vector<Tensor> shards;
      for (size_t r = 0; r < (split.sharded() ? files.size() : 1); ++r)
        shards.push_back(h5::read_tensor(*groups[r], kGroups[g], key, stored.files[r]));
      Tensor whole = split.sharded() ? join_tp_shards(shards, split) : shards[0];
      const std::string bad = non_finite_report(kGroups[g], {{key, whole}});
      verify(bad.empty(), "checkpoint ", dir, ": ", bad, "; a non-finite or absurd value is refused");
      out.emplace(key, rd ? reshard(dir, g, key, whole, *rd) : whole);
    }
  }
  if (rd)
    for (const auto& [key, shape] : rd->local_shapes)
      SKEIN_CHECK(st.model.count(key), "checkpoint ", dir, ": tensor '", key, "' (", shape_str(shape),
                  " in the model) is missing from the checkpoint (a checkpoint of another model?)");
  return st;
}

}  // namespace

std::map<std::string, Tensor> model_tensors_stored_as(const std::map<std::string, Tensor>& model,
                                                      const std::string& dtype) {
  SKEIN_CHECK(dtype == "f32" || dtype == "bf16", "checkpoint.dtype: '", dtype, "' is not f32 or bf16");
  if (dtype == "f32") return model;
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : model) out.emplace(name, t.dtype() == DType::f32 ? t.detach().to(DType::bf16) : t);
  return out;
}

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%06lld", static_cast<long long>(step));
  return buf;
}

std::string checkpoint_shard_name(int tp_rank, int tp_size) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "shard-tp%02d-of-%02d.h5", tp_rank, tp_size);
  return buf;
}

std::string save_checkpoint(const std::string& root, const CheckpointState& st,
                            const std::function<void()>& before_commit) {
  fs::create_directories(root);
  const std::string final_dir = (fs::path(root) / checkpoint_name(st.step)).string();
  const std::string tmp_dir = final_dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  const std::string file = tmp_dir + "/state.h5";
  {
    Hid f(h5::create_file(file), H5Fclose);
    write_meta(f, kFormatInline, st, file);
    write_tensors(f, "model", st.model, file, kMaxWeight);  // imports (convert) and distilled students
    write_tensors(f, "optimizer", st.optimizer, file);
    h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), "flushing", file);
  }
  h5::fsync_path(file);
  h5::fsync_path(tmp_dir);
  if (before_commit) before_commit();
  publish(tmp_dir, final_dir, root);
  return final_dir;
}

std::string save_parallel_checkpoint(const std::string& root, const ProcessGrid& grid, const CheckpointState& local,
                                     const std::map<std::string, TpSplit>& splits,
                                     const std::function<void()>& before_commit) {
  Communicator& world = grid.world();
  const bool rank0 = world.rank() == 0;
  const std::string final_dir = (fs::path(root) / checkpoint_name(local.step)).string();
  const std::string what =
      "save_parallel_checkpoint " + final_dir + ": a rank failed (see its error); nothing was published";
  // Rank 0 names and makes the temporary folder (after its own pid: prune_checkpoints
  // removes it once that process is gone) before any writer starts.
  Tensor pid = full({1}, rank0 ? ::getpid() : 0, DType::i64);
  auto tmp_dir = [&] { return final_dir + ".tmp-" + std::to_string(pid.data<int64_t>()[0]); };
  std::string error;
  if (rank0) error = error_of([&] {
      fs::create_directories(root);
      fs::remove_all(tmp_dir());
      fs::create_directories(tmp_dir());
    });
  if (!all_ok(world, error)) throw Error(error.empty() ? what : error);
  world.broadcast(pid, 0);
  if (grid.dp_rank() == 0 && grid.sp_rank() == 0) error = error_of([&] {
      write_shard(tmp_dir(), local, splits, grid.tp_rank(), grid.tp());
      if (rank0) write_manifest(tmp_dir(), grid, local, splits);
    });
  const bool written = all_ok(world, error);  // every shard is on disk past this point
  if (rank0) {
    if (!written) fs::remove_all(tmp_dir());
    else error = error_of([&] {
        if (before_commit) before_commit();
        publish(tmp_dir(), final_dir, root);
      });
  }
  if (!written || !all_ok(world, error)) throw Error(error.empty() ? what : error);
  return final_dir;
}

CheckpointState load_checkpoint(const std::string& dir) { return load(dir, nullptr); }

CheckpointState load_checkpoint_shard(const std::string& dir, int tp_rank, int tp_size,
                                      const std::map<std::string, TpSplit>& splits,
                                      const std::map<std::string, Shape>& local_shapes) {
  SKEIN_CHECK(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size, "load_checkpoint_shard: tp rank ", tp_rank, " of ",
              tp_size);
  const Reader rd{tp_rank, tp_size, splits, local_shapes};
  return load(dir, &rd);
}

CheckpointState load_parallel_checkpoint(const std::string& dir, const ProcessGrid& grid,
                                         const std::map<std::string, TpSplit>& splits,
                                         const std::map<std::string, Shape>& local_shapes) {
  return load_checkpoint_shard(dir, grid.tp_rank(), grid.tp(), splits, local_shapes);
}

namespace {
// Complete checkpoint folders under root, sorted by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::is_directory(root)) return out;
  for (auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();  // "ckpt-" then digits only
    const bool digits = name.size() > 5 && name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (e.is_directory() && name.rfind("ckpt-", 0) == 0 && digits && fs::exists(e.path() / "state.h5"))
      out.emplace_back(std::stoll(name.substr(5)), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::string latest_checkpoint(const std::string& root) {
  auto all = list_checkpoints(root);
  return all.empty() ? "" : all.back().second;
}

std::vector<std::string> checkpoints_newest_first(const std::string& root) {
  std::vector<std::string> out;
  auto all = list_checkpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) out.push_back(it->second);
  return out;
}

void prune_checkpoints(const std::string& root, int64_t keep) {
  auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_all(all[i].second);
  if (!fs::is_directory(root)) return;
  for (auto& e : fs::directory_iterator(root)) {  // leftovers of crashed writers
    std::string name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos || name.find(".old-") != std::string::npos) {
      int pid = std::atoi(name.substr(name.rfind('-') + 1).c_str());
      if (pid != ::getpid() && (pid <= 0 || ::kill(pid, 0) != 0)) fs::remove_all(e.path());
    }
  }
}

}  // namespace skein
