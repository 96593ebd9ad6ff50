// bench_core.cpp — Google Benchmark program for skein's core kernels. Every figure is
// measured beside its peer in the same benchmark: each iteration runs the kernel and the
// peer back to back (in rotating order) and times each, so machine load hits both alike.
//   sgemm/<MxNxK_ab>   skein::cpu::gemm<float> and skein::matmul vs cblas_sgemm called
//                      directly, at the benchmark model's run-A shapes, GFLOP/s;
//   elementwise/<op>   add / mul / silu / broadcast add, f32, 16M elements, vs std::memcpy
//                      of 16M floats; GB/s counts bytes read + written;
//   rows/<op>          softmax (rows of 512 and 8192), rms_norm (rows of 512) and
//                      cross_entropy (rows of 8192), forward and backward: rows/s, and GB/s
//                      vs the same memcpy.
// Threads: SKEIN_NUM_THREADS (default: the core count), for skein's pool and OpenBLAS alike.
// Inputs are uniform (cheaper to draw than normal). Each kernel's output is checked once
// against the f64 path before it is timed. At the
// end a Markdown table of the ratios is printed (medians with --benchmark_repetitions);
// docs/PERF.md holds that table and the command that produced it.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include "core/cpu/gemm.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace {

using skein::Shape;
using skein::Tensor;

constexpr int64_t kElems = int64_t(1) << 24;  // 16M f32 = 64 MiB per operand, well past L3

// One line of the summary: counters of benchmark `bench` (value, peer value, ratio).
struct Line {
  std::string figure, bench, value, peer, ratio, extra;
};
std::vector<Line>& summary_lines() {
  static std::vector<Line> lines;
  return lines;
}

// Runs every fn once per iteration, starting one further along each time, and returns
// each fn's total seconds; the iteration's time (manual time) is their sum.
std::vector<double> run_interleaved(benchmark::State& st, const std::vector<std::function<void()>>& fns) {
  using clock = std::chrono::steady_clock;
  std::vector<double> secs(fns.size(), 0.0);
  size_t start = 0;
  for (auto _ : st) {
    double total = 0;
    for (size_t j = 0; j < fns.size(); ++j) {
      const size_t v = (start + j) % fns.size();
      const auto t0 = clock::now();
      fns[v]();
      benchmark::ClobberMemory();
      const double dt = std::chrono::duration<double>(clock::now() - t0).count();
      secs[v] += dt;
      total += dt;
    }
    st.SetIterationTime(total);
    ++start;
  }
  return secs;
}

// The largest |got - want| / (atol max|want| + rtol |want|) over all elements; <= 1 passes.
double worst_error(const Tensor& got, const Tensor& want, double atol, double rtol) {
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::fabs(v));
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = std::fabs(g[i] - w[i]) / (atol * scale + rtol * std::fabs(w[i]) + 1e-300);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

bool check(benchmark::State& st, const char* what, const Tensor& got, const Tensor& want,
           double atol = 1e-6, double rtol = 1e-5) {
  const double e = worst_error(got, want, atol, rtol);
  if (e <= 1.0) return true;
  st.SkipWithError((std::string(what) + ": f32 result differs from the f64 path (worst error " +
                    std::to_string(e) + " x tolerance)").c_str());
  return false;
}

// ---- sgemm ------------------------------------------------------------------------------
// C[M,N] = op(A)[M,K] · op(B)[K,N]; A is stored [M,K] (or [K,M] when ta), B [K,N] (or [N,K]).
struct GemmShape {
  const char* what;
  int64_t M, N, K;
  bool ta, tb;
};

std::string gemm_id(const GemmShape& s) {
  return std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) + "_" +
         (s.ta ? "T" : "N") + (s.tb ? "T" : "N");
}

