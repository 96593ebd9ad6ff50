// lm_items.h — skein's own evaluation of a loglikelihood task (the items lm-evaluation-harness
// scores with output_type: loglikelihood): a JSONL file of {"context": ..., "continuation": ...}
// items; per item the summed log-probability of the continuation's tokens after the context and
// whether every one of them is the greedy (argmax) choice. Tokenized as lm-evaluation-harness
// does (HFLM._encode_pair): trailing spaces of the context move to the continuation, the
// continuation's tokens are those of encode(context + continuation) after the first
// len(encode(context)), no special token is added. acc = mean(greedy), perplexity =
// exp(-mean(loglikelihood)) — lm_eval's "acc" and "perplexity" for such a task.
// examples/lm_eval.sh runs both; tests/launch/check_lm_eval.py checks they agree.
#pragma once
#include <string>
#include <vector>
#include "data/tokenizer.h"
#include "layers/model.h"

namespace skein {

struct LmItem {
  std::string context, continuation;
};

struct LmItemScore {
  double loglikelihood = 0;  // Σ log p(continuation token | prefix), natural log
  bool greedy = false;       // every continuation token is the argmax
  int64_t tokens = 0;        // continuation tokens
};

struct LmItemsSummary {
  double acc = 0, perplexity = 0;
  std::vector<LmItemScore> items;
};

// Reads `path` (one JSON object a line; blank lines skipped); errors name the file and line.
std::vector<LmItem> read_lm_items(const std::string& path);
// Scores every item with `model` (one sequence at a time, no grad). An item whose context and
// continuation exceed `max_length` tokens keeps the last max_length + 1 (as lm_eval truncates).
LmItemsSummary score_lm_items(HybridLM& model, const Tokenizer& tok, const std::vector<LmItem>& items,
                              int64_t max_length = 2048);

}  // namespace skein
