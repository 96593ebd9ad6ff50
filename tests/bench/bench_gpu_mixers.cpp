// bench_gpu_mixers.cpp — each sequence mixer alone on a device, forward and forward + backward:
// softmax attention (causal), linear attention with a fixed decay and with GLA gates, gated
// DeltaNet; inputs [B, H, T, D] random (never zeros), timed from a device synchronisation to the
// next, median of --steps after --warmup. Softmax attention also reports TFLOP/s against the f32
// GEMM peak measured in the same run (its FLOPs: 2·B·H·T²·D forward causal, 2.5× that backward,
// the FlashAttention-2 convention). One JSON line per (mixer, pass) with --json. The peer on the
// same shapes is tests/bench/fla_peer.py (flash-linear-attention and PyTorch SDPA).
// Usage: bench_gpu_mixers [--device cuda] [--batch 2] [--seq 4096] [--heads 16] [--dim 128]
//                         [--steps 5] [--warmup 2] [--mixers softmax,decay,gla,gated_delta]
//                         [--json out.jsonl] [--max-seconds 60]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>
#include "core/backend.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

namespace {

struct Shapes {
  int64_t B, H, T, D;
};

// Median seconds of fn over `steps` runs after `warmup`, each between two synchronisations.
double time_median(Backend& be, const std::function<void()>& fn, int64_t warmup, int64_t steps, double budget) {
  std::vector<double> t;
  const auto start = Clock::now();
  for (int64_t s = 0; s < warmup + steps; ++s) {
    be.synchronize();
    const auto t0 = Clock::now();
    fn();
    be.synchronize();
    if (s >= warmup) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (std::chrono::duration<double>(Clock::now() - start).count() > budget) break;
  }
  if (t.empty()) return std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The mixer's output (summed into a scalar for backward) from leaves on `dev`.
std::function<Tensor(const std::vector<Tensor>&)> mixer(const std::string& name, const Shapes& s) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  if (name == "softmax") return [=](const std::vector<Tensor>& x) { return softmax_attention(x[0], x[1], x[2], scale); };
  if (name == "decay")
    return [=](const std::vector<Tensor>& x) { return linear_attention(x[0], x[1], x[2], x[3], Tensor(), scale).out; };
  if (name == "gla")
    return [=](const std::vector<Tensor>& x) {
      return linear_attention(x[0], x[1], x[2], log_sigmoid(x[3]), Tensor(), scale).out;
    };
  if (name == "gated_delta")
    return [=](const std::vector<Tensor>& x) {
      return delta_rule(x[0], l2_normalize(x[1]), x[2], sigmoid(x[3]), log_sigmoid(x[4]), Tensor(), scale).out;
    };
  throw Error("bench_gpu_mixers: unknown mixer '" + name + "' (softmax, decay, gla, gated_delta)");
}

std::vector<Tensor> inputs(const std::string& name, const Shapes& s, Device dev) {
  const Shape qkv{s.B, s.H, s.T, s.D};
  std::vector<Tensor> x{randn(qkv, 1), randn(qkv, 2), randn(qkv, 3)};
  if (name == "decay") {
    std::vector<double> g(static_cast<size_t>(s.H));
    for (int64_t h = 0; h < s.H; ++h) g[static_cast<size_t>(h)] = std::log(1.0 - std::pow(2.0, -5.0 - h % 8));
    x.push_back(from_vector(g, {s.H}));
  }
  if (name == "gla") x.push_back(add(randn(qkv, 4), 3.0));                     // log σ(·): gates near 1
  if (name == "gated_delta") x.push_back(randn({s.B, s.H, s.T}, 4)), x.push_back(add(randn({s.B, s.H, s.T}, 5), 3.0));
  for (Tensor& t : x) t = t.to(dev).detach().requires_grad_();
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cuda", json, mixers = "softmax,decay,gla,gated_delta";
  Shapes s{2, 16, 4096, 128};
  int64_t steps = 5, warmup = 2;
  double max_seconds = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device_name = v;
    else if (k == "--batch") s.B = std::stoll(v);
    else if (k == "--seq") s.T = std::stoll(v);
    else if (k == "--heads") s.H = std::stoll(v);
    else if (k == "--dim") s.D = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--warmup") warmup = std::stoll(v);
    else if (k == "--mixers") mixers = v;
    else if (k == "--json") json = v;
    else if (k == "--max-seconds") max_seconds = std::stod(v);
    else { std::fprintf(stderr, "bench_gpu_mixers: unknown option %s\n", k.c_str()); return 2; }
  }
  try {
    const Device dev = select_device(device_name, 0, false);
    Backend& be = backend(dev);
    const double peak = gemm_peak_gflops(dev, 4096, 4096, 4096, 3) / 1e3;  // TFLOP/s
    std::ofstream out;
    if (!json.empty()) out.open(json);
    std::stringstream list(mixers);
    for (std::string name; std::getline(list, name, ',');) {
      const auto f = mixer(name, s);
      std::vector<Tensor> x = inputs(name, s, dev);
      const double fwd = time_median(be, [&] { NoGradGuard ng; f(x); }, warmup, steps, max_seconds / 2);
      const double fb = time_median(be, [&] {
        for (Tensor& t : x) t.zero_grad();
        sum(f(x)).backward();
      }, warmup, steps, max_seconds / 2);
      const double flops_fwd = name == "softmax" ? 2.0 * s.B * s.H * static_cast<double>(s.T) * s.T * s.D : 0;
      for (const auto& [pass, sec, flops] : {std::tuple{"fwd", fwd, flops_fwd}, std::tuple{"fwd+bwd", fb, 3.5 * flops_fwd}}) {
        const double tflops = flops > 0 ? flops / sec / 1e12 : 0;
        std::printf("skein %-12s %-8s B %lld H %lld T %lld D %lld: %9.3f ms  %8.0f ktok/s", name.c_str(), pass,
                    static_cast<long long>(s.B), static_cast<long long>(s.H), static_cast<long long>(s.T),
                    static_cast<long long>(s.D), sec * 1e3, s.B * s.T / sec / 1e3);
        if (tflops > 0) std::printf("  %.2f TFLOP/s (%.0f%% of the f32 GEMM peak %.1f)", tflops, 100 * tflops / peak, peak);
        std::printf("\n");
        std::fflush(stdout);
        if (out.is_open())
          out << "{\"impl\": \"skein\", \"mixer\": \"" << name << "\", \"pass\": \"" << pass << "\", \"B\": " << s.B
              << ", \"H\": " << s.H << ", \"T\": " << s.T << ", \"D\": " << s.D << ", \"ms\": " << sec * 1e3
              << ", \"tflops\": " << tflops << ", \"gemm_peak_tflops\": " << peak << "}\n";
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_mixers: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
