// bench_overlap.cpp — `test_parallel --bench-overlap [reps]` (2 ranks): how much of the
// communication overlap hides, on the benchmark model (ModelConfig defaults, ../shared/
// BENCHMARK.md) at run A (2 x 2048 tokens per step), printed by rank 0.
//   DP     dp 2, one sequence per rank: forward + backward + GradReducer::reduce (25 MiB buckets)
//   LASP-2 sp 2, both sequences, 1024 tokens per rank: forward + backward (the L layers' state
//          all-gathers; the S layer's Ring Attention runs the same in every mode)
// Each in three modes, interleaved rep by rep: "blocking" (overlap off), "overlap", "skipped"
// (parallel.bench_skip_comm: no communication at all). Per mode the median step time of the
// slowest rank, and (DP) the seconds the reducer spent on the critical path: the hook inside
// backward plus reduce(). Hidden fraction = (blocking - overlap) / (blocking - skipped).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "core/ops.h"
#include "helpers.h"
#include "layers/model.h"
#include "parallel/data_parallel.h"
#include "parallel/grid.h"
#include "parallel/model_parallel.h"

namespace skein::test {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double slowest(Communicator& c, double x) {
  Tensor m = from_vector({x}, {1}, DType::f64);
  c.all_reduce(m, ReduceOp::max);
  return m.at({0});
}

Tensor tokens(int64_t B, int64_t T, int64_t V, int64_t seed) {
  return uniform({B, T}, static_cast<uint64_t>(seed), 0.0, static_cast<double>(V), DType::f64).to(DType::i64);
}

struct Mode {
  const char* name;
  bool overlap, skip;
};
const Mode kModes[] = {{"blocking", false, false}, {"overlap", true, false}, {"skipped", false, true}};

void print_result(Communicator& c, const char* what, const std::vector<std::vector<double>>& step,
                  const std::vector<std::vector<double>>& comm) {
  if (c.rank() != 0) return;
  double t[3], k[3];
  for (int m = 0; m < 3; ++m) {
    t[m] = median(step[static_cast<size_t>(m)]);
    k[m] = comm.empty() ? 0.0 : median(comm[static_cast<size_t>(m)]);
    std::printf("%-8s %-9s step %8.1f ms", what, kModes[m].name, t[m] * 1e3);
    if (!comm.empty()) std::printf("   reducer on the critical path %7.1f ms", k[m] * 1e3);
    std::printf("\n");
  }
  const double cost = t[0] - t[2], exposed = t[1] - t[2];
  std::printf("%-8s communication by step time: %.1f ms blocking, %.1f ms exposed with overlap -> hidden %.0f%%\n",
              what, cost * 1e3, exposed * 1e3, cost > 0 ? 100.0 * (1 - exposed / cost) : 0.0);
  if (!comm.empty()) {
    const double kc = k[0] - k[2], ke = k[1] - k[2];
    std::printf("%-8s communication by reducer time: %.1f ms blocking, %.1f ms exposed with overlap -> hidden %.0f%%\n",
                what, kc * 1e3, ke * 1e3, kc > 0 ? 100.0 * (1 - ke / kc) : 0.0);
  }
  std::fflush(stdout);
}

}  // namespace

int run_bench_overlap(int reps) {
  MpiComm& c = world();
  SKEIN_CHECK(c.size() == 2, "--bench-overlap runs on 2 ranks, got ", c.size());
  const ModelConfig cfg;  // the benchmark model
  const int64_t T = 2048, V = cfg.vocab_size;
  if (c.rank() == 0)
    std::printf("test_parallel --bench-overlap: 2 ranks, benchmark model, run A (2 x %lld tokens), %d reps\n",
                static_cast<long long>(T), reps);

  {  // DP: one sequence per rank
    ProcessGrid grid(c, 2, 1, 1);
    HybridLM model(cfg, std::make_shared<CommModelParallel>(grid));
    const NamedParams params = model.named_parameters();
    std::vector<std::unique_ptr<GradReducer>> reducers;
    for (const Mode& m : kModes) reducers.push_back(std::make_unique<GradReducer>(c, params, DataParallelOptions{25 << 20, m.overlap, m.skip}));
    Tensor ids = tokens(1, T, V, 11 + c.rank()), tgt = tokens(1, T, V, 23 + c.rank());
    std::vector<std::vector<double>> step(3), comm(3);
    for (int r = -1; r < reps; ++r)
      for (int m = 0; m < 3; ++m) {
        GradReducer& red = *reducers[static_cast<size_t>(m)];
        model.zero_grad();
        c.barrier();
        const double t0 = now();
        red.arm();
        model.loss(ids, tgt).total.backward();
        red.reduce();
        const double dt = slowest(c, now() - t0);
        const auto& o = red.last_overlap();
        const double on_path = slowest(c, o.comm_seconds_in_backward + o.comm_seconds_in_reduce);
        if (r >= 0) {  // rep -1: warm-up
          step[static_cast<size_t>(m)].push_back(dt);
          comm[static_cast<size_t>(m)].push_back(on_path);
        }
        if (c.rank() == 0 && m == 1 && r == 0)
          std::printf("DP       %zu buckets, %zu launched during backward\n", red.num_buckets(), o.launched_in_backward);
      }
    print_result(c, "DP", step, comm);
  }
  {  // LASP-2: both sequences, each rank half of every sequence
    ProcessGrid grid(c, 1, 2, 1);
    std::vector<std::unique_ptr<HybridLM>> models;
    for (const Mode& m : kModes) {
      Lasp2Options o;
      o.overlap = m.overlap;
      o.skip_comm = m.skip;
      models.push_back(std::make_unique<HybridLM>(cfg, std::make_shared<CommModelParallel>(grid, "ring", o)));
    }
    Tensor ids = tokens(2, T / 2, V, 31 + c.rank()), tgt = tokens(2, T / 2, V, 37 + c.rank());
    std::vector<std::vector<double>> step(3);
    for (int r = -1; r < reps; ++r)
      for (int m = 0; m < 3; ++m) {
        c.barrier();
        const double t0 = now();
        models[static_cast<size_t>(m)]->loss(ids, tgt).total.backward();
        const double dt = slowest(c, now() - t0);
        if (r >= 0) step[static_cast<size_t>(m)].push_back(dt);
      }
    print_result(c, "LASP-2", step, {});
  }
  return 0;
}

}  // namespace skein::test
