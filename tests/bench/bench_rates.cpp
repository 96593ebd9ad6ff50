// bench_rates.cpp — the measured inputs of the sequence-parallel cost model (docs/COST_MODEL.md,
// tools/cost_model.py): compute rates per thread and the MPI link between two ranks.
// Run under `mpirun -np 2`. Every rank computes at the same time, as in training, with
// --threads threads; a rate is the median of --reps timed runs after one warm-up, averaged
// over the ranks. FLOPs are counted as the cost model counts them:
//   sgemm        cpu::gemm at [M, K]·[K, N] = [C, d]·[d, d] (--tokens C, --d-model d): 2 M N K
//   linear_attn  linear_attention (fixed decay, chunk c = 64) forward + backward on
//                [1, H, T, D]: 3 · (2 c (Dk + Dv) + 4 Dk Dv) per token and head (forward: the
//                intra-chunk scores and their product with V, the state read and the state
//                update; backward twice the forward)
//   attn_block   attention_block_forward + attention_block_backward of one full (non-causal)
//                block of Tq = Tk = --block queries and keys: 4 Tq Tk D forward, 10 Tq Tk D
//                backward per head (the score recompute and four products)
// The link (rank 0 <-> rank 1, the other ranks wait): a ping-pong send/recv gives the one-way
// time of n bytes (half the round trip); all_gather and reduce_scatter of n bytes per rank
// over every rank. latency = the time of the smallest message; bandwidth = n / (t(n) - latency)
// at the largest. (Absolute rates are the cost model's inputs, not performance claims:
// docs/PERF.md reports ratios only.)
// Prints Markdown tables on rank 0 and, with --json FILE, the rates tools/cost_model.py reads.
// Usage: mpirun -np 2 bench_rates [--threads 1] [--head-dim 128] [--d-model 2048] [--tokens 2048]
//                                 [--block 1024] [--reps 5] [--max-mib 64] [--json rates.json]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/threadpool.h"
#include "parallel/mpi_comm.h"
#include "parallel/runtime.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int64_t threads = 1, head_dim = 128, d_model = 2048, tokens = 2048, block = 1024, reps = 5, max_mib = 64;
  std::string json;
};

