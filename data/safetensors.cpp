// safetensors.cpp — the safetensors reader and writer, and model folders of shards (see
// safetensors.h).
#include "data/safetensors.h"
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit
const char* const kIndexFile = "model.safetensors.index.json";
const char* const kSingleFile = "model.safetensors";

struct DtypeInfo {
  const char* name;
  uint64_t size;   // bytes per element (0: sub-byte, never supported)
  bool readable;   // skein reads it
};

// Every dtype of the format; the ones skein does not read are still known, so the error can
// say "not supported" rather than "unknown".
const DtypeInfo kDtypes[] = {
    {"F32", 4, true},      {"F16", 2, true},      {"BF16", 2, true},     {"F64", 8, true},
    {"I64", 8, true},      {"I32", 4, true},      {"BOOL", 1, false},    {"U8", 1, false},
    {"I8", 1, false},      {"I16", 2, false},     {"U16", 2, false},     {"U32", 4, false},
    {"U64", 8, false},     {"C64", 8, false},     {"F8_E4M3", 1, false}, {"F8_E5M2", 1, false},
    {"F8_E8M0", 1, false}, {"F6_E2M3", 0, false}, {"F6_E3M2", 0, false}, {"F4", 0, false},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

DType skein_dtype(const std::string& name, const SafetensorsRead& opts) {
  if (name == "F64") return DType::f64;
  if (name == "I64") return DType::i64;
  if (name == "I32") return DType::i32;
  if (name == "BF16" && opts.keep_bf16) return DType::bf16;
  return DType::f32;  // F32, F16, BF16
}

const char* file_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::bf16: return "BF16";
  }
  return "?";
}

// reference: IEEE 754 binary16; subnormals are mant * 2^-24.
float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0) {
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  const uint32_t bits = exp == 31 ? sign | 0x7F800000u | (mant << 13) : sign | ((exp + 112) << 23) | (mant << 13);
  return std::bit_cast<float>(bits);
}


struct Entry {
  std::string name, dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

template <typename... Args>
[[noreturn]] void fail(const std::string& source, const Args&... args) {
  throw Error(detail::concat("safetensors ", source, ": ", args...));
}

// Parses JSON, rejecting a key repeated within one object (the format forbids duplicates).
json parse_json_strict(const std::string& text, const std::string& source, const char* what) {
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    else if (event == json::parse_event_t::object_end) open_objects.pop_back();
    else if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second)
      fail(source, what, " repeats the key '", parsed.get<std::string>(), "'");
    return true;
  };
  try {
    return json::parse(text, callback);
  } catch (const json::exception& e) {
    fail(source, what, " is not valid JSON (", e.what(), ")");
  }
}

uint64_t unsigned_of(const json& v, const std::string& source, const std::string& name, const char* key) {
  if (!v.is_number_unsigned())
    fail(source, "tensor '", name, "': ", key, " must hold non-negative integers, got ", v.dump());
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const json& info, const std::string& source) {
  if (!info.is_object()) fail(source, "tensor '", name, "': entry must be an object, got ", info.dump());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail(source, "tensor '", name, "': missing \"", key, "\"");
  Entry e;
  e.name = name;
  if (!info["dtype"].is_string()) fail(source, "tensor '", name, "': dtype must be a string, got ", info["dtype"].dump());
  e.dtype = info["dtype"].get<std::string>();
  const DtypeInfo* dt = find_dtype(e.dtype);
  if (!dt) fail(source, "tensor '", name, "': unknown dtype '", e.dtype, "'");
  if (!dt->readable)
    fail(source, "tensor '", name, "': dtype ", e.dtype, " is not supported (F32, F16, BF16, F64, I64, I32)");
  const json& shape = info["shape"];
  if (!shape.is_array()) fail(source, "tensor '", name, "': shape must be an array, got ", shape.dump());
  uint64_t numel = 1;
  for (const json& d : shape) {
    const uint64_t n = unsigned_of(d, source, name, "shape");
    if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel))
      fail(source, "tensor '", name, "': shape ", shape.dump(), " overflows");
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(source, "tensor '", name, "': data_offsets must be [begin, end], got ", offsets.dump());
  e.begin = unsigned_of(offsets[0], source, name, "data_offsets");
  e.end = unsigned_of(offsets[1], source, name, "data_offsets");
  if (e.begin > e.end) fail(source, "tensor '", name, "': data_offsets ", offsets.dump(), " end before they begin");
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, dt->size, &bytes) || bytes != e.end - e.begin)
    fail(source, "tensor '", name, "': shape ", shape_str(e.shape), " of dtype ", e.dtype, " needs ", numel, " x ",
         dt->size, " bytes but data_offsets ", offsets.dump(), " hold ", e.end - e.begin);
  return e;
}

