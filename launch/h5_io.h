// h5_io.h — the small HDF5 layer under checkpoints (launch/checkpoint.h): an RAII handle,
// tensors as datasets (f32, f64, i32, i64, bf16 as a 16-bit HDF5 float; 0-d as scalar datasets), each with a CRC32C of its
// bytes (attribute "crc32c") verified on read, int64 and string attributes, listing a group,
// and fsync. Every error names the file and the object; a failed read or checksum throws
// CorruptCheckpoint (launch/checkpoint.h).
#pragma once
#include <hdf5.h>
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "core/tensor.h"

namespace skein::h5 {

// The attribute holding a dataset's CRC32C (of its elements' bytes as stored, native order).
inline constexpr const char* kChecksumAttr = "crc32c";

// An hid_t with its close function, closed on destruction (negative ids are left alone).
struct Hid {
  hid_t id;
  herr_t (*close)(hid_t);
  Hid(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Hid() { if (id >= 0) close(id); }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  operator hid_t() const { return id; }
};

// Errors (naming `file`) when status < 0.
void check(herr_t status, const std::string& what, const std::string& file);

// A new file (truncating) / an existing one read-only; errors name the file.
hid_t create_file(const std::string& file);
hid_t open_file(const std::string& file);
hid_t create_group(hid_t parent, const std::string& name, const std::string& file);
hid_t open_group(hid_t parent, const std::string& name, const std::string& file);

void write_tensor(hid_t group, const std::string& name, const Tensor& t, const std::string& file);
// The dataset `name` of `group` (`group_path` is for messages) as a new cpu tensor.
Tensor read_tensor(hid_t group, const std::string& group_path, const std::string& name, const std::string& file);
// The names of a group's links, in name order.
std::vector<std::string> list_group(hid_t group, const std::string& group_path, const std::string& file);
// Every dataset of the group `name` under file_id.
std::map<std::string, Tensor> read_group(hid_t file_id, const std::string& name, const std::string& file);

void write_attr_i64(hid_t obj, const std::string& name, int64_t v, const std::string& file);
void write_attr_str(hid_t obj, const std::string& name, const std::string& v, const std::string& file);
bool has_attr(hid_t obj, const std::string& name);
int64_t read_attr_i64(hid_t obj, const std::string& name, const std::string& file);
std::string read_attr_str(hid_t obj, const std::string& name, const std::string& file);
// name -> value of every int64 attribute on obj.
std::map<std::string, int64_t> read_attrs_i64(hid_t obj, const std::string& file);

// fsync(2) of a file or folder (best effort: a path that cannot be opened is skipped).
void fsync_path(const std::string& path);

}  // namespace skein::h5
