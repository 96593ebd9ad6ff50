// prep.h — `skein prep` as a library function: text files in, one HDF5 token file out
// (format in data/token_file.h). The CLI wraps it.
//
// Documents: every input file is one document, or, with doc_separator set, the pieces of each
// file between occurrences of that string. Empty documents are skipped. Inputs are files,
// folders (all regular files below, recursively, in sorted path order) or "-" (stdin), taken
// in the order given. Each document is tokenized and followed by eos_id.
//
// Split: by document, deterministic in `seed`: round(val_fraction * documents) of them
// (at least 1 and at most documents - 1 when val_fraction > 0 and there are >= 2) go to val.
// With a single document its tokens are split instead: the last val_fraction of them go to val.
//
// Tokenizer: from a spec ("bytes", "bpe:path/tokenizer.json"), or, with
// train_tokenizer_vocab > 0, a BPE trained on (a seeded sample of at most
// train_tokenizer_sample_mb of) the documents and saved as tokenizer.json next to the output.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace skein {

struct PrepOptions {
  std::vector<std::string> inputs;   // files, folders, or "-" for stdin
  std::string output;                // the .h5 token file to write
  std::string tokenizer = "bytes";   // spec for make_tokenizer (unused when training one)
  int64_t train_tokenizer_vocab = 0; // > 0: train a BPE with this vocabulary on the corpus
  double train_tokenizer_sample_mb = 64;
  std::string doc_separator;         // "" : one document per file
  double val_fraction = 0.05;        // in [0, 1)
  uint64_t seed = 1234;              // which documents go to val, and the BPE sample
  int compression = 4;               // deflate level 0..9
  bool progress = true;              // progress bar with ETA on stderr
  std::istream* stdin_stream = nullptr;  // what "-" reads (nullptr: std::cin)
};

struct PrepSummary {
  std::string output;
  std::string tokenizer_path;  // the saved tokenizer.json when one was trained, else ""
  int64_t documents = 0, train_documents = 0, val_documents = 0, skipped_empty = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t bytes = 0;  // text bytes tokenized
  double seconds = 0;
};

PrepSummary prep(const PrepOptions& opt);

// The input list expanded: folders to their regular files (recursive, sorted by path), "-"
// kept as is. A missing input is an Error naming it.
std::vector<std::string> prep_input_files(const std::vector<std::string>& inputs);

}  // namespace skein
