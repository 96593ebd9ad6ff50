// bench_tokenize.cpp — tokenizer throughput alone (no file writing): the documents of a text
// file (one per line) encoded with the template (Hugging Face's encode(text), BOS included) on
// 1..N threads, each taking the next block of 64 documents in turn (as skein prep does;
// `tokenizers`' encode_batch hands documents to its rayon threads).
// Prints seconds, MB/s and the id count; with an output path, writes all ids as little-endian
// int32 in document order so that tests/bench/prep_vs_tokenizers.sh can compare them with HF's.
//   bench_tokenize <spec: hf:tokenizer.json | bpe:tokenizer.json> <text file> <threads> [ids.bin]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "core/error.h"
#include "data/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_tokenize <hf:|bpe:tokenizer.json> <text file> <threads> [ids.bin]\n");
    return 2;
  }
  try {
    const auto tok = skein::make_tokenizer(argv[1]);
    std::ifstream in(argv[2], std::ios::binary);
    SKEIN_CHECK(in, "bench_tokenize: cannot open ", argv[2]);
    std::ostringstream os;
    os << in.rdbuf();
    const std::string text = os.str();
    std::vector<std::string_view> docs;
    for (size_t pos = 0; pos < text.size();) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      if (nl > pos) docs.push_back(std::string_view(text).substr(pos, nl - pos));
      pos = nl + 1;
    }
    const int threads = std::stoi(argv[3]);
    std::vector<std::vector<int64_t>> ids(docs.size());
    std::atomic<size_t> next{0};
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int64_t> prefix = tok->prefix_ids(), suffix = tok->suffix_ids();
    auto work = [&] {  // blocks of 64 documents, as skein prep hands them out
      for (size_t i0; (i0 = next.fetch_add(64)) < docs.size();) {
        const size_t i1 = std::min(docs.size(), i0 + 64);
        std::vector<std::vector<int64_t>> got = tok->encode_batch({docs.begin() + i0, docs.begin() + i1});
        for (size_t i = i0; i < i1; ++i) {
          ids[i] = prefix;
          ids[i].insert(ids[i].end(), got[i - i0].begin(), got[i - i0].end());
          ids[i].insert(ids[i].end(), suffix.begin(), suffix.end());
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < docs.size(); ++i) n += ids[i].size(), bytes += docs[i].size();
    std::printf("%.4f %zu %zu %.3f\n", s, n, docs.size(), static_cast<double>(bytes) / 1e6 / s);
    if (argc > 4) {
      std::ofstream out(argv[4], std::ios::binary);
      for (const auto& d : ids)
        for (int64_t id : d) {
          const auto v = static_cast<int32_t>(id);
          out.write(reinterpret_cast<const char*>(&v), 4);
        }
      SKEIN_CHECK(out, "bench_tokenize: writing ", argv[4], " failed");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenize: %s\n", e.what());
    return 1;
  }
  return 0;
}
