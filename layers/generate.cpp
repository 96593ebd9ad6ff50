// generate.cpp — prefill + token-by-token decoding with per-layer caches (see generate.h).
#include "layers/generate.h"
#include <algorithm>
#include <cmath>
#include <numeric>

namespace skein {

int64_t sample_token(const Tensor& logits, const SamplingOptions& opt, Generator& gen) {
  std::vector<double> l = logits.to_vector();
  const int64_t V = static_cast<int64_t>(l.size());
  if (opt.temperature <= 0.0) return std::max_element(l.begin(), l.end()) - l.begin();
  std::vector<int64_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  int64_t k = opt.top_k > 0 ? std::min(opt.top_k, V) : V;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) { return l[a] > l[b]; });
  double mx = l[idx[0]], total = 0;
  std::vector<double> p(k);
  for (int64_t i = 0; i < k; ++i) total += p[i] = std::exp((l[idx[i]] - mx) / opt.temperature);
  double u = uniform({1}, gen, 0.0, 1.0, DType::f64).item() * total;
  for (int64_t i = 0; i < k; ++i) {
    if (u < p[i]) return idx[i];
    u -= p[i];
  }
  return idx[k - 1];
}

std::vector<int64_t> generate(HybridLM& model, const std::vector<int64_t>& prompt, const SamplingOptions& opt) {
  SKEIN_CHECK(!prompt.empty(), "generate: the prompt is empty");
  NoGradGuard no_grad;
  Generator gen(opt.seed);
  std::vector<MixerCache> caches;
  std::vector<int64_t> out = prompt;
  std::vector<double> p(prompt.begin(), prompt.end());
  Tensor logits = model.forward(from_vector(p, {1, static_cast<int64_t>(p.size())}, DType::i64, model.device()), &caches);
  for (int64_t i = 0; i < opt.max_new_tokens; ++i) {
    Tensor last = logits.narrow(1, logits.size(1) - 1, 1).reshape({-1});
    int64_t next = sample_token(last, opt, gen);
    out.push_back(next);
    if (i + 1 == opt.max_new_tokens) break;
    logits = model.forward(from_vector({static_cast<double>(next)}, {1, 1}, DType::i64, model.device()), &caches);
  }
  return out;
}

}  // namespace skein
