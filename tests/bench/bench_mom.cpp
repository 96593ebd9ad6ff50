// bench_mom.cpp — MoM's training-step time against a gated-DeltaNet L model of the same width,
// measured interleaved in one run (a shared machine: ratios, not bare times), with variants
// that attribute the extra time: no shared memory, top-1 routing, one memory, no short conv.
// Default model: configs/mqar.yaml's width (d 128, 2 heads, 2 layers, SwiGLU 352, vocab 256)
// at seq 256, batch 32 — the setting where MoM was reported 4-5x slower than LL.
// Usage: bench_mom [--seq 256] [--batch 32] [--d 128] [--heads 2] [--steps 5] [--threads 1]
//                  [--only I]  (run variant I alone, e.g. under perf: 0 = LL, 1 = MM shared, ...)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "core/threadpool.h"
#include "layers/model.h"
#include "optim/adamw.h"

using namespace skein;
using Clock = std::chrono::steady_clock;

namespace {

struct Variant {
  std::string name;
  std::function<void(ModelConfig&)> tweak;
  std::unique_ptr<HybridLM> model;
  std::unique_ptr<AdamW> opt;
  std::vector<double> times;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t seq = 256, batch = 32, d = 128, heads = 2, steps = 5, threads = 1, only = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int64_t v = std::stoll(argv[i + 1]);
    if (k == "--seq") seq = v;
    else if (k == "--batch") batch = v;
    else if (k == "--d") d = v;
    else if (k == "--heads") heads = v;
    else if (k == "--steps") steps = v;
    else if (k == "--threads") threads = v;
    else if (k == "--only") only = v;
    else { std::fprintf(stderr, "bench_mom: unknown option %s\n", k.c_str()); return 2; }
  }
  set_num_threads(static_cast<int>(threads));
  ModelConfig base;
  base.vocab_size = 256;
  base.d_model = d;
  base.n_heads = heads;
  base.n_layers = 2;
  base.mlp_hidden = 352 * d / 128;
  base.linear_variant = "gated_delta";
  base.mom_variant = "gated_delta";
  std::vector<Variant> vs(6);
  const char* names[] = {"LL gated_delta", "MM 4 mem top-2 shared", "MM no shared", "MM top-1",
                         "MM 1 mem top-1 no shared", "MM no conv"};
  for (size_t i = 0; i < vs.size(); ++i) vs[i].name.assign(names[i]);
  vs[0].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'L'); };
  vs[1].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'M'); };
  vs[2].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'M'); c.mom_shared_memory = false; };
  vs[3].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'M'); c.mom_topk = 1; };
  vs[4].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'M'); c.mom_memories = 1; c.mom_topk = 1; c.mom_shared_memory = false; };
  vs[5].tweak = [](ModelConfig& c) { c.layer_pattern = std::string(1, 'M'); c.short_conv = std::string("false"); };
  for (Variant& v : vs) {
    ModelConfig c = base;
    v.tweak(c);
    v.model = std::make_unique<HybridLM>(c);
    v.opt = std::make_unique<AdamW>(v.model->named_parameters(), AdamWOptions{});
  }
  Tensor ids = uniform({batch, seq + 1}, 7, 0.0, 256.0, DType::f64).to(DType::i64);
  Tensor x = ids.narrow(1, 0, seq).contiguous(), y = ids.narrow(1, 1, seq).contiguous();
  if (only >= 0) {
    if (only >= static_cast<int64_t>(vs.size())) { std::fprintf(stderr, "bench_mom: --only %lld: no such variant\n", (long long)only); return 2; }
    std::vector<Variant> one;
    one.push_back(std::move(vs[static_cast<size_t>(only)]));
    vs = std::move(one);
  }
  for (int64_t s = 0; s < steps + 1; ++s)
    for (Variant& v : vs) {  // interleaved: every variant sees the same machine load
      auto t0 = Clock::now();
      v.opt->zero_grad();
      v.model->loss(x, y).total.backward();
      v.opt->step();
      if (s > 0) v.times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  const double ll = median(vs[0].times);  // with --only: the ratio to itself
  std::printf("bench_mom: d %lld, %lld heads, 2 layers, seq %lld, batch %lld, %lld threads, median of %lld steps\n",
              (long long)d, (long long)heads, (long long)seq, (long long)batch, (long long)threads, (long long)steps);
  for (Variant& v : vs)
    std::printf("  %-28s %8.1f ms/step  %5.2fx LL\n", v.name.c_str(), 1e3 * median(v.times), median(v.times) / ll);
  return 0;
}
