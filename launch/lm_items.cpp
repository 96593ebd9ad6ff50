// lm_items.cpp — loglikelihood items scored by skein (see lm_items.h).
// reference: EleutherAI/lm-evaluation-harness lm_eval/models/huggingface.py (_encode_pair,
// _loglikelihood_tokens) and lm_eval/api/task.py (loglikelihood: acc = is_greedy, perplexity).
#include "launch/lm_items.h"
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace skein {

std::vector<LmItem> read_lm_items(const std::string& path) {
  std::ifstream in(path);
  SKEIN_CHECK(in, "lm items: cannot read '", path, "'");
  std::vector<LmItem> items;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::concat(path, ":", n, ": not a JSON object (", e.what(), ")"));
    }
    SKEIN_CHECK(j.is_object() && j.contains("context") && j["context"].is_string() && j.contains("continuation") &&
                    j["continuation"].is_string(),
                path, ":", n, ": an item needs string fields \"context\" and \"continuation\"");
    SKEIN_CHECK(!j["continuation"].get<std::string>().empty(), path, ":", n, ": the continuation is empty");
    items.push_back({j["context"], j["continuation"]});
  }
  SKEIN_CHECK(!items.empty(), "lm items: '", path, "' has no items");
  return items;
}

LmItemsSummary score_lm_items(HybridLM& model, const Tokenizer& tok, const std::vector<LmItem>& items,
                              int64_t max_length) {
  NoGradGuard no_grad;
  LmItemsSummary out;
  double ll_sum = 0, greedy = 0;
  for (const LmItem& item : items) {
    std::string context = item.context, continuation = item.continuation;
    const size_t keep = context.find_last_not_of(" \t\n\r\f\v");  // Python's str.rstrip()
    const size_t cut = keep == std::string::npos ? 0 : keep + 1;  // trailing spaces go to the continuation
    continuation = context.substr(cut) + continuation;
    context.resize(cut);
    std::vector<int64_t> whole = tok.encode(context + continuation);
    // an empty context (before stripping) is the end-of-text token, as lm_eval's [eot_token_id]
    std::vector<int64_t> ctx = item.context.empty() ? std::vector<int64_t>{tok.eos_id()} : tok.encode(context);
    if (item.context.empty()) whole.insert(whole.begin(), tok.eos_id());
    const size_t n_ctx = std::min(ctx.size(), whole.size());
    const std::vector<int64_t> cont(whole.begin() + static_cast<std::ptrdiff_t>(n_ctx), whole.end());
    SKEIN_CHECK(!cont.empty(), "lm items: the continuation '", item.continuation, "' has no token of its own after '",
                item.context, "'");
    std::vector<int64_t> seq = whole;
    if (static_cast<int64_t>(seq.size()) > max_length + 1) seq.erase(seq.begin(), seq.end() - (max_length + 1));
    seq.pop_back();  // the input: every token but the last
    const int64_t L = static_cast<int64_t>(seq.size()), V = model.cfg.vocab_size;
    Tensor logits = model.forward(from_vector(std::vector<double>(seq.begin(), seq.end()), {1, L}, DType::i64));
    const std::vector<double> lv = logits.reshape({L, V}).to(DType::f64).to_vector();
    LmItemScore s;
    s.greedy = true;
    s.tokens = static_cast<int64_t>(cont.size());
    for (int64_t j = 0; j < s.tokens; ++j) {
      const double* row = lv.data() + (L - s.tokens + j) * V;
      int64_t best = 0;
      double mx = row[0];
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > mx) mx = row[v], best = v;
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      const int64_t target = cont[static_cast<size_t>(j)];
      s.loglikelihood += row[target] - mx - std::log(z);
      s.greedy = s.greedy && best == target;
    }
    ll_sum += s.loglikelihood;
    greedy += s.greedy;
    out.items.push_back(s);
  }
  const double n = static_cast<double>(items.size());
  out.acc = greedy / n;
  out.perplexity = std::exp(-ll_sum / n);
  return out;
}

}  // namespace skein
