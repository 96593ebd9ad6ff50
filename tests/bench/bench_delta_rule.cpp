// bench_delta_rule.cpp — the fused CPU delta_rule op alone (gated DeltaNet: beta and log_alpha),
// forward and forward + backward, at the shapes the MoM / MQAR models run (head dim 32 / 64 /
// 128). Prints time per token per head and the achieved GFLOP/s against the recurrence's
// FLOP count (forward 3 rank-1 passes over the [Dk, Dv] state per token; backward 2 for the
// recompute + 7 for the gradients), so a kernel change shows up in one number.
// Usage: bench_delta_rule [--bh 8] [--t 256] [--d 64] [--reps 20] [--threads 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include "core/ops.h"
#include "core/rng.h"
#include "core/threadpool.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int64_t bh = 8, t = 256, d = 64, reps = 20, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::stoll(argv[i + 1]);
    if (k == "--bh") bh = v;
    else if (k == "--t") t = v;
    else if (k == "--d") d = v;
    else if (k == "--reps") reps = v;
    else if (k == "--threads") threads = v;
    else { std::fprintf(stderr, "bench_delta_rule: unknown option %s\n", k.c_str()); return 2; }
  }
  set_num_threads(static_cast<int>(threads));
  // q, k, v: [1, BH, T, D] (k with unit-norm rows, as the layers feed it); beta, log_alpha: [1, BH, T]
  Tensor q = uniform({1, bh, t, d}, 1, -1.0, 1.0).requires_grad_(true);
  Tensor k = l2_normalize(uniform({1, bh, t, d}, 2, -1.0, 1.0)).detach().requires_grad_(true);
  Tensor v = uniform({1, bh, t, d}, 3, -1.0, 1.0).requires_grad_(true);
  Tensor beta = uniform({1, bh, t}, 4, 0.1, 0.9).requires_grad_(true);
  Tensor la = uniform({1, bh, t}, 5, -0.2, -0.01).requires_grad_(true);
  double fwd = 1e30, both = 1e30;
  for (int64_t r = 0; r < reps + 1; ++r) {
    auto t0 = Clock::now();
    LinearAttentionResult res = delta_rule(q, k, v, beta, la, Tensor(), 0.125, 64);
    const double tf = std::chrono::duration<double>(Clock::now() - t0).count();
    sum(res.out).backward();
    const double tb = std::chrono::duration<double>(Clock::now() - t0).count();
    for (Tensor* p : {&q, &k, &v, &beta, &la}) p->zero_grad();
    if (r > 0) { fwd = std::min(fwd, tf); both = std::min(both, tb); }
  }
  const double tokens = static_cast<double>(bh * t), dd = static_cast<double>(d * d);
  const double fwd_flops = tokens * 3 * 2 * dd, bwd_flops = tokens * 9 * 2 * dd;
  std::printf("delta_rule bh %lld t %lld d %lld threads %lld: forward %.1f ns/token/head (%.1f GFLOP/s), "
              "fwd+bwd %.1f ns/token/head (%.1f GFLOP/s)\n", (long long)bh, (long long)t, (long long)d,
              (long long)threads, 1e9 * fwd / tokens, fwd_flops / fwd * 1e-9, 1e9 * both / tokens,
              (fwd_flops + bwd_flops) / both * 1e-9);
  return 0;
}