void bm_gemm(benchmark::State& st, GemmShape s) {
  skein::NoGradGuard no_grad;
  const Tensor a = skein::uniform(s.ta ? Shape{s.K, s.M} : Shape{s.M, s.K}, 1, -1, 1);
  const Tensor b = skein::uniform(s.tb ? Shape{s.N, s.K} : Shape{s.K, s.N}, 2, -1, 1);
  Tensor c = skein::zeros({s.M, s.N});
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* pc = c.data<float>();
  // matmul sees transposed views (BLAS flags) and allocates its output per call, as in training
  const Tensor av = s.ta ? a.transpose(0, 1) : a, bv = s.tb ? b.transpose(0, 1) : b;
  auto cblas = [&] {
    cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(s.M), static_cast<blasint>(s.N), static_cast<blasint>(s.K), 1.0f,
                pa, static_cast<blasint>(lda), pb, static_cast<blasint>(ldb), 0.0f, pc,
                static_cast<blasint>(s.N));
  };
  auto wrapper = [&] { skein::cpu::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, pa, lda, pb, ldb, 0.0f, pc, s.N); };
  auto matmul = [&] {
    Tensor out = skein::matmul(av, bv);
    benchmark::DoNotOptimize(out.raw_data());
  };
  {  // all three compute the same product
    cblas();
    const Tensor want = c.clone();
    wrapper();
    if (!check(st, "cpu::gemm", c, want, 1e-6, 1e-6)) return;
    if (!check(st, "matmul", skein::matmul(av, bv), want, 1e-6, 1e-6)) return;
  }
  const std::vector<double> t = run_interleaved(st, {cblas, wrapper, matmul});
  const double gflop = 2.0 * s.M * s.N * s.K * 1e-9 * static_cast<double>(st.iterations());
  st.counters["cblas GFLOP/s"] = gflop / t[0];
  st.counters["gemm GFLOP/s"] = gflop / t[1];
  st.counters["matmul GFLOP/s"] = gflop / t[2];
  st.counters["gemm/cblas"] = t[0] / t[1];
  st.counters["matmul/cblas"] = t[0] / t[2];
}

// Run A of the benchmark model: T = 4096 tokens, d = 512, SwiGLU h = 1408, vocab V = 8192.
// Every Linear y[T,out] = x[T,in] · W[in,out] has forward (NN), dx = dy · W^T (NT) and
// dW = x^T · dy (TN); plus the fused q|k|v shape the project takes as its sgemm peak.
std::vector<GemmShape> run_a_shapes() {
  constexpr int64_t T = 4096, d = 512, h = 1408, V = 8192;
  struct Lin { const char* name; int64_t in, out; };
  const Lin lins[] = {{"proj d->d", d, d}, {"W1/W3 d->h", d, h}, {"W2 h->d", h, d}, {"head d->V", d, V}};
  std::vector<GemmShape> out;
  out.push_back({"qkv d->3d fwd", T, 3 * d, d, false, false});
  for (const Lin& l : lins) {
    out.push_back({l.name, T, l.out, l.in, false, false});
    out.push_back({l.name, T, l.in, l.out, false, true});
    out.push_back({l.name, l.in, l.out, T, true, false});
  }
  return out;
}

void register_gemm() {
  for (const GemmShape& s : run_a_shapes()) {
    const std::string name = "sgemm/" + gemm_id(s);
    benchmark::RegisterBenchmark(name.c_str(), bm_gemm, s)->UseManualTime()->Unit(benchmark::kMillisecond);
    const std::string fig = std::string("sgemm ") + s.what + " " + gemm_id(s);
    summary_lines().push_back({fig + ", cpu::gemm vs cblas_sgemm (GFLOP/s)", name, "gemm GFLOP/s",
                               "cblas GFLOP/s", "gemm/cblas", ""});
    summary_lines().push_back({fig + ", matmul vs cblas_sgemm (GFLOP/s)", name, "matmul GFLOP/s",
                               "cblas GFLOP/s", "matmul/cblas", ""});
  }
}

// ---- memcpy, the peer of the bandwidth-bound kernels -------------------------------------
// std::memcpy of kElems floats, split over skein's pool as the kernels are.
struct Memcpy {
  Tensor src = skein::uniform({kElems}, 3, -4, 4), dst = skein::zeros({kElems});
  void operator()() const {
    const float* ps = src.data<float>();
    float* pd = dst.data<float>();
    skein::parallel_for(0, kElems, 1 << 16, [&](int64_t lo, int64_t hi) {
      std::memcpy(pd + lo, ps + lo, static_cast<size_t>(hi - lo) * sizeof(float));
    });
  }
  static constexpr double bytes = 2.0 * kElems * sizeof(float);
};

// Sets "GB/s", "memcpy GB/s" and "vs memcpy" from the two timings (t[0] kernel, t[1] memcpy).
void set_bandwidth(benchmark::State& st, const std::vector<double>& t, double bytes) {
  const double it = static_cast<double>(st.iterations());
  st.counters["GB/s"] = bytes * it / t[0] * 1e-9;
  st.counters["memcpy GB/s"] = Memcpy::bytes * it / t[1] * 1e-9;
  st.counters["vs memcpy"] = (bytes / t[0]) / (Memcpy::bytes / t[1]);
}

