// prep.cpp — corpus files -> documents -> token ids -> HDF5 token file (see prep.h).
#include "data/prep.h"
#include <unistd.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <numeric>
#include "core/error.h"
#include "core/rng.h"
#include "data/bpe.h"
#include "data/token_file.h"
#include "data/tokenizer.h"

namespace skein {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The texts of the inputs, read on demand (stdin is read once and kept).
class Sources {
 public:
  Sources(std::vector<std::string> files, std::istream* in) : files_(std::move(files)), in_(in) {}
  size_t size() const { return files_.size(); }
  const std::string& name(size_t i) const { return files_[i]; }
  std::string text(size_t i) {
    if (files_[i] == "-") {
      if (!stdin_read_) {
        std::istream& is = in_ ? *in_ : std::cin;
        stdin_text_.assign(std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>());
        stdin_read_ = true;
      }
      return stdin_text_;
    }
    std::ifstream f(files_[i], std::ios::binary);
    SKEIN_CHECK(f, "prep: cannot read '", files_[i], "'");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }

 private:
  std::vector<std::string> files_;
  std::istream* in_;
  std::string stdin_text_;
  bool stdin_read_ = false;
};

struct Doc {
  size_t source;
  size_t offset, length;  // bytes within the source text
};

// The non-empty documents of one text: the whole text, or the pieces between separators.
void split_documents(const std::string& text, const std::string& sep, size_t source,
                     std::vector<Doc>* docs, int64_t* skipped) {
  size_t start = 0;
  while (true) {
    size_t end = sep.empty() ? std::string::npos : text.find(sep, start);
    size_t stop = end == std::string::npos ? text.size() : end;
    if (stop > start) docs->push_back({source, start, stop - start});
    else ++*skipped;
    if (end == std::string::npos) break;
    start = end + sep.size();
  }
}

// A Philox permutation of [0, n) for the split and the tokenizer sample (tag tells them apart).
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint32_t tag) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const auto u = static_cast<uint64_t>(i);
    auto w = philox4x32({static_cast<uint32_t>(u), static_cast<uint32_t>(u >> 32), tag, 0},
                        {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
    uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
    std::swap(p[static_cast<size_t>(i)], p[r % static_cast<uint64_t>(i + 1)]);
  }
  return p;
}

// Progress on stderr: a redrawn bar with ETA on a terminal, else a line every ~10%.
class Progress {
 public:
  Progress(bool on, int64_t total) : on_(on), tty_(isatty(fileno(stderr)) != 0), total_(total) {}
  void update(int64_t done) {
    if (!on_ || total_ <= 0) return;
    double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    double t = seconds_since(start_);
    if (tty_) {
      if (t - last_ < 0.1 && done < total_) return;
      last_ = t;
      int filled = static_cast<int>(frac * 30);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(30, '.');
      std::fprintf(stderr, "\rprep [%s] %3d%%  %.1f/%.1f MB  ETA %s ", bar.c_str(),
                   static_cast<int>(frac * 100), done / 1e6, total_ / 1e6, eta(frac, t).c_str());
      std::fflush(stderr);
    } else {
      int decile = static_cast<int>(frac * 10);
      if (decile <= decile_) return;
      decile_ = decile;
      std::fprintf(stderr, "prep: %d%% (%.1f/%.1f MB, %.1f s, ETA %s)\n", decile * 10, done / 1e6,
                   total_ / 1e6, t, eta(frac, t).c_str());
    }
  }
  void finish() {
    if (on_ && tty_ && total_ > 0) std::fprintf(stderr, "\n");
  }

 private:
  static std::string eta(double frac, double t) {
    if (frac <= 0) return "?";
    auto s = static_cast<int64_t>(std::llround(t * (1 - frac) / frac));
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
    return buf;
  }
  bool on_, tty_;
  int64_t total_;
  Clock::time_point start_ = Clock::now();
  double last_ = -1;
  int decile_ = 0;
};

// Cuts s to at most n bytes without splitting a UTF-8 sequence.
std::string utf8_prefix(const std::string& s, size_t n) {
  if (n >= s.size()) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// A seeded sample of at most max_bytes of document text for BPE training.
std::vector<std::string> tokenizer_sample(Sources& src, const std::vector<Doc>& docs, double max_mb,
                                          uint64_t seed) {
  auto budget = static_cast<size_t>(std::max(0.0, max_mb) * 1e6);
  std::vector<int64_t> order = permutation(static_cast<int64_t>(docs.size()), seed, 0x42504531u);
  std::vector<std::pair<size_t, size_t>> picked;  // (doc, bytes to take)
  for (int64_t d : order) {
    if (budget == 0) break;
    size_t take = std::min(budget, docs[static_cast<size_t>(d)].length);
    picked.push_back({static_cast<size_t>(d), take});
    budget -= take;
  }
  std::sort(picked.begin(), picked.end());  // read each source once, in order
  std::vector<std::string> texts;
  size_t loaded = SIZE_MAX;
  std::string text;
  for (auto [d, take] : picked) {
    if (docs[d].source != loaded) { text = src.text(docs[d].source); loaded = docs[d].source; }
    texts.push_back(utf8_prefix(text.substr(docs[d].offset, docs[d].length), take));
  }
  return texts;
}

}  // namespace

