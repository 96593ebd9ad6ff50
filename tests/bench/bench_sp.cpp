// bench_sp.cpp — sequence-parallel attention (parallel/softmax_sp.h, parallel/lasp2.h) under mpirun:
// the bytes one call sends (forward; forward + backward; the zigzag re-layout apart), the
// most of any rank, vs the tokens per rank T, for LASP-2H, Ring and zigzag Ring, and LASP-2 on
// a linear-attention layer of the same width (fixed per-head decay, as the benchmark model's L
// layers). B = 1, H = 8, head dim 64, f32; Hkv = 2 by default (the table of
// docs/SEQUENCE_PARALLEL.md), --kv-heads 8 for the benchmark model (docs/PERF.md, "Sequence
// parallelism"); LASP-2 always has H kv heads. (No times: docs/PERF.md reports ratios against
// a peer only.)
// Prints on rank 0 one Markdown row per (method, T), then one table of the forward + backward
// bytes with a row per T and a column per method.
// Usage: mpirun -np 4 bench_sp [--min-t 256] [--max-t 1024] [--kv-heads 2] [--threads 1]
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>
#include "core/ops.h"
#include "core/threadpool.h"
#include "parallel/lasp2.h"
#include "parallel/mpi_comm.h"
#include "parallel/runtime.h"
#include "parallel/softmax_sp.h"

using namespace skein;

namespace {

struct Row {
  int64_t fwd_bytes = 0, all_bytes = 0, relayout_bytes = 0;
};

// The largest value over the ranks of comm (the zigzag re-layout moves 0 to 2 halves per rank).
int64_t max_over(Communicator& comm, int64_t x) {
  Tensor t = scalar(static_cast<double>(x), DType::f64);
  comm.all_reduce(t, ReduceOp::max);
  return static_cast<int64_t>(t.item());
}

Row run_one(Communicator& sp, const std::string& method, int64_t T, int64_t Hkv) {
  const int64_t B = 1, H = 8, D = 64;
  Generator g(1 + sp.rank());
  const int64_t Hk = method == "lasp2" ? H : Hkv;  // linear attention: H kv heads
  Tensor q = randn({B, H, T, D}, g).requires_grad_(), k = randn({B, Hk, T, D}, g).requires_grad_(),
         v = randn({B, Hk, T, D}, g).requires_grad_();
  const Tensor decay = full({H}, std::log(0.99));  // log_gate: [H]
  auto call = [&] {
    if (method == "lasp2") return lasp2_linear_attention(sp, q, k, v, decay, 0.125).out;
    if (method == "lasp2h") return lasp2h_attention(sp, q, k, v, 0.125);
    return ring_attention(sp, q, k, v, 0.125, 0, method == "zigzag");
  };
  sum(call()).backward();  // warm-up
  Row row;
  sp.stats().reset();
  Tensor out = call();
  row.fwd_bytes = sp.stats().total_sent();
  sum(out).backward();
  row.all_bytes = sp.stats().total_sent();
  row.relayout_bytes = sp.stats().get("sendrecv").bytes_sent;
  return {max_over(sp, row.fwd_bytes), max_over(sp, row.all_bytes), max_over(sp, row.relayout_bytes)};
}

// The forward + backward bytes, a row per T and a column per method, and Ring / LASP-2.
void print_summary(int W, const std::vector<std::string>& methods, const std::map<std::string, std::map<int64_t, Row>>& rows) {
  std::printf("\nfwd+bwd bytes sent per rank per layer (W = %d)\n\n| T per rank | N = W T |", W);
  for (const std::string& m : methods) std::printf(" %s |", m.c_str());
  std::printf(" ring / lasp2 |\n|---:|---:|");
  for (size_t i = 0; i <= methods.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (const auto& [T, lasp2] : rows.at("lasp2")) {
    std::printf("| %lld | %lld |", static_cast<long long>(T), static_cast<long long>(W * T));
    for (const std::string& m : methods) std::printf(" %lld |", static_cast<long long>(rows.at(m).at(T).all_bytes));
    std::printf(" %.1f |\n", static_cast<double>(rows.at("ring").at(T).all_bytes) / static_cast<double>(lasp2.all_bytes));
  }
}

int bench_main(int argc, char** argv) {
  int64_t min_t = 256, max_t = 1024, kv_heads = 2, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--min-t") min_t = std::stoll(argv[i + 1]);
    else if (k == "--max-t") max_t = std::stoll(argv[i + 1]);
    else if (k == "--kv-heads") kv_heads = std::stoll(argv[i + 1]);
    else if (k == "--threads") threads = std::stoll(argv[i + 1]);
    else { std::fprintf(stderr, "bench_sp: unknown option %s\n", argv[i]); return 2; }
  }
  SKEIN_CHECK(kv_heads >= 1 && 8 % kv_heads == 0, "bench_sp: --kv-heads must divide the 8 heads, got ", kv_heads);
  set_num_threads(static_cast<int>(threads));
  std::unique_ptr<MpiComm> sp = MpiComm::world();
  if (sp->rank() == 0)
    std::printf("| method | W | T per rank | fwd bytes sent | fwd+bwd bytes sent | of which zigzag re-layout |\n"
                "|---|---:|---:|---:|---:|---:|\n");
  const std::vector<std::string> methods = {"lasp2", "lasp2h", "ring", "zigzag"};
  std::map<std::string, std::map<int64_t, Row>> rows;
  for (const std::string& method : methods) {
    for (int64_t T = min_t; T <= max_t; T *= 2) {
      const Row row = run_one(*sp, method, T, kv_heads);
      rows[method][T] = row;
      if (sp->rank() != 0) continue;
      std::printf("| %s | %d | %lld | %lld | %lld | %lld |\n", method.c_str(), sp->size(),
                  static_cast<long long>(T), static_cast<long long>(row.fwd_bytes),
                  static_cast<long long>(row.all_bytes), static_cast<long long>(row.relayout_bytes));
      std::fflush(stdout);
    }
  }
  if (sp->rank() == 0) print_summary(sp->size(), methods, rows);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MpiRuntime mpi(argc, argv);
  return abort_on_exception([&] { return bench_main(argc, argv); });
}
