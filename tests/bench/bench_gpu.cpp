// bench_gpu.cpp — skein's training step on a device: the benchmark model (--size bench) or the
// GPU benchmark model (--size gpu: V 32000, d 1024, 16 heads, 12 layers LLLS, hidden 2816;
// ../shared/BENCHMARK.md), forward + backward + AdamW, f32 or TF32. Each step is timed from its
// start to the device's synchronisation after the optimizer (the whole step as the trainer runs
// it, host work included), warm-up steps excluded; reports the median, tokens/s, TFLOP/s (the
// BENCHMARK.md count) against the f32 GEMM peak measured in the same run on the same device, and
// the device allocator's peak. --max-seconds stops early (a step over budget ends the run).
// Usage: bench_gpu [--device cuda] [--size gpu] [--seq 8192] [--batch 4] [--steps 3] [--warmup 1]
//                  [--tf32 1] [--json out.json] [--max-seconds 120]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
#include "core/backend.h"
#include "core/threadpool.h"
#include "layers/model.h"
#include "optim/adamw.h"

using namespace skein;
using Clock = std::chrono::steady_clock;


int main(int argc, char** argv) {
  std::string device_name = "cuda", size = "bench", json;
  int64_t seq = 2048, batch = 2, steps = 3, warmup = 1, threads = 0;
  bool tf32 = false;
  double max_seconds = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device_name = v;
    else if (k == "--size") size = v;
    else if (k == "--seq") seq = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--threads") threads = std::stoll(v);
    else if (k == "--tf32") tf32 = v == "1" || v == "true";
    else if (k == "--json") json = v;
    else if (k == "--max-seconds") max_seconds = std::stod(v);
    else { std::fprintf(stderr, "bench_gpu: unknown option %s\n", k.c_str()); return 2; }
  }
  try {
    if (threads > 0) set_num_threads(static_cast<int>(threads));
    const Device device = select_device(device_name, 0, tf32);
    ModelConfig cfg;  // the benchmark model
    if (size == "gpu") {
      cfg.vocab_size = 32000;
      cfg.d_model = 1024;
      cfg.n_heads = 16;
      cfg.n_layers = 12;
      cfg.mlp_hidden = 2816;
    }
    HybridLM model(cfg);
    model.to(device);
    AdamW opt(model.named_parameters(), AdamWOptions{});
    Tensor ids = uniform({batch, seq + 1}, 7, 0.0, static_cast<double>(cfg.vocab_size), DType::f64).to(DType::i64);
    Tensor x = ids.narrow(1, 0, seq).contiguous().to(device), y = ids.narrow(1, 1, seq).contiguous().to(device);
    const double peak = gemm_peak_gflops(device, 8192, 8192, 8192, 5);
    Backend& be = backend(device);
    be.reset_peak();
    std::vector<double> times;
    double last_loss = 0;
    const auto start = Clock::now();
    for (int64_t s = 0; s < warmup + steps; ++s) {
      be.synchronize();
      const auto t0 = Clock::now();
      opt.zero_grad();
      LossParts l = model.loss(x, y);
      l.total.backward();
      opt.step();
      be.synchronize();
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      last_loss = l.lm.item();
      std::printf("  %s %2lld: %8.3f s, loss %.4f\n", s < warmup ? "warmup" : "step  ", static_cast<long long>(s), dt,
                  last_loss);
      std::fflush(stdout);
      if (s >= warmup) times.push_back(dt);
      if (std::chrono::duration<double>(Clock::now() - start).count() > max_seconds) {
        std::printf("  stopped: over --max-seconds %.0f\n", max_seconds);
        break;
      }
    }
    if (times.empty()) times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    const double tflops = 3 * model_flops_per_token(cfg, seq) * static_cast<double>(batch * seq) / med / 1e12;
    const double tok_s = static_cast<double>(batch * seq) / med;
    const double peak_mb = static_cast<double>(be.stats().bytes_peak) / 1048576.0;
    std::printf("skein %s size %s seq %lld batch %lld %s: median step %.3f s, %.0f tokens/s, %.2f TFLOP/s, "
                "%.1f%% of the f32 GEMM peak %.1f TFLOP/s, peak device memory %.0f MB\n",
                device_name.c_str(), size.c_str(), static_cast<long long>(seq), static_cast<long long>(batch),
                tf32 ? "tf32" : "f32", med, tok_s, tflops, 100 * tflops * 1e3 / peak, peak / 1e3, peak_mb);
    if (!json.empty()) {
      std::ofstream f(json);
      f << "{\"device\": \"" << device_name << "\", \"size\": \"" << size << "\", \"seq\": " << seq
        << ", \"batch\": " << batch << ", \"tf32\": " << (tf32 ? "true" : "false") << ", \"median_step_s\": " << med
        << ", \"tokens_per_s\": " << tok_s << ", \"tflops\": " << tflops << ", \"gemm_peak_tflops\": " << peak / 1e3
        << ", \"peak_device_mb\": " << peak_mb << ", \"loss\": " << last_loss << ", \"steps_measured\": "
        << times.size() << "}\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