std::vector<std::string> prep_input_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (in == "-") { files.push_back(in); continue; }
    std::error_code ec;
    SKEIN_CHECK(fs::exists(in, ec), "prep: input '", in, "' does not exist");
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file()) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      SKEIN_CHECK(fs::is_regular_file(in, ec), "prep: input '", in, "' is not a regular file or folder");
      files.push_back(in);
    }
  }
  return files;
}

PrepSummary prep(const PrepOptions& opt) {
  const auto t0 = Clock::now();
  SKEIN_CHECK(!opt.inputs.empty(), "prep: no inputs given");
  SKEIN_CHECK(!opt.output.empty(), "prep: no output path given");
  SKEIN_CHECK(opt.val_fraction >= 0 && opt.val_fraction < 1, "prep: val_fraction ", opt.val_fraction,
              " must be in [0, 1)");
  // Never read our own outputs back in (an output folder inside an input folder).
  std::vector<std::string> files = prep_input_files(opt.inputs);
  fs::path out_dir = fs::path(opt.output).parent_path();
  std::erase_if(files, [&](const std::string& f) {
    std::error_code ec;
    return f != "-" && (fs::equivalent(f, opt.output, ec) ||
                        (opt.train_tokenizer_vocab > 0 && fs::equivalent(f, out_dir / "tokenizer.json", ec)));
  });
  SKEIN_CHECK(!files.empty(), "prep: the inputs hold no files");
  Sources src(std::move(files), opt.stdin_stream);

  // Pass 1: find the documents.
  PrepSummary sum;
  sum.output = opt.output;
  std::vector<Doc> docs;
  for (size_t i = 0; i < src.size(); ++i) {
    if (opt.doc_separator.empty() && src.name(i) != "-") {
      auto size = static_cast<size_t>(fs::file_size(src.name(i)));
      if (size > 0) docs.push_back({i, 0, size});
      else ++sum.skipped_empty;
    } else {
      split_documents(src.text(i), opt.doc_separator, i, &docs, &sum.skipped_empty);
    }
  }
  SKEIN_CHECK(!docs.empty(), "prep: the ", src.size(), " input file(s) hold no non-empty document");
  const auto n_docs = static_cast<int64_t>(docs.size());

  // Tokenizer.
  std::unique_ptr<Tokenizer> tok;
  if (opt.train_tokenizer_vocab > 0) {
    std::vector<std::string> sample = tokenizer_sample(src, docs, opt.train_tokenizer_sample_mb, opt.seed);
    auto bpe = std::make_unique<BpeTokenizer>(train_bpe(sample, opt.train_tokenizer_vocab));
    sum.tokenizer_path = (out_dir / "tokenizer.json").string();
    if (!out_dir.empty()) fs::create_directories(out_dir);
    bpe->save(sum.tokenizer_path);
    tok = std::move(bpe);
  } else {
    tok = make_tokenizer(opt.tokenizer);
  }

  // Which documents go to val.
  std::vector<uint8_t> is_val(docs.size(), 0);
  if (n_docs >= 2 && opt.val_fraction > 0) {
    int64_t n_val =
        std::clamp<int64_t>(std::llround(opt.val_fraction * static_cast<double>(n_docs)), 1, n_docs - 1);
    std::vector<int64_t> perm = permutation(n_docs, opt.seed, 0x56414c31u);
    for (int64_t k = 0; k < n_val; ++k) is_val[static_cast<size_t>(perm[static_cast<size_t>(k)])] = 1;
  }

  // Pass 2: tokenize in document order and write.
  int64_t total = 0;
  for (const Doc& d : docs) total += static_cast<int64_t>(d.length);
  Progress progress(opt.progress, total);
  TokenFileWriter writer(opt.output, *tok, opt.compression);
  size_t loaded = SIZE_MAX;
  std::string text;
  for (size_t k = 0; k < docs.size(); ++k) {
    const Doc& d = docs[k];
    if (d.source != loaded) { text = src.text(d.source); loaded = d.source; }
    SKEIN_CHECK(d.offset + d.length <= text.size(), "prep: '", src.name(d.source),
                "' changed while being read");
    std::vector<int64_t> ids = tok->encode(std::string_view(text).substr(d.offset, d.length));
    ids.push_back(tok->eos_id());
    if (n_docs == 1) {  // split the tokens of the only document
      auto len = static_cast<int64_t>(ids.size());
      int64_t n_val = opt.val_fraction > 0 && len >= 2
          ? std::clamp<int64_t>(std::llround(opt.val_fraction * static_cast<double>(len)), 1, len - 1) : 0;
      writer.append("train", std::vector<int64_t>(ids.begin(), ids.end() - n_val));
      if (n_val > 0) writer.append("val", std::vector<int64_t>(ids.end() - n_val, ids.end()));
    } else {
      writer.append(is_val[k] ? "val" : "train", ids);
    }
    sum.bytes += static_cast<int64_t>(d.length);
    progress.update(sum.bytes);
  }
  progress.finish();
  sum.documents = n_docs;
  sum.train_documents = writer.documents("train");
  sum.val_documents = writer.documents("val");
  sum.train_tokens = writer.tokens("train");
  sum.val_tokens = writer.tokens("val");
  writer.finalize();
  sum.seconds = seconds_since(t0);
  return sum;
}

}  // namespace skein
