// bench_mixers.cpp — each attention mixer alone, forward + backward time vs sequence
// length N (B = 1, H = 8, head dim 64, f32): the fused ops softmax_attention,
// linear_attention (fixed decay, GLA) and delta_rule (gated), and a MoM layer (4 memories,
// top-2, gated delta). Linear mixers must scale linearly in N; softmax quadratically.
// Prints one Markdown row per (mixer, N): seconds forward, forward+backward, and the
// fwd+bwd time per token relative to the shortest N (1.0 = perfectly linear).
// Usage: bench_mixers [--max-n 65536] [--softmax-max-n 16384] [--threads 2]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include "core/ops.h"
#include "core/threadpool.h"
#include "layers/mom.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Best of `reps` runs of f (after one warm-up).
double best_of(int reps, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, secs(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t max_n = 65536, softmax_max_n = 16384, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--max-n") max_n = std::stoll(argv[i + 1]);
    else if (k == "--softmax-max-n") softmax_max_n = std::stoll(argv[i + 1]);
    else if (k == "--threads") threads = std::stoll(argv[i + 1]);
    else { std::fprintf(stderr, "bench_mixers: unknown option %s\n", argv[i]); return 2; }
  }
  set_num_threads(static_cast<int>(threads));
  const int64_t H = 8, D = 64;
  std::printf("| mixer | N | forward s | fwd+bwd s | fwd+bwd per token vs N=1024 |\n|---|---:|---:|---:|---:|\n");
  std::map<std::string, double> base;
  for (const std::string mixer : {"softmax", "decay", "gla", "gated_delta", "mom"}) {
    for (int64_t N = 1024; N <= max_n; N *= 2) {
      if (mixer == "softmax" && N > softmax_max_n) break;
      if (mixer == "mom" && N > 16384) break;  // per-memory dispatch: linear, just slower
      Generator g(1);
      Tensor q = mul(randn({1, H, N, D}, g), 0.1), k = l2_normalize(randn({1, H, N, D}, g)), v = randn({1, H, N, D}, g);
      Tensor gate = log_sigmoid(randn({1, H, N, D}, g)), beta = sigmoid(randn({1, H, N}, g));
      Tensor alpha = mul(sigmoid(randn({1, H, N}, g)), -0.1), decay = full({H}, std::log(0.99));
      std::shared_ptr<MoM> mom;
      Tensor x;
      if (mixer == "mom") {
        ModelConfig c;
        c.d_model = H * D;
        c.n_heads = H;
        mom = std::make_shared<MoM>(c, g, 0.02);
        x = mul(randn({1, N, H * D}, g), 0.5);
      }
      for (Tensor* t : {&q, &k, &v}) t->requires_grad_();
      auto forward = [&]() -> Tensor {
        if (mixer == "softmax") return softmax_attention(q, k, v, 0.125);
        if (mixer == "decay") return linear_attention(q, k, v, decay, Tensor()).out;
        if (mixer == "gla") return linear_attention(q, k, v, gate, Tensor()).out;
        if (mixer == "gated_delta") return delta_rule(q, k, v, beta, alpha, Tensor()).out;
        return mom->forward(x.requires_grad() ? x : x.requires_grad_(), nullptr);
      };
      const double fwd = best_of(2, [&] { NoGradGuard ng; forward(); });
      const double both = best_of(2, [&] { sum(forward()).backward(); });
      if (N == 1024) base[mixer] = both / 1024;
      std::printf("| %s | %lld | %.4f | %.4f | %.2f |\n", mixer.c_str(), static_cast<long long>(N), fwd, both,
                  both / static_cast<double>(N) / base[mixer]);
      std::fflush(stdout);
    }
  }
  return 0;
}
