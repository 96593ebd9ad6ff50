// checkpoint.cpp — HDF5 checkpoints, written atomically (see checkpoint.h).
// Layout of state.h5: groups /model and /optimizer hold one dataset per tensor (named by
// its dotted key; f32, f64 or i64); root attributes: format_version, step, config_yaml, and
// one int64 attribute per counter under /counters.
#include "launch/checkpoint.h"
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>
#include "core/ops.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

constexpr int kFormatVersion = 1;

struct H5Quiet {
  H5Quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const H5Quiet h5_quiet;

// RAII for an hid_t with its close function.
struct Hid {
  hid_t id;
  herr_t (*close)(hid_t);
  Hid(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Hid() { if (id >= 0) close(id); }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  operator hid_t() const { return id; }
};

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::i32: return H5T_NATIVE_INT32;
  }
  return H5T_NATIVE_FLOAT;
}

void check(herr_t status, const std::string& what, const std::string& file) {
  SKEIN_CHECK(status >= 0, "checkpoint ", file, ": ", what, " failed (disk full or I/O error?)");
}

void write_tensor(hid_t group, const std::string& name, const Tensor& t_in, const std::string& file) {
  Tensor t = t_in.contiguous();
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  Hid space(t.dim() == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Hid ds(H5Dcreate2(group, name.c_str(), h5_type(t.dtype()), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  SKEIN_CHECK(ds >= 0, "checkpoint ", file, ": cannot create dataset '", name, "'");
  if (t.numel() > 0) check(H5Dwrite(ds, h5_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()), "writing '" + name + "'", file);
}

void write_attr_i64(hid_t obj, const std::string& name, int64_t v, const std::string& file) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(H5Acreate2(obj, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  SKEIN_CHECK(a >= 0, "checkpoint ", file, ": cannot create attribute '", name, "'");
  check(H5Awrite(a, H5T_NATIVE_INT64, &v), "writing attribute '" + name + "'", file);
}

void write_attr_str(hid_t obj, const std::string& name, const std::string& v, const std::string& file) {
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(1, v.size()));
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  SKEIN_CHECK(a >= 0, "checkpoint ", file, ": cannot create attribute '", name, "'");
  std::string padded = v.empty() ? std::string(1, '\0') : v;
  check(H5Awrite(a, type, padded.data()), "writing attribute '" + name + "'", file);
}

int64_t read_attr_i64(hid_t obj, const std::string& name, const std::string& file) {
  Hid a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  SKEIN_CHECK(a >= 0, "checkpoint ", file, ": attribute '", name, "' is missing");
  int64_t v = 0;
  check(H5Aread(a, H5T_NATIVE_INT64, &v), "reading attribute '" + name + "'", file);
  return v;
}

std::string read_attr_str(hid_t obj, const std::string& name, const std::string& file) {
  Hid a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  SKEIN_CHECK(a >= 0, "checkpoint ", file, ": attribute '", name, "' is missing");
  Hid type(H5Aget_type(a), H5Tclose);
  SKEIN_CHECK(H5Tget_class(type) == H5T_STRING, "checkpoint ", file, ": attribute '", name, "' is not a string");
  std::string s(H5Tget_size(type), '\0');
  Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem, s.size());
  check(H5Aread(a, mem, s.data()), "reading attribute '" + name + "'", file);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::map<std::string, Tensor> read_group(hid_t file_id, const std::string& group, const std::string& file) {
  std::map<std::string, Tensor> out;
  Hid g(H5Gopen2(file_id, group.c_str(), H5P_DEFAULT), H5Gclose);
  SKEIN_CHECK(g >= 0, "checkpoint ", file, ": group '", group, "' is missing");
  H5G_info_t info;
  check(H5Gget_info(g, &info), "listing '" + group + "'", file);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    Hid ds(H5Dopen2(g, name.c_str(), H5P_DEFAULT), H5Dclose);
    SKEIN_CHECK(ds >= 0, "checkpoint ", file, ": cannot open dataset '", group, "/", name, "'");
    Hid type(H5Dget_type(ds), H5Tclose);
    Hid space(H5Dget_space(ds), H5Sclose);
    int nd = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(std::max(nd, 0));
    if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    DType dt;
    if (H5Tget_class(type) == H5T_FLOAT) dt = H5Tget_size(type) == 4 ? DType::f32 : DType::f64;
    else if (H5Tget_class(type) == H5T_INTEGER) dt = H5Tget_size(type) == 4 ? DType::i32 : DType::i64;
    else throw Error(detail::concat("checkpoint ", file, ": dataset '", group, "/", name, "' has an unsupported type"));
    Tensor t = Tensor::empty(Shape(dims.begin(), dims.end()), dt);
    if (t.numel() > 0) check(H5Dread(ds, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()),
                             "reading '" + group + "/" + name + "'", file);
    out.emplace(name, t);
  }
  return out;
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%06lld", static_cast<long long>(step));
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
    Hid f(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    SKEIN_CHECK(f >= 0, "checkpoint: cannot create ", file, " (is the disk full or read-only?)");
    write_attr_i64(f, "format_version", kFormatVersion, file);
    write_attr_i64(f, "step", st.step, file);
    write_attr_str(f, "config_yaml", st.config_yaml, file);
    Hid gm(H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (auto& [name, t] : st.model) write_tensor(gm, name, t, file);
    Hid go(H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (auto& [name, t] : st.optimizer) write_tensor(go, name, t, file);
    Hid gc(H5Gcreate2(f, "counters", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (auto& [name, v] : st.counters) write_attr_i64(gc, name, v, file);
    check(H5Fflush(f, H5F_SCOPE_GLOBAL), "flushing", file);
  }
  fsync_path(file);
  fsync_path(tmp_dir);
  if (before_commit) before_commit();
  // Publish: replace an existing checkpoint of the same step only after the new one is whole.
  if (fs::exists(final_dir)) {
    const std::string old = final_dir + ".old-" + std::to_string(::getpid());
    fs::rename(final_dir, old);
    fs::rename(tmp_dir, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp_dir, final_dir);
  }
  fsync_path(root);
  return final_dir;
}

CheckpointState load_checkpoint(const std::string& dir) {
  std::string file = fs::is_directory(dir) ? (fs::path(dir) / "state.h5").string() : dir;
  SKEIN_CHECK(fs::exists(file), "checkpoint: ", file, " does not exist");
  Hid f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  SKEIN_CHECK(f >= 0, "checkpoint: ", file, " is not a readable HDF5 file");
  CheckpointState st;
  int64_t version = read_attr_i64(f, "format_version", file);
  SKEIN_CHECK(version == kFormatVersion, "checkpoint ", file, ": format_version ", version, " is not ", kFormatVersion);
  st.step = read_attr_i64(f, "step", file);
  st.config_yaml = read_attr_str(f, "config_yaml", file);
  st.model = read_group(f, "model", file);
  st.optimizer = read_group(f, "optimizer", file);
  Hid gc(H5Gopen2(f, "counters", H5P_DEFAULT), H5Gclose);
  SKEIN_CHECK(gc >= 0, "checkpoint ", file, ": group 'counters' is missing");
  H5O_info_t info;
  check(H5Oget_info2(gc, &info, H5O_INFO_NUM_ATTRS), "listing counters", file);
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    ssize_t len = H5Aget_name_by_idx(gc, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(len), '\0');
    H5Aget_name_by_idx(gc, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    st.counters[name] = read_attr_i64(gc, name, file);
  }
  return st;
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