double secs(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The median time of `reps` runs of f, after one warm-up run.
double median_time(int64_t reps, const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int64_t i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(secs(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The mean of x over the ranks of comm.
double mean_over(Communicator& comm, double x) {
  Tensor t = scalar(x, DType::f64);
  comm.all_reduce(t);
  return t.item() / comm.size();
}

struct ComputeRates {
  double sgemm_gflops = 0;
  double la_token_heads_per_s = 0, la_gflops = 0;
  double block_fwd_gflops = 0, block_bwd_gflops = 0, block_gflops = 0;
};

ComputeRates measure_compute(Communicator& comm, const Options& o) {
  ComputeRates r;
  comm.barrier();
  r.sgemm_gflops = mean_over(comm, cpu::sgemm_gflops(o.tokens, o.d_model, o.d_model, static_cast<int>(o.reps)));

  const int64_t H = 2, D = o.head_dim, T = 4096, chunk = 64;
  Generator g(1 + comm.rank());
  Tensor q = mul(randn({1, H, T, D}, g), 0.1).requires_grad_(), k = mul(randn({1, H, T, D}, g), 0.1).requires_grad_(),
         v = randn({1, H, T, D}, g).requires_grad_();
  const Tensor decay = full({H}, std::log(0.99));  // log_gate: [H]
  comm.barrier();
  const double la_s = median_time(o.reps, [&] { sum(linear_attention(q, k, v, decay, Tensor(), 1.0, chunk).out).backward(); });
  const double la_flops = 3.0 * (2.0 * chunk * (D + D) + 4.0 * D * D) * static_cast<double>(T * H);
  r.la_token_heads_per_s = mean_over(comm, static_cast<double>(T * H) / la_s);
  r.la_gflops = mean_over(comm, la_flops / la_s / 1e9);

  const int64_t n = o.block;
  NoGradGuard no_grad;
  Tensor bq = randn({1, H, n, D}, g), bk = randn({1, H, n, D}, g), bv = randn({1, H, n, D}, g), dout = randn({1, H, n, D}, g);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  AttentionBlockResult fwd = attention_block_forward(bq, bk, bv, scale, false, 0, n, 0);
  comm.barrier();
  const double fwd_s = median_time(o.reps, [&] { attention_block_forward(bq, bk, bv, scale, false, 0, n, 0); });
  const double bwd_s = median_time(o.reps, [&] {
    attention_block_backward(bq, bk, bv, fwd.out, fwd.lse, dout, scale, false, 0, n, 0);
  });
  const double unit = static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(D * H);  // Tq Tk D H
  r.block_fwd_gflops = mean_over(comm, 4 * unit / fwd_s / 1e9);
  r.block_bwd_gflops = mean_over(comm, 10 * unit / bwd_s / 1e9);
  r.block_gflops = mean_over(comm, 14 * unit / (fwd_s + bwd_s) / 1e9);
  return r;
}

struct LinkPoint {
  int64_t bytes = 0;
  double p2p_s = 0, all_gather_s = 0, reduce_scatter_s = 0;
};

// One-way and collective times for messages of 8 B to max_mib MiB (x4 steps).
std::vector<LinkPoint> measure_link(Communicator& comm, const Options& o) {
  std::vector<LinkPoint> points;
  const int W = comm.size();
  for (int64_t bytes = 8; bytes <= o.max_mib * 1048576; bytes *= (bytes < 65536 ? 8 : 4)) {
    const int64_t n = bytes / 4;
    const int64_t iters = std::clamp<int64_t>((int64_t{64} << 20) / bytes, 4, 1000);
    Tensor msg = zeros({n}), gathered = zeros({W * n}), scattered = zeros({n});
    LinkPoint p;
    p.bytes = bytes;
    auto timed = [&](const std::function<void()>& f) {
      return median_time(o.reps, [&] {
        comm.barrier();
        for (int64_t i = 0; i < iters; ++i) f();
      }) / static_cast<double>(iters);
    };
    p.p2p_s = timed([&] {
      if (comm.rank() == 0) { comm.send(msg, 1); comm.recv(msg, 1); }
      else if (comm.rank() == 1) { comm.recv(msg, 0); comm.send(msg, 0); }
    }) / 2;
    p.all_gather_s = timed([&] { comm.all_gather_into(msg, gathered); });
    p.reduce_scatter_s = timed([&] { comm.reduce_scatter_into(gathered, scattered); });
    points.push_back(p);
  }
  return points;
}

// latency = the smallest message's time; bandwidth = bytes / (t - latency) at the largest.
struct Fit {
  double latency_s = 0, bytes_per_s = 0;
};

Fit fit(const std::vector<LinkPoint>& pts, double LinkPoint::*field, double bytes_factor) {
  const double lat = pts.front().*field, t = pts.back().*field;
  return {lat, bytes_factor * static_cast<double>(pts.back().bytes) / std::max(t - lat, 1e-12)};
}

int bench_main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads") o.threads = std::stoll(v);
    else if (k == "--head-dim") o.head_dim = std::stoll(v);
    else if (k == "--d-model") o.d_model = std::stoll(v);
    else if (k == "--tokens") o.tokens = std::stoll(v);
    else if (k == "--block") o.block = std::stoll(v);
    else if (k == "--reps") o.reps = std::stoll(v);
    else if (k == "--max-mib") o.max_mib = std::stoll(v);
    else if (k == "--json") o.json = v;
    else { std::fprintf(stderr, "bench_rates: unknown option %s\n", k.c_str()); return 2; }
  }
  set_num_threads(static_cast<int>(o.threads));
  std::unique_ptr<MpiComm> comm = MpiComm::world();
  SKEIN_CHECK(comm->size() >= 2, "bench_rates: run it under mpirun with at least 2 ranks, got ", comm->size());
  const ComputeRates c = measure_compute(*comm, o);
  const std::vector<LinkPoint> pts = measure_link(*comm, o);
  const int W = comm->size();
  // The bytes each rank sends: p2p the message; all_gather and reduce_scatter (W - 1) n.
  const Fit p2p = fit(pts, &LinkPoint::p2p_s, 1), ag = fit(pts, &LinkPoint::all_gather_s, W - 1),
            rs = fit(pts, &LinkPoint::reduce_scatter_s, W - 1);
  if (comm->rank() != 0) return 0;
  std::printf("compute, %lld thread(s) per rank, %d ranks at once (mean of the ranks)\n\n", static_cast<long long>(o.threads), W);
  std::printf("| kernel | shape | GFLOP/s |\n|---|---|---:|\n");
  std::printf("| sgemm | [%lld, %lld]·[%lld, %lld] | %.1f |\n", static_cast<long long>(o.tokens), static_cast<long long>(o.d_model),
              static_cast<long long>(o.d_model), static_cast<long long>(o.d_model), c.sgemm_gflops);
  std::printf("| linear attention fwd+bwd (decay, chunk 64) | head dim %lld | %.1f (%.3g token-heads/s) |\n",
              static_cast<long long>(o.head_dim), c.la_gflops, c.la_token_heads_per_s);
  std::printf("| attention block forward | %lld x %lld, head dim %lld | %.1f |\n", static_cast<long long>(o.block),
              static_cast<long long>(o.block), static_cast<long long>(o.head_dim), c.block_fwd_gflops);
  std::printf("| attention block backward | same | %.1f |\n| attention block fwd+bwd | same | %.1f |\n", c.block_bwd_gflops,
              c.block_gflops);
  std::printf("\nlink, %d ranks: seconds per call (p2p: one way)\n\n| bytes per rank | p2p | all_gather | reduce_scatter |\n"
              "|---:|---:|---:|---:|\n", W);
  for (const LinkPoint& p : pts)
    std::printf("| %lld | %.3g | %.3g | %.3g |\n", static_cast<long long>(p.bytes), p.p2p_s, p.all_gather_s, p.reduce_scatter_s);
  std::printf("\nfit: p2p latency %.3g s, %.3g GB/s; all_gather %.3g s, %.3g GB/s sent per rank; reduce_scatter %.3g s, %.3g GB/s\n",
              p2p.latency_s, p2p.bytes_per_s / 1e9, ag.latency_s, ag.bytes_per_s / 1e9, rs.latency_s, rs.bytes_per_s / 1e9);
  if (!o.json.empty()) {
    FILE* f = std::fopen(o.json.c_str(), "w");
    SKEIN_CHECK(f != nullptr, "bench_rates: cannot write ", o.json);
    std::fprintf(f,
                 "{\"threads\": %lld, \"ranks\": %d, \"head_dim\": %lld, \"sgemm_gflops\": %.6g, \"linear_attention_gflops\": %.6g, "
                 "\"attention_block_gflops\": %.6g, \"p2p_latency_s\": %.6g, \"p2p_bytes_per_s\": %.6g, "
                 "\"all_gather_latency_s\": %.6g, \"all_gather_bytes_per_s\": %.6g, \"reduce_scatter_latency_s\": %.6g, "
                 "\"reduce_scatter_bytes_per_s\": %.6g}\n",
                 static_cast<long long>(o.threads), W, static_cast<long long>(o.head_dim), c.sgemm_gflops, c.la_gflops,
                 c.block_gflops, p2p.latency_s, p2p.bytes_per_s, ag.latency_s, ag.bytes_per_s, rs.latency_s, rs.bytes_per_s);
    std::fclose(f);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MpiRuntime mpi(argc, argv);
  return abort_on_exception([&] { return bench_main(argc, argv); });
}