// The tensors of a header, checked to tile the data buffer of `buffer_size` bytes exactly.
std::vector<Entry> parse_header(const std::string& text, uint64_t buffer_size, const std::string& source,
                                StringMap* metadata) {
  const json header = parse_json_strict(text, source, "header");
  if (!header.is_object()) fail(source, "header must be a JSON object, got ", header.type_name());
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (info.is_null()) continue;
      if (!info.is_object()) fail(source, "__metadata__ must be an object of strings, got ", info.dump());
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail(source, "__metadata__ '", k, "' must be a string, got ", v.dump());
        if (metadata) (*metadata)[k] = v.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, info, source));
    const Entry& e = entries.back();
    if (e.end > buffer_size)
      fail(source, "tensor '", name, "': data_offsets [", e.begin, ", ", e.end, "] run past the end of the data (",
           buffer_size, " bytes)");
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < covered)
      fail(source, "tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end, "] overlap tensor '",
           entries[i - 1].name, "' (which ends at ", covered, ")");
    if (e.begin > covered)
      fail(source, "tensor '", e.name, "': a gap of ", e.begin - covered, " bytes before it at ", covered);
    covered = e.end;
  }
  if (covered != buffer_size)
    fail(source, "the tensors cover ", covered, " bytes of the data but it has ", buffer_size,
         " (trailing bytes or a missing tensor)");
  return entries;
}

// Reads `n` bytes of the file at `offset` into dst; throws when it cannot.
using ReadAt = std::function<void(uint64_t offset, uint64_t n, char* dst)>;

TensorMap read_safetensors(uint64_t file_size, const ReadAt& read_at, const std::string& source, StringMap* metadata,
                           const SafetensorsRead& opts) {
  if (file_size < 8) fail(source, "the file has ", file_size, " bytes, fewer than the 8 of the header length");
  uint64_t n = 0;
  read_at(0, 8, reinterpret_cast<char*>(&n));
  if (n > kMaxHeaderBytes) fail(source, "header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (n > file_size - 8) fail(source, "header length ", n, " runs past the end of the file (", file_size, " bytes)");
  std::string text(n, '\0');
  read_at(8, n, text.data());
  const uint64_t data_start = 8 + n;
  TensorMap out;
  for (const Entry& e : parse_header(text, file_size - data_start, source, metadata)) {
    Tensor t = Tensor::empty(e.shape, skein_dtype(e.dtype, opts));
    const uint64_t bytes = e.end - e.begin, at = data_start + e.begin;
    if (bytes == 0) {
      // a zero-size tensor: nothing to read
    } else if (t.dtype() == DType::bf16) {
      read_at(at, bytes, static_cast<char*>(t.raw_data()));  // the bits as they are: no f32 detour
    } else if (e.dtype == "F16" || e.dtype == "BF16") {
      std::vector<uint16_t> half(bytes / 2);
      read_at(at, bytes, reinterpret_cast<char*>(half.data()));
      float* dst = t.data<float>();
      for (size_t i = 0; i < half.size(); ++i) dst[i] = e.dtype == "F16" ? f16_to_f32(half[i]) : bf16_to_f32(half[i]);
    } else {
      read_at(at, bytes, static_cast<char*>(t.raw_data()));
    }
    out.emplace(e.name, t);
  }
  return out;
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

uint64_t nbytes(const Tensor& t) { return static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype()); }

}  // namespace

TensorMap load_safetensors(const std::string& path, StringMap* metadata, const SafetensorsRead& opts) {
  std::ifstream in(path, std::ios::binary);
  SKEIN_CHECK(in, "safetensors ", path, ": cannot open the file");
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  SKEIN_CHECK(!ec, "safetensors ", path, ": cannot read its size (", ec.message(), ")");
  auto read_at = [&](uint64_t offset, uint64_t n, char* dst) {
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(dst, static_cast<std::streamsize>(n));
    SKEIN_CHECK(in, "safetensors ", path, ": read of ", n, " bytes at ", offset, " failed");
  };
  return read_safetensors(size, read_at, path, metadata, opts);
}

