// bench.cpp — `test_parallel --bench`: timings of the MPI collectives and of one
// data-parallel gradient reduce / ZeRO-1 step on the benchmark model, printed by rank 0.
// Each number is the median of several runs after a warm-up, with a barrier before each;
// "bus GB/s" is the CommStats (ring-algorithm) bytes sent per rank over the time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include "core/ops.h"
#include "helpers.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "parallel/data_parallel.h"
#include "parallel/zero.h"

namespace skein::test {

namespace {

// Median seconds of fn over `reps` runs (after one warm-up) and the bytes one run sends.
std::pair<double, int64_t> time_it(Communicator& c, int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> ts;
  c.stats().reset();
  for (int i = 0; i < reps; ++i) {
    c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  // Everyone reports the slowest rank's median.
  Tensor m = from_vector({ts[ts.size() / 2]}, {1}, DType::f64);
  c.all_reduce(m, ReduceOp::max);
  return {m.at({0}), (c.stats().total_sent() - c.stats().get("barrier").bytes_sent) / reps};
}

void report(Communicator& c, const char* what, std::pair<double, int64_t> r) {
  if (c.rank() == 0)
    std::printf("%-46s %10.1f us   bus %7.2f GB/s\n", what, r.first * 1e6,
                static_cast<double>(r.second) / r.first / 1e9);
}

}  // namespace

int run_bench() {
  MpiComm& c = world();
  if (c.rank() == 0) std::printf("test_parallel --bench: %d ranks\n", c.size());
  const int64_t mib = (1 << 20) / 4;  // f32 elements in 1 MiB
  Tensor x1 = zeros({mib}), x25 = zeros({25 * mib}), g1 = zeros({mib * c.size()});
  Tensor part = zeros({mib / c.size()}), full1 = zeros({mib}), got = zeros({mib});
  report(c, "all_reduce 1 MiB f32", time_it(c, 20, [&] { c.all_reduce(x1); }));
  report(c, "all_reduce 25 MiB f32 (4 MiB pieces)", time_it(c, 5, [&] { c.all_reduce(x25); }));
  c.set_chunk_bytes(int64_t{1} << 40);
  report(c, "all_reduce 25 MiB f32 (one MPI call)", time_it(c, 5, [&] { c.all_reduce(x25); }));
  c.set_chunk_bytes(4 << 20);
  report(c, "iall_reduce 1 MiB f32 + wait", time_it(c, 20, [&] { c.iall_reduce(x1).wait(); }));
  report(c, "iall_reduce 25 MiB f32 + wait", time_it(c, 5, [&] { c.iall_reduce(x25).wait(); }));
  report(c, "all_gather 1 MiB out (1 MiB / p in)", time_it(c, 20, [&] { c.all_gather_into(part, full1); }));
  report(c, "all_gather 1 MiB in (p MiB out)", time_it(c, 20, [&] { c.all_gather_into(x1, g1); }));
  report(c, "reduce_scatter 1 MiB in", time_it(c, 20, [&] { c.reduce_scatter_into(full1, part); }));
  Tensor part25 = zeros({25 * mib / c.size()});
  report(c, "reduce_scatter 25 MiB in", time_it(c, 5, [&] { c.reduce_scatter_into(x25, part25); }));
  report(c, "all_gather 25 MiB out", time_it(c, 5, [&] { c.all_gather_into(part25, x25); }));
  const int next = (c.rank() + 1) % c.size(), prev = (c.rank() + c.size() - 1) % c.size();
  report(c, "sendrecv 1 MiB ring shift", time_it(c, 20, [&] { c.sendrecv(x1, next, got, prev); }));

  // The benchmark model (../shared/BENCHMARK.md defaults) with random gradients.
  HybridLM model{ModelConfig{}};
  const NamedParams params = model.named_parameters();
  int64_t n = 0;
  for (const auto& [name, p] : params) {
    p.impl()->grad = randn(p.shape(), 7 + n, p.dtype()).impl_ptr();
    ++n;
  }
  const double mb = model.num_parameters() * 4.0 / 1e6;
  if (c.rank() == 0) std::printf("model: %lld parameters (%.1f MB of f32 gradients)\n",
                                 static_cast<long long>(model.num_parameters()), mb);
  GradReducer bucketed(c, params), tiny(c, params, {1 << 20});
  GradReducer overlapped(c, params, {25 << 20, true}), overlapped_tiny(c, params, {1 << 20, true});
  report(c, "GradReducer.reduce (25 MiB buckets)", time_it(c, 3, [&] { bucketed.reduce(); }));
  report(c, "GradReducer.reduce (1 MiB buckets)", time_it(c, 3, [&] { tiny.reduce(); }));
  report(c, "GradReducer.reduce (25 MiB, overlap)", time_it(c, 3, [&] { overlapped.reduce(); }));
  report(c, "GradReducer.reduce (1 MiB, overlap)", time_it(c, 3, [&] { overlapped_tiny.reduce(); }));
  Tensor flat = zeros({model.num_parameters()});
  report(c, "one all_reduce of all gradients (no packing)", time_it(c, 3, [&] { c.all_reduce(flat); }));
  AdamW adamw(params);
  report(c, "DP step: reduce + AdamW", time_it(c, 3, [&] {
    bucketed.reduce();
    adamw.step();
  }));
  Zero1AdamW zero(c, params);
  report(c, "ZeRO-1 step: reduce-scatter + AdamW/p + gather", time_it(c, 3, [&] {
    zero.reduce_grads();
    zero.step();
  }));
  report(c, "AdamW step alone (for scale)", time_it(c, 3, [&] { adamw.step(); }));
  return 0;
}

}  // namespace skein::test
