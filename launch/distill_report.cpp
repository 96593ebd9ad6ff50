// distill_report.cpp — the generation benchmark and the end-of-run report of `skein distill`
// (see distill.h and distill_report.h).
#include "launch/distill_report.h"
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include "core/allocator.h"
#include "layers/generate.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace skein {
namespace {
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

double cache_mb(const std::vector<MixerCache>& caches) {
  double bytes = 0;
  auto add_bytes = [&](const Tensor& t) {
    if (t.defined()) bytes += static_cast<double>(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())));
  };
  for (const MixerCache& c : caches) {
    add_bytes(c.k);
    add_bytes(c.v);
    for (const Tensor& s : c.states) add_bytes(s);
  }
  return bytes / 1048576.0;
}

void print_row(const char* who, const RunSummary& e, const GenerationBench& g) {
  std::printf("%-8s | val loss %.4f | val ppl %9.3f | prefill %8.0f tok/s | decode %7.1f tok/s | cache %8.3f MB | "
              "peak %8.1f MB\n", who, e.val_loss, e.val_ppl, g.prefill_tokens_per_s, g.decode_tokens_per_s, g.cache_mb,
              g.peak_mb);
}

void write_summary(const DistillSummary& s) {
  const fs::path dir(s.run_dir);
  std::ofstream f(dir / "distill.json.tmp");
  f.precision(17);
  auto gen = [&](const char* who, const GenerationBench& g) {
    f << ", \"" << who << "_prefill_tokens_per_s\": " << g.prefill_tokens_per_s << ", \"" << who
      << "_decode_tokens_per_s\": " << g.decode_tokens_per_s << ", \"" << who << "_cache_mb\": " << g.cache_mb
      << ", \"" << who << "_peak_mb\": " << g.peak_mb;
  };
  f << "{\"teacher_val_loss\": " << s.teacher_val_loss << ", \"teacher_val_ppl\": " << s.teacher_val_ppl
    << ", \"student_val_loss\": " << s.student_val_loss << ", \"student_val_ppl\": " << s.student_val_ppl
    << ", \"recovery\": " << s.recovery;
  gen("teacher", s.teacher_gen);
  gen("student", s.student_gen);
  f << ", \"student_checkpoint\": \"" << s.student_checkpoint << "\"}\n";
  f.close();
  fs::rename(dir / "distill.json.tmp", dir / "distill.json");
}

GenerationBench bench_generation(HybridLM& model, const std::vector<int64_t>& prompt, int64_t new_tokens) {
  SKEIN_CHECK(!prompt.empty() && new_tokens >= 1, "bench_generation: needs a prompt and new_tokens >= 1");
  NoGradGuard no_grad;
  cpu_allocator::reset_peak();
  const int64_t live_before = cpu_allocator::stats().bytes_live;
  std::vector<MixerCache> caches;
  std::vector<double> ids(prompt.begin(), prompt.end());
  const int64_t P = static_cast<int64_t>(ids.size());
  auto t0 = Clock::now();
  Tensor logits = model.forward(from_vector(ids, {1, P}, DType::i64), &caches);
  GenerationBench g;
  SamplingOptions greedy;
  greedy.temperature = 0;
  Generator gen(0);
  g.prefill_tokens_per_s = static_cast<double>(P) / seconds_since(t0);
  t0 = Clock::now();
  for (int64_t i = 0; i < new_tokens; ++i) {
    Tensor last = logits.narrow(1, logits.size(1) - 1, 1).reshape({-1});
    const double next = static_cast<double>(sample_token(last, greedy, gen));
    logits = model.forward(from_vector({next}, {1, 1}, DType::i64), &caches);
  }
  g.decode_tokens_per_s = static_cast<double>(new_tokens) / seconds_since(t0);
  g.cache_mb = cache_mb(caches);
  g.peak_mb = static_cast<double>(cpu_allocator::stats().bytes_peak - live_before) / 1048576.0;
  return g;
}

}  // namespace skein