TensorMap parse_safetensors(const std::string& bytes, const std::string& source, StringMap* metadata,
                            const SafetensorsRead& opts) {
  auto read_at = [&](uint64_t offset, uint64_t n, char* dst) {
    SKEIN_ASSERT(offset + n <= bytes.size(), "read past the checked size");
    std::memcpy(dst, bytes.data() + offset, n);
  };
  return read_safetensors(bytes.size(), read_at, source, metadata, opts);
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const StringMap& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SKEIN_CHECK(!name.empty() && name != "__metadata__", "save_safetensors ", path, ": invalid tensor name '", name, "'");
    SKEIN_CHECK(t.device() == Device::cpu, "save_safetensors ", path, ": tensor '", name, "' is not on the cpu");
    header[name] = {{"dtype", file_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + nbytes(t)}}};
    offset += nbytes(t);
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // the data starts 8-byte aligned
  const uint64_t n = text.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  SKEIN_CHECK(out, "save_safetensors: cannot create ", path);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(text.data(), static_cast<std::streamsize>(n));
  for (const auto& [name, t] : tensors) {
    Tensor c = t.contiguous();
    out.write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(nbytes(c)));
  }
  out.close();
  SKEIN_CHECK(out, "save_safetensors: writing ", path, " failed (disk full?)");
}

TensorMap load_safetensors_folder(const std::string& dir, const SafetensorsRead& opts) {
  const fs::path index_path = fs::path(dir) / kIndexFile, single = fs::path(dir) / kSingleFile;
  if (!fs::exists(index_path)) {
    SKEIN_CHECK(fs::exists(single), "safetensors folder ", dir, ": neither ", kSingleFile, " nor ", kIndexFile, " is there");
    return load_safetensors(single.string(), nullptr, opts);
  }
  const std::string source = index_path.string();
  std::ifstream in(index_path);
  SKEIN_CHECK(in, "safetensors ", source, ": cannot open the file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const json index = parse_json_strict(text, source, "index");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail(source, "needs a \"weight_map\" object of tensor name -> shard file");
  std::map<std::string, std::set<std::string>> listed;  // shard -> names
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail(source, "weight_map['", name, "'] must be a file name, got ", shard.dump());
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      fail(source, "weight_map['", name, "']: '", file, "' is not a file name in the folder");
    listed[file].insert(name);
  }
  TensorMap out;
  for (const auto& [file, names] : listed) {
    const std::string path = (fs::path(dir) / file).string();
    SKEIN_CHECK(fs::exists(path), "safetensors ", source, ": shard ", file, " (of '", *names.begin(), "') does not exist");
    TensorMap shard = load_safetensors(path, nullptr, opts);
    for (const std::string& name : names)
      if (!shard.count(name)) fail(source, "tensor '", name, "' is listed in ", file, " but is not there");
    for (auto& [name, t] : shard) {
      if (!names.count(name))
        fail(source, "tensor '", name, "' of ", file, " is not listed for that shard in the weight_map");
      out.emplace(name, t);
    }
  }
  return out;
}

std::vector<std::string> save_safetensors_folder(const std::string& dir, const TensorMap& tensors,
                                                 int64_t max_shard_bytes, const StringMap& metadata) {
  SKEIN_CHECK(max_shard_bytes > 0, "save_safetensors_folder ", dir, ": max_shard_bytes must be > 0, got ", max_shard_bytes);
  fs::create_directories(dir);
  const uint64_t limit = static_cast<uint64_t>(max_shard_bytes);
  uint64_t total = 0;
  std::vector<TensorMap> shards(1);
  uint64_t in_shard = 0;
  for (const auto& [name, t] : tensors) {
    if (!shards.back().empty() && in_shard + nbytes(t) > limit) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().emplace(name, t);
    in_shard += nbytes(t);
    total += nbytes(t);
  }
  if (shards.size() == 1) {
    save_safetensors((fs::path(dir) / kSingleFile).string(), tensors, metadata);
    return {kSingleFile};
  }
  std::vector<std::string> files;
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    files.push_back(shard_name(i, shards.size()));
    save_safetensors((fs::path(dir) / files.back()).string(), shards[i], metadata);
    for (const auto& entry : shards[i]) weight_map[entry.first] = files.back();
  }
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string path = (fs::path(dir) / kIndexFile).string();
  std::ofstream out(path);
  out << index.dump(2) << "\n";
  out.close();
  SKEIN_CHECK(out, "save_safetensors_folder: writing ", path, " failed (disk full?)");
  files.push_back(kIndexFile);
  return files;
}

}  // namespace skein
