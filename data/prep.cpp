// prep.cpp — corpus files -> documents -> token ids (multi-threaded) -> HDF5 token file (see prep.h).
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
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include "core/error.h"
#include "core/rng.h"
#include "data/bpe.h"
#include "data/prep_input.h"
#include "data/token_file.h"
#include "data/tokenizer.h"

namespace skein {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The documents of the inputs in order, file by file (stdin read once and kept).
class Corpus {
 public:
  Corpus(std::vector<std::string> files, const PrepInputOptions& opt) : files_(std::move(files)), opt_(opt) {}
  size_t files() const { return files_.size(); }
  // fn(document) for every non-empty document; returns the empty ones skipped.
  int64_t for_each(const std::function<void(std::string_view)>& fn) {
    int64_t skipped = 0;
    for (const std::string& f : files_) {
      if (f == "-") {
        if (!stdin_read_) {
          std::istream& is = opt_.stdin_stream ? *opt_.stdin_stream : std::cin;
          stdin_text_.assign(std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>());
          stdin_read_ = true;
        }
        skipped += for_each_document("<stdin>", stdin_text_, opt_, fn);
      } else {
        const std::string text = read_input_file(f);
        skipped += for_each_document(f, text, opt_, fn);
      }
    }
    return skipped;
  }

 private:
  std::vector<std::string> files_;
  PrepInputOptions opt_;
  std::string stdin_text_;
  bool stdin_read_ = false;
};

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

// Progress on stderr: documents/s, MB/s and ETA, redrawn on a terminal, else a line every ~10%.
class Progress {
 public:
  Progress(bool on, int64_t total_bytes, int64_t total_docs)
      : on_(on), tty_(isatty(fileno(stderr)) != 0), total_(total_bytes), docs_total_(total_docs) {}
  void update(int64_t done, int64_t docs) {
    if (!on_ || total_ <= 0) return;
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    const double t = std::max(1e-9, seconds_since(start_));
    char rates[160];
    std::snprintf(rates, sizeof rates, "%lld/%lld docs, %.0f docs/s, %.1f MB/s, ETA %s",
                  static_cast<long long>(docs), static_cast<long long>(docs_total_), docs / t, done / 1e6 / t,
                  eta(frac, t).c_str());
    if (tty_) {
      if (t - last_ < 0.1 && done < total_) return;
      last_ = t;
      std::string bar(static_cast<size_t>(frac * 30), '#');
      bar.resize(30, '.');
      std::fprintf(stderr, "\rprep [%s] %3d%%  %s ", bar.c_str(), static_cast<int>(frac * 100), rates);
      std::fflush(stderr);
    } else {
      const int decile = static_cast<int>(frac * 10);
      if (decile <= decile_) return;
      decile_ = decile;
      std::fprintf(stderr, "prep: %d%% (%.1f/%.1f MB, %s)\n", decile * 10, done / 1e6, total_ / 1e6, rates);
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
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    return buf;
  }
  bool on_, tty_;
  int64_t total_, docs_total_;
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

// A seeded sample of at most max_mb of document text for BPE training.
std::vector<std::string> tokenizer_sample(Corpus& corpus, const std::vector<int64_t>& doc_bytes, double max_mb,
                                          uint64_t seed) {
  auto budget = static_cast<size_t>(std::max(0.0, max_mb) * 1e6);
  std::vector<int64_t> order = permutation(static_cast<int64_t>(doc_bytes.size()), seed, 0x42504531u);
  std::vector<size_t> take(doc_bytes.size(), 0);  // bytes to take from each document
  for (int64_t d : order) {
    if (budget == 0) break;
    take[static_cast<size_t>(d)] = std::min(budget, static_cast<size_t>(doc_bytes[static_cast<size_t>(d)]));
    budget -= take[static_cast<size_t>(d)];
  }
  std::vector<std::string> texts;
  size_t k = 0;
  corpus.for_each([&](std::string_view doc) {
    if (take[k] > 0) texts.push_back(utf8_prefix(std::string(doc), take[k]));
    ++k;
  });
  return texts;
}

// Which documents go to val: whole documents when round(val_fraction * N) >= 1 (at least one
// stays in train); with too few documents for that, the last val_fraction of the bytes: the
// documents after the cut, and the cut document's tokens in proportion.
struct SplitPlan {
  std::vector<uint8_t> is_val;
  int64_t cut_doc = -1;     // the document split by its tokens (-1: none)
  double cut_val_share = 0; // of its tokens, the share that goes to val
};

SplitPlan plan_split(const std::vector<int64_t>& doc_bytes, double fraction, uint64_t seed) {
  const auto n = static_cast<int64_t>(doc_bytes.size());
  SplitPlan plan;
  plan.is_val.assign(doc_bytes.size(), 0);
  if (fraction <= 0) return plan;
  const int64_t n_val = std::llround(fraction * static_cast<double>(n));
  if (n >= 2 && n_val >= 1) {
    std::vector<int64_t> perm = permutation(n, seed, 0x56414c31u);
    for (int64_t k = 0; k < std::min(n_val, n - 1); ++k) plan.is_val[static_cast<size_t>(perm[static_cast<size_t>(k)])] = 1;
    return plan;
  }
  const double total = static_cast<double>(std::accumulate(doc_bytes.begin(), doc_bytes.end(), int64_t{0}));
  const double cut = (1 - fraction) * total;
  double before = 0;
  for (int64_t d = 0; d < n; ++d) {
    const double len = static_cast<double>(doc_bytes[static_cast<size_t>(d)]);
    if (plan.cut_doc < 0 && before + len > cut) {
      plan.cut_doc = d;
      plan.cut_val_share = (before + len - cut) / len;
    } else if (plan.cut_doc >= 0) {
      plan.is_val[static_cast<size_t>(d)] = 1;
    }
    before += len;
  }
  return plan;
}

// Where a long document may be cut so that tokenising the pieces apart gives the ids of the
// whole: before an ASCII space that follows a printable ASCII character. The GPT-2 pre-split
// (data/pretokenize.cpp) always ends a piece there (no run of letters, numbers or other
// characters takes in a space, a contraction never does, and the piece before ends the same
// whether the text goes on or stops), and BPE merges only within pieces; byte tokens are
// cut anywhere. Cuts near every `every` bytes; {0, size} when there is none.
std::vector<size_t> safe_cuts(std::string_view doc, size_t every) {
  std::vector<size_t> cuts = {0};
  for (size_t target = every; target < doc.size(); target = cuts.back() + every) {
    size_t p = target;
    while (p < doc.size() && !(doc[p] == ' ' && doc[p - 1] > ' ' && doc[p - 1] < 0x7f)) ++p;
    if (p >= doc.size()) break;
    cuts.push_back(p);
  }
  cuts.push_back(doc.size());
  return cuts;
}

// Tokenizes docs[i] into ids[i] (template ids around, eos appended) on `threads` threads, each taking the next piece
// of work in turn: a document, or with more than one thread, a ~1 MB piece of a long one
// (cut by safe_cuts; the pieces' ids joined in order are the document's).
void encode_all(const Tokenizer& tok, const std::vector<std::string>& docs, std::vector<std::vector<int64_t>>& ids,
                int threads) {
  struct Unit {
    size_t doc, part;
    std::string_view text;
  };
  const bool cuttable = threads > 1 && tok.cut_before_space_is_safe();
  std::vector<Unit> units;
  std::vector<std::vector<std::vector<int64_t>>> parts(docs.size());
  for (size_t d = 0; d < docs.size(); ++d) {
    const std::vector<size_t> cuts = cuttable ? safe_cuts(docs[d], size_t{1} << 20) : std::vector<size_t>{0, docs[d].size()};
    parts[d].resize(cuts.size() - 1);
    for (size_t k = 0; k + 1 < cuts.size(); ++k)
      units.push_back({d, k, std::string_view(docs[d]).substr(cuts[k], cuts[k + 1] - cuts[k])});
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    try {
      // Blocks of units: one encode_batch call each (skein's BPE sets up once per call).
      constexpr size_t kBlock = 64;
      std::vector<std::string_view> texts;
      for (size_t i0; (i0 = next.fetch_add(kBlock)) < units.size();) {
        const size_t i1 = std::min(units.size(), i0 + kBlock);
        texts.clear();
        for (size_t i = i0; i < i1; ++i) texts.push_back(units[i].text);
        std::vector<std::vector<int64_t>> got = tok.encode_batch(texts);
        for (size_t i = i0; i < i1; ++i) parts[units[i].doc][units[i].part] = std::move(got[i - i0]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(units.size())); ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  // Each document: the template's prefix (e.g. Llama's BOS), its ids, the template's suffix, and
  // the end-of-document id unless the suffix already ends with it.
  const std::vector<int64_t> prefix = tok.prefix_ids(), suffix = tok.suffix_ids();
  ids.assign(docs.size(), {});
  for (size_t d = 0; d < docs.size(); ++d) {
    ids[d] = prefix;
    for (auto& part : parts[d]) ids[d].insert(ids[d].end(), part.begin(), part.end());
    ids[d].insert(ids[d].end(), suffix.begin(), suffix.end());
    if (suffix.empty() || suffix.back() != tok.eos_id()) ids[d].push_back(tok.eos_id());
  }
}

}  // namespace

PrepSummary prep(const PrepOptions& opt) {
  const auto t0 = Clock::now();
  SKEIN_CHECK(!opt.inputs.empty(), "prep: no inputs given");
  SKEIN_CHECK(!opt.output.empty(), "prep: no output path given");
  SKEIN_CHECK(opt.val_fraction >= 0 && opt.val_fraction < 1, "prep: val_fraction ", opt.val_fraction,
              " must be in [0, 1)");
  SKEIN_CHECK(opt.threads >= 0, "prep: threads ", opt.threads, " must be >= 0");
  const int threads = opt.threads > 0 ? opt.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  // Never read our own outputs back in (an output folder inside an input folder).
  std::vector<std::string> files = prep_input_files(opt.inputs);
  fs::path out_dir = fs::path(opt.output).parent_path();
  std::erase_if(files, [&](const std::string& f) {
    std::error_code ec;
    return f != "-" && (fs::equivalent(f, opt.output, ec) ||
                        (opt.train_tokenizer_vocab > 0 && fs::equivalent(f, out_dir / "tokenizer.json", ec)));
  });
  SKEIN_CHECK(!files.empty(), "prep: the inputs hold no files");
  PrepInputOptions in;
  in.doc_separator = opt.doc_separator;
  in.text_field = opt.text_field;
  in.allow_binary = opt.allow_binary;
  in.stdin_stream = opt.stdin_stream;
  Corpus corpus(std::move(files), in);

  // Pass 1: find the documents (their sizes).
  PrepSummary sum;
  sum.output = opt.output;
  std::vector<int64_t> doc_bytes;
  sum.skipped_empty = corpus.for_each([&](std::string_view d) { doc_bytes.push_back(static_cast<int64_t>(d.size())); });
  SKEIN_CHECK(!doc_bytes.empty(), "prep: the ", corpus.files(), " input file(s) hold no non-empty document");
  const auto n_docs = static_cast<int64_t>(doc_bytes.size());

  // Tokenizer.
  std::unique_ptr<Tokenizer> tok;
  if (opt.train_tokenizer_vocab > 0) {
    std::vector<std::string> sample = tokenizer_sample(corpus, doc_bytes, opt.train_tokenizer_sample_mb, opt.seed);
    auto bpe = std::make_unique<BpeTokenizer>(train_bpe(sample, opt.train_tokenizer_vocab));
    sum.tokenizer_path = (out_dir / "tokenizer.json").string();
    if (!out_dir.empty()) fs::create_directories(out_dir);
    bpe->save(sum.tokenizer_path);
    tok = std::move(bpe);
  } else {
    tok = make_tokenizer(opt.tokenizer);
  }
  const SplitPlan plan = plan_split(doc_bytes, opt.val_fraction, opt.seed);
  if (plan.cut_doc >= 0 && n_docs >= 2 && opt.progress)
    std::fprintf(stderr, "prep: note: %lld documents are too few for a validation split by documents at "
                 "--val-fraction %g; the last %g of the text goes to validation instead\n",
                 static_cast<long long>(n_docs), opt.val_fraction, opt.val_fraction);

  // Pass 2: tokenize chunks of documents on `threads` threads; write in document order.
  const int64_t total = std::accumulate(doc_bytes.begin(), doc_bytes.end(), int64_t{0});
  Progress progress(opt.progress, total, n_docs);
  TokenFileWriter writer(opt.output, *tok, opt.compression);
  std::vector<std::string> chunk;
  std::vector<std::vector<int64_t>> ids;
  size_t chunk_bytes = 0;
  int64_t k = 0;  // index of the chunk's first document
  auto flush = [&] {
    encode_all(*tok, chunk, ids, threads);
    for (size_t i = 0; i < chunk.size(); ++i, ++k) {
      std::vector<int64_t>& d = ids[i];
      if (k == plan.cut_doc) {  // its last share of tokens to val (at least one each side when it can)
        const auto len = static_cast<int64_t>(d.size());
        const int64_t n_val = len >= 2 ? std::clamp<int64_t>(std::llround(plan.cut_val_share * static_cast<double>(len)), 1, len - 1) : 0;
        writer.append("train", std::vector<int64_t>(d.begin(), d.end() - n_val));
        if (n_val > 0) writer.append("val", std::vector<int64_t>(d.end() - n_val, d.end()));
      } else {
        writer.append(plan.is_val[static_cast<size_t>(k)] ? "val" : "train", d);
      }
      sum.bytes += static_cast<int64_t>(chunk[i].size());
      progress.update(sum.bytes, k + 1);
    }
    chunk.clear();
    chunk_bytes = 0;
  };
  const size_t chunk_limit = static_cast<size_t>(threads) * (4u << 20);  // ~4 MB of text per thread
  corpus.for_each([&](std::string_view d) {
    chunk.emplace_back(d);
    chunk_bytes += d.size();
    if (chunk_bytes >= chunk_limit || chunk.size() >= static_cast<size_t>(threads) * 4096) flush();
  });
  if (!chunk.empty()) flush();
  SKEIN_CHECK(k == n_docs, "prep: the inputs changed while being read (", n_docs, " documents, then ", k, ")");
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
