// token_file.h — the HDF5 token file that `skein prep` writes and the Loader reads: a writer
// (crash-safe: written under a temporary name, renamed on finalize) and a validating reader.
//
// Format (format_version 1), one HDF5 file:
//   /train/tokens       1-D, uint16 when vocab_size <= 65536 else uint32; chunked along the
//                       single axis (extendible), optionally shuffle + deflate-compressed, every
//                       chunk with a fletcher32 checksum (corruption is detected). The token ids
//                       of the split's documents, concatenated; each document ends with eos_id.
//   /train/doc_offsets  1-D int64, stored like the tokens: the start offset (into
//                       /train/tokens) of each document; non-decreasing, first 0, each <= the
//                       token count.
//   /val/tokens, /val/doc_offsets   the same for the held-out split (may be empty).
//   attributes on "/":  format_version (int, 1), tokenizer (string: Tokenizer::identity(),
//                       "bytes", the tokenizer.json text, or an hf header line + tokenizer.json),
//                       tokenizer_kind (string, "bytes" | "hf" |
//                       "bpe"), vocab_size (int64), eos_id (int64).
// Strings are variable-length UTF-8, so h5py reads them as str.
//
// Every failure is a skein::Error naming the file and the dataset or attribute involved;
// HDF5's own error-stack printing is switched off. HDF5 here is the serial library: use a
// TokenFile from one thread at a time.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace skein {

class Tokenizer;

// Writes a token file. Nothing appears under `path` until finalize() succeeds; a writer
// destroyed before finalize() removes its temporary file.
class TokenFileWriter {
 public:
  // compression: deflate level 0 (none) .. 9. chunk: elements per HDF5 chunk.
  TokenFileWriter(const std::string& path, const std::string& tokenizer_identity,
                  const std::string& tokenizer_kind, int64_t vocab_size, int64_t eos_id,
                  int compression = 4, int64_t chunk = 1 << 14);
  TokenFileWriter(const std::string& path, const Tokenizer& tokenizer, int compression = 4,
                  int64_t chunk = 1 << 14);
  ~TokenFileWriter();
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;

  // Appends one document (its ids, eos included if wanted) to split "train" or "val".
  void append(const std::string& split, const std::vector<int64_t>& ids);
  // Flushes, closes and renames the temporary file to `path`.
  void finalize();

  int64_t tokens(const std::string& split) const;     // appended so far
  int64_t documents(const std::string& split) const;
  const std::string& path() const { return path_; }

 private:
  void create(int compression, const std::string& identity, const std::string& kind, int64_t vocab_size,
              int64_t eos_id);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

struct TokenFileImpl;  // token_file.cpp

// One split of an open token file: a cheap handle (copies share the open file).
class TokenSplit {
 public:
  const std::string& name() const;
  int64_t size() const;  // tokens
  int64_t num_documents() const;
  const std::vector<int64_t>& doc_offsets() const;
  // Tokens [start, start + n) as ids; checks the range and every id < vocab_size (an
  // out-of-range id is an Error naming the file, dataset and position).
  std::vector<int64_t> read(int64_t start, int64_t n) const;
  void read(int64_t start, int64_t n, int64_t* out) const;  // out: n ids

 private:
  friend class TokenFile;
  std::shared_ptr<const TokenFileImpl> file_;
  int index_ = 0;  // 0 train, 1 val
};

// An open token file: a cheap handle (copies share the open file; it closes with the last).
class TokenFile {
 public:
  // Opens and validates the whole layout (attributes, datasets, dtypes, ranks, offsets).
  // Token ids are checked against vocab_size as they are read (TokenSplit::read).
  static TokenFile open(const std::string& path);

  const std::string& path() const;
  int format_version() const;
  const std::string& tokenizer_identity() const;  // for tokenizer_from_identity()
  const std::string& tokenizer_kind() const;
  int64_t vocab_size() const;
  int64_t eos_id() const;
  // "train" or "val"; any other name is an Error.
  const TokenSplit& split(const std::string& name) const;

 private:
  std::shared_ptr<const TokenFileImpl> impl_;
  TokenSplit splits_[2];
};

}  // namespace skein