// ---- elementwise ------------------------------------------------------------------------
using Binary = std::function<Tensor(const Tensor&, const Tensor&)>;

// op(a, b), a: [kElems/512, 512], b: b_shape; `arrays` = how many kElems arrays it reads + writes.
void bm_elementwise(benchmark::State& st, Binary op, Shape b_shape, int arrays) {
  skein::NoGradGuard no_grad;
  const Tensor a = skein::uniform({kElems / 512, 512}, 4, -4, 4), b = skein::uniform(b_shape, 5, -4, 4);
  const Tensor small_a = a.narrow(0, 0, 64), small_b = b.dim() == 2 ? b.narrow(0, 0, 64) : b;
  if (!check(st, "elementwise", op(small_a, small_b), op(small_a.to(skein::DType::f64), small_b.to(skein::DType::f64))))
    return;
  Memcpy mc;
  auto kernel = [&] {
    Tensor c = op(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  };
  set_bandwidth(st, run_interleaved(st, {kernel, mc}), static_cast<double>(arrays) * kElems * sizeof(float));
}

void register_elementwise() {
  struct Case { const char* name; Binary op; Shape b; int arrays; };
  const Shape full{kElems / 512, 512};
  const Case cases[] = {
      {"add", [](const Tensor& a, const Tensor& b) { return skein::add(a, b); }, full, 3},
      {"mul", [](const Tensor& a, const Tensor& b) { return skein::mul(a, b); }, full, 3},
      {"silu", [](const Tensor& a, const Tensor&) { return skein::silu(a); }, {1}, 2},
      {"add_bcast", [](const Tensor& a, const Tensor& b) { return skein::add(a, b); }, {512}, 2},
  };
  for (const Case& c : cases) {
    const std::string name = std::string("elementwise/") + c.name;
    benchmark::RegisterBenchmark(name.c_str(), bm_elementwise, c.op, c.b, c.arrays)
        ->UseManualTime()->Unit(benchmark::kMillisecond);
    const std::string what = c.b.size() == 1 && c.b[0] == 512 ? "[32768,512] + [512]" : "16M";
    summary_lines().push_back({std::string(c.name) + " f32 " + what + ", vs memcpy (GB/s)", name, "GB/s",
                               "memcpy GB/s", "vs memcpy", ""});
  }
}

// ---- row-wise ops -----------------------------------------------------------------------
// Forward y = op(x) or backward dx = (the op's recorded backward)(dy) on x: [kElems/n, n].
// Backward calls the node's closure directly: no engine, no .grad accumulation.
enum class RowOp { softmax, rms_norm, cross_entropy };

Tensor row_forward(RowOp which, const Tensor& x, const Tensor& gain, const Tensor& targets) {
  switch (which) {
    case RowOp::softmax: return skein::softmax(x, -1);
    case RowOp::rms_norm: return skein::rms_norm(x, gain);
    case RowOp::cross_entropy: return skein::cross_entropy(x, targets);
  }
  return Tensor();
}

Tensor row_backward(const Tensor& y, const Tensor& dy) {
  skein::NoGradGuard no_grad;
  return y.grad_fn()->backward({dy})[0];
}

void bm_rows(benchmark::State& st, RowOp which, int64_t n, bool backward) {
  const int64_t rows = kElems / n;
  const Tensor x = skein::uniform({rows, n}, 6, -4, 4).requires_grad_();
  const Tensor gain = skein::uniform({n}, 7, 0.5, 1.5).requires_grad_();
  const Tensor targets = skein::uniform({rows}, 8, 0, static_cast<double>(n)).to(skein::DType::i64);
  const Tensor y = row_forward(which, x, gain, targets);
  const Tensor dy = which == RowOp::cross_entropy ? skein::ones({}) : skein::uniform({rows, n}, 9, -1, 1);
  {  // f32 against f64 on the first 64 rows (cross_entropy: its mean over them)
    const Tensor x64 = x.detach().narrow(0, 0, 64).to(skein::DType::f64).requires_grad_();
    const Tensor xs = x.detach().narrow(0, 0, 64).contiguous().requires_grad_();
    const Tensor ts = targets.narrow(0, 0, 64).contiguous();
    const Tensor y32 = row_forward(which, xs, gain, ts), y64 = row_forward(which, x64, gain.to(skein::DType::f64), ts);
    if (!check(st, "forward", y32, y64)) return;
    const Tensor d = which == RowOp::cross_entropy ? dy : dy.narrow(0, 0, 64).contiguous();
    if (!check(st, "backward", row_backward(y32, d), row_backward(y64, d.to(skein::DType::f64)))) return;
  }
  Memcpy mc;
  auto kernel = [&] {
    skein::NoGradGuard no_grad;
    Tensor out = backward ? row_backward(y, dy) : row_forward(which, x, gain, targets);
    benchmark::DoNotOptimize(out.raw_data());
  };
  // forward reads x and writes y (cross_entropy: reads x only); backward also reads dy
  // (cross_entropy: reads x, writes dx)
  const double arrays = which == RowOp::cross_entropy ? (backward ? 2 : 1) : (backward ? 3 : 2);
  const std::vector<double> t = run_interleaved(st, {kernel, mc});
  set_bandwidth(st, t, arrays * kElems * sizeof(float));
  st.counters["rows/s"] = static_cast<double>(rows) * static_cast<double>(st.iterations()) / t[0];
}

void register_rows() {
  struct Case { const char* name; RowOp op; int64_t n; };
  const Case cases[] = {{"softmax", RowOp::softmax, 512}, {"softmax", RowOp::softmax, 8192},
                        {"rms_norm", RowOp::rms_norm, 512}, {"cross_entropy", RowOp::cross_entropy, 8192}};
  for (const Case& c : cases)
    for (bool bwd : {false, true}) {
      const std::string dir = bwd ? "bwd" : "fwd";
      const std::string name = std::string("rows/") + c.name + "/" + dir + "/n" + std::to_string(c.n);
      benchmark::RegisterBenchmark(name.c_str(), bm_rows, c.op, c.n, bwd)
          ->UseManualTime()->Unit(benchmark::kMillisecond);
      summary_lines().push_back({std::string(c.name) + " " + (bwd ? "backward" : "forward") + ", " +
                                     std::to_string(kElems / c.n) + " rows of " + std::to_string(c.n) +
                                     ", vs memcpy (GB/s)",
                                 name, "GB/s", "memcpy GB/s", "vs memcpy", "rows/s"});
    }
}

// ---- the summary ------------------------------------------------------------------------
// Console output as usual; each benchmark's counters are kept (the median aggregate when
// repeated) and printed at the end as a Markdown table.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  using benchmark::ConsoleReporter::ConsoleReporter;
  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) {
        errors_ = true;
        continue;
      }
      const bool single = r.run_type == Run::RT_Iteration && r.repetitions <= 1;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (!single && !median) continue;
      for (const auto& [key, counter] : r.counters) values_[r.run_name.function_name][key] = counter.value;
    }
  }

  void print_summary() const {
    std::printf("\n| figure | value | peer | ratio | rows/s |\n|---|---:|---:|---:|---:|\n");
    for (const Line& l : summary_lines()) {
      auto it = values_.find(l.bench);
      if (it == values_.end()) continue;
      const auto& c = it->second;
      std::printf("| %s | %.1f | %.1f | %.3f |", l.figure.c_str(), c.at(l.value), c.at(l.peer), c.at(l.ratio));
      if (!l.extra.empty()) std::printf(" %.3g |\n", c.at(l.extra));
      else std::printf(" |\n");
    }
  }
  bool errors() const { return errors_; }

 private:
  std::map<std::string, std::map<std::string, double>> values_;
  bool errors_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = skein::num_threads();  // SKEIN_NUM_THREADS, else the core count
  skein::set_num_threads(threads);           // resizes the pool and tells OpenBLAS
  openblas_set_num_threads(threads);         // (already done; stated for the reader)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("skein_threads", std::to_string(skein::num_threads()));
  benchmark::AddCustomContext("openblas_threads", std::to_string(openblas_get_num_threads()));
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  register_gemm();
  register_elementwise();
  register_rows();
  SummaryReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                 : benchmark::ConsoleReporter::OO_Tabular);
  const size_t ran = benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_summary();
  benchmark::Shutdown();
  return ran == 0 || reporter.errors() ? 1 : 0;  // a failed check or an empty filter fails
}
