// h5_io.cpp — HDF5 datasets and attributes for checkpoints (see h5_io.h).
#include "launch/h5_io.h"
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include "core/error.h"
#include "launch/checkpoint.h"
#include "launch/metrics.h"

namespace skein::h5 {
namespace {

struct H5Quiet {
  H5Quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const H5Quiet h5_quiet;

// bf16 as an HDF5 floating type (sign bit 15, exponent bits 7..14 with bias 127, mantissa
// bits 0..6, little-endian): h5py and other readers see floats. Made once, never closed.
hid_t h5_bf16_type() {
  static const hid_t t = [] {
    const hid_t b = H5Tcopy(H5T_IEEE_F32LE);
    SKEIN_ASSERT(b >= 0 && H5Tset_fields(b, 15, 7, 8, 0, 7) >= 0 && H5Tset_offset(b, 0) >= 0 &&
                 H5Tset_precision(b, 16) >= 0 && H5Tset_size(b, 2) >= 0 && H5Tset_ebias(b, 127) >= 0,
                 "h5: cannot build the bf16 datatype");
    return b;
  }();
  return t;
}

// A 2-byte float type with an 8-bit exponent is bf16 (an IEEE half has a 5-bit one).
bool is_bf16_type(hid_t type) {
  size_t spos, epos, esize, mpos, msize;
  return H5Tget_size(type) == 2 && H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0 && esize == 8 &&
         msize == 7;
}

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::bf16: return h5_bf16_type();
  }
  return H5T_NATIVE_FLOAT;
}

// A failed read or verification: the file is damaged (truncated, flipped bytes), not misused.
template <typename... Args>
void verify(bool ok, const Args&... args) {
  if (!ok) throw CorruptCheckpoint(detail::concat(args...));
}

uint32_t checksum_of(const Tensor& t) {
  return crc32c(t.raw_data(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
}

}  // namespace

void check(herr_t status, const std::string& what, const std::string& file) {
  SKEIN_CHECK(status >= 0, "checkpoint ", file, ": ", what, " failed (disk full or I/O error?)");
}

hid_t create_file(const std::string& file) {
  hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  SKEIN_CHECK(f >= 0, "checkpoint: cannot create ", file, " (is the disk full or read-only?)");
  return f;
}

hid_t open_file(const std::string& file) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  verify(f >= 0, "checkpoint: ", file, " is not a readable HDF5 file (truncated or damaged?)");
  return f;
}

hid_t create_group(hid_t parent, const std::string& name, const std::string& file) {
  hid_t g = H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  SKEIN_CHECK(g >= 0, "checkpoint ", file, ": cannot create group '", name, "'");
  return g;
}

hid_t open_group(hid_t parent, const std::string& name, const std::string& file) {
  hid_t g = H5Gopen2(parent, name.c_str(), H5P_DEFAULT);
  verify(g >= 0, "checkpoint ", file, ": group '", name, "' is missing");
  return g;
}

void write_tensor(hid_t group, const std::string& name, const Tensor& t_in, const std::string& file) {
  Tensor t = t_in.contiguous();
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  Hid space(t.dim() == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Hid ds(H5Dcreate2(group, name.c_str(), h5_type(t.dtype()), space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  SKEIN_CHECK(ds >= 0, "checkpoint ", file, ": cannot create dataset '", name, "'");
  if (t.numel() > 0) check(H5Dwrite(ds, h5_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()), "writing '" + name + "'", file);
  write_attr_i64(ds, kChecksumAttr, checksum_of(t), file);
}

Tensor read_tensor(hid_t group, const std::string& group_path, const std::string& name, const std::string& file) {
  Hid ds(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
  verify(ds >= 0, "checkpoint ", file, ": cannot open dataset '", group_path, "/", name, "'");
  Hid type(H5Dget_type(ds), H5Tclose);
  Hid space(H5Dget_space(ds), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space);
  verify(nd >= 0, "checkpoint ", file, ": dataset '", group_path, "/", name, "' has an unreadable shape");
  std::vector<hsize_t> dims(std::max(nd, 0));
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  DType dt;
  if (H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 2) {
    verify(is_bf16_type(type), "checkpoint ", file, ": dataset '", group_path, "/", name,
           "' is a 2-byte float that is not bf16 (f16 is not supported)");
    dt = DType::bf16;
  } else if (H5Tget_class(type) == H5T_FLOAT) dt = H5Tget_size(type) == 4 ? DType::f32 : DType::f64;
  else if (H5Tget_class(type) == H5T_INTEGER) dt = H5Tget_size(type) == 4 ? DType::i32 : DType::i64;
  else throw CorruptCheckpoint(detail::concat("checkpoint ", file, ": dataset '", group_path, "/", name, "' has an unsupported type"));
  Tensor t = Tensor::empty(Shape(dims.begin(), dims.end()), dt);
  verify(t.numel() == 0 || H5Dread(ds, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()) >= 0, "checkpoint ",
         file, ": reading dataset '", group_path, "/", name, "' failed (truncated or damaged file?)");
  if (has_attr(ds, kChecksumAttr)) {  // checkpoints written before checksums have none
    const int64_t want = read_attr_i64(ds, kChecksumAttr, file);
    const uint32_t got = checksum_of(t);
    verify(static_cast<int64_t>(got) == want, "checkpoint ", file, ": dataset '", group_path, "/", name,
           "' fails its checksum (stored crc32c ", want, ", computed ", got, "): the file is damaged");
  }
  return t;
}

std::vector<std::string> list_group(hid_t group, const std::string& group_path, const std::string& file) {
  H5G_info_t info;
  verify(H5Gget_info(group, &info) >= 0, "checkpoint ", file, ": listing '", group_path, "' failed");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    verify(len >= 0, "checkpoint ", file, ": listing '", group_path, "' failed");
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  return names;
}

std::map<std::string, Tensor> read_group(hid_t file_id, const std::string& name, const std::string& file) {
  std::map<std::string, Tensor> out;
  Hid g(open_group(file_id, name, file), H5Gclose);
  for (const std::string& ds : list_group(g, name, file)) out.emplace(ds, read_tensor(g, name, ds, file));
  return out;
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

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

int64_t read_attr_i64(hid_t obj, const std::string& name, const std::string& file) {
  Hid a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  verify(a >= 0, "checkpoint ", file, ": attribute '", name, "' is missing");
  int64_t v = 0;
  verify(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, "checkpoint ", file, ": reading attribute '", name, "' failed");
  return v;
}

std::string read_attr_str(hid_t obj, const std::string& name, const std::string& file) {
  Hid a(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  verify(a >= 0, "checkpoint ", file, ": attribute '", name, "' is missing");
  Hid type(H5Aget_type(a), H5Tclose);
  verify(H5Tget_class(type) == H5T_STRING, "checkpoint ", file, ": attribute '", name, "' is not a string");
  std::string s(H5Tget_size(type), '\0');
  Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem, s.size());
  verify(H5Aread(a, mem, s.data()) >= 0, "checkpoint ", file, ": reading attribute '", name, "' failed");
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::map<std::string, int64_t> read_attrs_i64(hid_t obj, const std::string& file) {
  std::map<std::string, int64_t> out;
  H5O_info_t info;
  verify(H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) >= 0, "checkpoint ", file, ": listing attributes failed");
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    ssize_t len = H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    verify(len >= 0, "checkpoint ", file, ": listing attributes failed");
    std::string name(static_cast<size_t>(len), '\0');
    H5Aget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    out[name] = read_attr_i64(obj, name, file);
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

}  // namespace skein::h5
