// prep.h — `skein prep` as a library function: text files in, one HDF5 token file out
// (format in data/token_file.h). The CLI wraps it.
//
// Documents: every text file is one document, or, with doc_separator set, the pieces of each
// file between occurrences of that string; every line of a JSONL file (.jsonl / .ndjson) is
// one, its `text_field`. Files may be gzip or zstd compressed; binary files are refused unless
// allow_binary. Empty documents are skipped. Inputs are files, folders (all regular files
// below, recursively, in sorted path order), glob patterns or "-" (stdin), taken in the order
// given (data/prep_input.h). Each document is tokenized (on `threads` threads, in chunks; a long
// document in ~1 MB pieces cut where the pre-split ends a piece anyway) and followed by
// eos_id; the output is the same for any thread count.
//
// Split: by document, deterministic in `seed`: round(val_fraction * documents) of them (at
// most documents - 1) go to val, when that is at least one. With fewer documents than that
// needs (e.g. 3 documents at 0.05) the fraction still holds: the last val_fraction of the text
// goes to val (the documents after the cut, and the tail of the cut document's tokens), with a
// note; a single document is split this way too.
//
// Tokenizer: from a spec ("bytes", "bpe:path/tokenizer.json"), or, with
// train_tokenizer_vocab > 0, a BPE trained on (a seeded sample of at most
// train_tokenizer_sample_mb of) the documents and saved as tokenizer.json next to the output.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>
#include "data/prep_input.h"  // prep_input_files

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
  std::string text_field = "text";   // JSONL inputs: the field holding each document
  bool allow_binary = false;         // tokenise files that look binary instead of refusing them
  int threads = 0;                   // tokenising threads (0: the core count)
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

}  // namespace skein
