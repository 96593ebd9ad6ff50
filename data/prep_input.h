// prep_input.h — what `skein prep` reads: inputs (files, folders, shell globs, "-" for stdin)
// expanded to files, each read whole and decompressed by its magic bytes (gzip via zlib, zstd via
// libzstd), then cut into documents: a text file is one document (or the pieces between
// doc_separator), a JSONL file (.jsonl / .ndjson, before any .gz / .zst) one document per line,
// the string field `text_field` of each object (nlohmann::json). A file that looks binary (a
// NUL byte, or mostly invalid UTF-8, in its first 64 KiB) is refused unless allow_binary.
// Parquet is not read: Debian 12 has no Apache Arrow / parquet-cpp package (convert Parquet to
// JSONL first, e.g. with pandas or duckdb).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace skein {

struct PrepInputOptions {
  std::string doc_separator;          // text files: "" = one document per file
  std::string text_field = "text";    // JSONL files: the field holding each document
  bool allow_binary = false;
  std::istream* stdin_stream = nullptr;  // what "-" reads (nullptr: std::cin)
};

// The input list expanded: folders to their regular files (recursive, sorted by path), a
// pattern with * ? [ that names no existing path to its matches (glob(3), sorted; none is an
// error naming it), "-" kept as is. A missing input is an Error naming it.
std::vector<std::string> prep_input_files(const std::vector<std::string>& inputs);

// The decompressed bytes of a file ("-": stdin, read once and kept by the caller).
std::string read_input_file(const std::string& file);

// Whether a file name says JSONL (".jsonl" or ".ndjson", after removing ".gz" / ".zst").
bool is_jsonl_name(const std::string& file);

// "" when `text` (the start of a file) looks like text; else why not, e.g. "a NUL byte at
// offset 12".
std::string binary_reason(std::string_view text);

// Calls fn(document) for every non-empty document of `text` (the content of `file`, for
// messages), in order; returns the number of empty documents skipped. JSONL errors name the
// file, line and field.
int64_t for_each_document(const std::string& file, std::string_view text, const PrepInputOptions& opt,
                          const std::function<void(std::string_view)>& fn);

}  // namespace skein
