// bench_model.cpp — the benchmark model (../shared/BENCHMARK.md) trained by skein:
// forward + backward + AdamW, warm-up steps then the median of the measured steps.
// Reports tokens/s, achieved GFLOP/s (BENCHMARK.md's count) against the sgemm GFLOP/s
// measured in the same run (4096x1536x512), peak RSS and the allocator's peak.
// Activation memory: --recompute none|mlp|full (train.recompute), --fused-head 0|1 (the
// chunked LM head + cross-entropy), --window N (the softmax layers' window); the line also
// gives the allocator peak per token and the activation part of it (the peak above what is
// live before a step: parameters, AdamW state).
// --precision f32|bf16-mixed (train.precision, core/precision.h: bf16 GEMMs, weights rounded
// once per step). The line splits the measured steps' time: the matmul op's GEMMs
// (projections, MLP, LM head), bf16 rounding, and the rest (mixers, norms, elementwise, AdamW).
// Usage: bench_model [--seq 2048] [--batch 2] [--steps 7] [--warmup 2] [--threads 2]
//                    [--pattern LLLS] [--recompute none] [--fused-head 0] [--window 0]
//                    [--precision f32] [--json out.json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include "core/allocator.h"
#include "core/cpu/gemm.h"
#include "core/precision.h"
#include "core/threadpool.h"
#include "layers/model.h"
#include "optim/adamw.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_thread_timeout(argv);
  int64_t seq = 2048, batch = 2, steps = 7, warmup = 2, threads = 2;
  std::string pattern = "LLLS", json, recompute = "none", precision = "f32";
  bool fused_head = false;
  int64_t window = 0;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::printf("usage: bench_model [--seq N] [--batch N] [--steps N] [--warmup N] [--threads N] [--pattern LLLS]\n"
                  "  [--window N] [--recompute none|mlp|full] [--fused-head 0|1] [--precision f32|bf16-mixed]"
                  " [--json FILE]\n");
      return 0;
    }
    if (i + 1 >= argc) { std::fprintf(stderr, "bench_model: option %s needs a value\n", k.c_str()); return 2; }
    const std::string v = argv[i + 1];
    if (k == "--seq") seq = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--pattern") pattern = v;
    else if (k == "--json") json = v;
    else if (k == "--recompute") recompute = v;
    else if (k == "--fused-head") fused_head = v != "0";
    else if (k == "--window") window = std::stoll(v);
    else if (k == "--precision") precision = v;
    else { std::fprintf(stderr, "bench_model: unknown option %s\n", k.c_str()); return 2; }
  }
  set_num_threads(static_cast<int>(threads));
  ModelConfig cfg;  // the benchmark model's defaults
  cfg.layer_pattern = pattern;
  cfg.window = window;
  HybridLM model(cfg);
  model.set_recompute(parse_recompute(recompute, "--recompute"));
  model.fused_head = fused_head;
  AdamW opt(model.named_parameters(), AdamWOptions{});
  PrecisionPolicy& policy = PrecisionPolicy::current();
  const std::string note = policy.set(parse_precision(precision, "--precision"), Device::cpu);
  if (!note.empty()) std::printf("%s\n", note.c_str());
  Tensor ids = uniform({batch, seq + 1}, 7, 0.0, static_cast<double>(cfg.vocab_size), DType::f64).to(DType::i64);
  Tensor x = ids.narrow(1, 0, seq).contiguous(), y = ids.narrow(1, 1, seq).contiguous();

  const double peak = cpu::sgemm_gflops(4096, 1536, 512);
  std::vector<double> times;
  double loss = 0, gemm_s = 0, round_s = 0;
  cpu_allocator::reset_peak();
  int64_t live_before = 0;  // what a step starts with (parameters, AdamW state, no gradients)
  for (int64_t s = 0; s < warmup + steps; ++s) {
    auto t0 = Clock::now();
    const int64_t gemm0 = cpu::gemm_entry_ns(), round0 = policy.rounding_ns();
    opt.zero_grad();
    if (s == warmup + steps - 1) live_before = cpu_allocator::stats().bytes_live;
    policy.begin_step(model.parameters());
    LossParts l = model.loss(x, y);
    l.total.backward();
    policy.end_step();
    opt.step();
    loss = l.lm.item();
    if (s >= warmup) {
      times.push_back(seconds_since(t0));
      gemm_s += static_cast<double>(cpu::gemm_entry_ns() - gemm0) * 1e-9;
      round_s += static_cast<double>(policy.rounding_ns() - round0) * 1e-9;
    }
  }
  const double step_s = median(times), tokens = static_cast<double>(seq * batch);
  const double gflop = 3 * model_flops_per_token(cfg, seq) * tokens / 1e9;
  const double rss_mb = peak_rss_mb();
  const int64_t peak_bytes = cpu_allocator::stats().bytes_peak;
  const double alloc_mb = static_cast<double>(peak_bytes) / (1 << 20);
  const double kb_per_token = static_cast<double>(peak_bytes) / 1024 / tokens;
  const double act_kb_per_token = static_cast<double>(peak_bytes - live_before) / 1024 / tokens;
  std::printf("skein %s seq %lld batch %lld threads %lld window %lld recompute %s fused-head %d precision %s: %.3f s/step, "
              "%.0f tokens/s, %.1f GFLOP/step, %.1f GFLOP/s = %.1f%% of sgemm %.1f GFLOP/s, peak RSS %.0f MB, "
              "allocator peak %.0f MB = %.1f KB/token (activations %.1f KB/token), loss %.3f\n",
              pattern.c_str(), (long long)seq, (long long)batch, (long long)threads, (long long)window,
              recompute.c_str(), fused_head ? 1 : 0, policy.describe().c_str(), step_s, tokens / step_s, gflop, gflop / step_s,
              100 * gflop / step_s / peak, peak, rss_mb, alloc_mb, kb_per_token, act_kb_per_token, loss);
  double total_s = 0;
  for (double t : times) total_s += t;
  std::printf("  time split over the %lld measured steps: matmul-op GEMMs %.0f%%, bf16 rounding %.0f%%, "
              "the rest (mixers, norms, elementwise, AdamW) %.0f%%\n",
              static_cast<long long>(steps), 100 * gemm_s / total_s, 100 * round_s / total_s,
              100 * (total_s - gemm_s - round_s) / total_s);
  if (!json.empty()) {
    std::ofstream f(json);
    f << "{\"seq\": " << seq << ", \"batch\": " << batch << ", \"threads\": " << threads
      << ", \"median_step_s\": " << step_s << ", \"tokens_per_s\": " << tokens / step_s
      << ", \"gflop_per_step\": " << gflop << ", \"gflops\": " << gflop / step_s
      << ", \"sgemm_gflops\": " << peak << ", \"peak_rss_mb\": " << rss_mb
      << ", \"allocator_peak_mb\": " << alloc_mb << ", \"kb_per_token\": " << kb_per_token
      << ", \"activation_kb_per_token\": " << act_kb_per_token << ", \"recompute\": \"" << recompute
      << "\", \"fused_head\": " << (fused_head ? "true" : "false") << ", \"window\": " << window
      << ", \"precision\": \"" << policy.describe() << "\"}\n";
  }
  return 0;
}
