// safetensors.h — reading and writing safetensors files (the Hugging Face weight format) and
// folders of them (one model.safetensors, or shards listed by model.safetensors.index.json).
//
// reference: https://github.com/huggingface/safetensors (README, safetensors/src/tensor.rs)
// A file is: u64 little-endian N, then N bytes of JSON header, then the byte buffer. The header
// maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
// the buffer, end one past), plus an optional "__metadata__" object of strings. Data is
// little-endian, row-major. The reader checks the whole header against the file (offsets in
// range, tensors tiling the buffer in order without overlaps or gaps, shape × dtype size equal
// to the byte length, known dtypes, valid JSON, no duplicate names): a malformed file is a
// skein::Error naming the file and the tensor.
//   Read:  F32 → f32, F16 and BF16 → f32 (widened exactly), F64 → f64, I64 → i64, I32 → i32;
//          BF16 → bf16 (the file's bits, no f32 detour) when the caller asks (SafetensorsRead).
//   Write: f32 → F32, f64 → F64, i64 → I64, i32 → I32, bf16 → BF16.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include "core/tensor.h"

namespace skein {

using TensorMap = std::map<std::string, Tensor>;
using StringMap = std::map<std::string, std::string>;

struct SafetensorsRead {
  bool keep_bf16 = false;  // BF16 tensors become bf16 tensors (else f32)
};

// Reads every tensor of a .safetensors file; `metadata` (if given) receives "__metadata__".
TensorMap load_safetensors(const std::string& path, StringMap* metadata = nullptr, const SafetensorsRead& opts = {});
// The same from the bytes of a file held in memory; `source` names it in errors.
TensorMap parse_safetensors(const std::string& bytes, const std::string& source, StringMap* metadata = nullptr,
                            const SafetensorsRead& opts = {});
// Writes the tensors (contiguous copies, in name order) with the header padded to a multiple
// of 8 bytes, as the reference writer does.
void save_safetensors(const std::string& path, const TensorMap& tensors, const StringMap& metadata = {});

// Every tensor of a model folder: <dir>/model.safetensors, or the shards named by the
// "weight_map" of <dir>/model.safetensors.index.json (each listed tensor must be in its shard,
// and each shard tensor must be listed).
TensorMap load_safetensors_folder(const std::string& dir, const SafetensorsRead& opts = {});
// Writes <dir>/model.safetensors when the tensors total at most max_shard_bytes, otherwise
// shards model-0000i-of-0000n.safetensors of at most max_shard_bytes each (a larger tensor gets
// a shard of its own, tensors in name order) and model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map": {name: shard}}). Returns the file names.
std::vector<std::string> save_safetensors_folder(const std::string& dir, const TensorMap& tensors,
                                                 int64_t max_shard_bytes, const StringMap& metadata = {});

}  // namespace skein
