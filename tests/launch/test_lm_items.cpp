// test_lm_items.cpp — skein's own scoring of loglikelihood items (launch/lm_items.h): the
// lm-evaluation-harness tokenization (trailing whitespace to the continuation, continuation =
// tokens of the whole after the context's), the log-likelihood and greedy flag against a direct
// computation, item-file errors; and HfLmEval.WritesCheckpoint, which feeds
// tests/launch/check_lm_eval.py (examples/lm_eval.sh: lm_eval's acc == skein's).
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include "configs/loader.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "data/bpe.h"
#include "data/token_file.h"
#include "launch/checkpoint.h"
#include "launch/lm_items.h"
#include "launch/trainer.h"

namespace fs = std::filesystem;

namespace skein {
namespace {

const fs::path kRepo = fs::path(SKEIN_SOURCE_DIR);

std::string temp_path(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_lm_items_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

ModelConfig small(int64_t vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.mlp_hidden = 48;
  c.layer_pattern = "LS";
  c.init_std = 0.3;  // peaked predictions: some greedy hits
  return c;
}

TEST(LmItems, ScoresAsLmEvalTokenizes) {
  ByteTokenizer tok;
  HybridLM model(small(257));
  // "ab " + "c": the space moves to the continuation, so the continuation is " c" (2 byte tokens)
  const LmItemsSummary s = score_lm_items(model, tok, {{"ab ", "c"}, {"", "xy"}});
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[0].tokens, 2);
  EXPECT_EQ(s.items[1].tokens, 2);  // after the end-of-text token
  // direct: log-softmax of the logits of "ab " at the last two positions
  NoGradGuard no_grad;
  auto direct = [&](const std::vector<int64_t>& seq, int64_t n_cont) {
    std::vector<int64_t> in(seq.begin(), seq.end() - 1);
    const int64_t L = static_cast<int64_t>(in.size());
    Tensor lp = log_softmax(model.forward(from_vector(std::vector<double>(in.begin(), in.end()), {1, L}, DType::i64)), -1);
    std::vector<double> v = lp.to(DType::f64).to_vector();
    double ll = 0;
    bool greedy = true;
    for (int64_t j = L - n_cont; j < L; ++j) {
      const double* row = v.data() + j * 257;
      const int64_t target = seq[static_cast<size_t>(j + 1)];
      ll += row[target];
      greedy = greedy && std::max_element(row, row + 257) - row == target;
    }
    return std::pair{ll, greedy};
  };
  const auto [ll0, g0] = direct({'a', 'b', ' ', 'c'}, 2);
  EXPECT_NEAR(s.items[0].loglikelihood, ll0, 1e-4);
  EXPECT_EQ(s.items[0].greedy, g0);
  const auto [ll1, g1] = direct({256, 'x', 'y'}, 2);
  EXPECT_NEAR(s.items[1].loglikelihood, ll1, 1e-4);
  EXPECT_DOUBLE_EQ(s.perplexity, std::exp(-(s.items[0].loglikelihood + s.items[1].loglikelihood) / 2));
  EXPECT_DOUBLE_EQ(s.acc, (g0 + g1) / 2.0);
}

TEST(LmItems, ItemFileErrorsNameFileAndLine) {
  const std::string p = temp_path("bad.jsonl");
  std::ofstream(p) << "{\"context\": \"a\", \"continuation\": \" b\"}\n\n{\"context\": \"a\"}\n";
  try {
    read_lm_items(p);
    ADD_FAILURE() << "accepted an item without continuation";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ":3: an item needs"), std::string::npos) << e.what();
  }
  std::ofstream(p) << "not json\n";
  EXPECT_THROW(read_lm_items(p), Error);
  fs::remove_all(p);
  EXPECT_EQ(read_lm_items((kRepo / "examples" / "lm_eval" / "kjv_next_word.jsonl").string()).size(), 101u);
}

// Not a check by itself: with SKEIN_LM_EVAL_DIR set (by tests/launch/check_lm_eval.py), writes
// there a token file (a BPE tokenizer trained on the task's text) and a checkpoint of a small
// LS hybrid trained for 600 steps on it, whose config points at the token file: what
// examples/lm_eval.sh evaluates.
TEST(HfLmEval, WritesCheckpoint) {
  const char* out = std::getenv("SKEIN_LM_EVAL_DIR");
  if (!out) GTEST_SKIP() << "SKEIN_LM_EVAL_DIR not set";
  std::vector<std::string> texts;
  for (const LmItem& i : read_lm_items((kRepo / "examples" / "lm_eval" / "kjv_next_word.jsonl").string()))
    texts.push_back(i.context + i.continuation);
  const BpeTokenizer tok = train_bpe(texts, 320);
  const fs::path dir(out);
  fs::create_directories(dir);
  TokenFileWriter w((dir / "data.h5").string(), tok);
  for (size_t i = 0; i < texts.size(); ++i) w.append(i % 10 ? "train" : "val", tok.encode(texts[i]));
  w.finalize();
  // trained briefly on the items' own text, so that some continuations are greedy hits
  Config cfg;
  cfg.model = small(tok.vocab_size());
  cfg.model.init_std = 0.02;
  cfg.model.d_model = 64;
  cfg.data.path = (dir / "data.h5").string();
  cfg.data.seq_len = 32;
  cfg.data.batch_size = 8;
  cfg.train.steps = 600;
  cfg.train.log_every = 200;
  cfg.train.sample_tokens = 0;
  cfg.optim.lr = 1e-2;
  cfg.optim.warmup = 10;
  cfg.train.run_dir = (dir / "run").string();
  const RunSummary r = train(cfg);
  fs::rename(fs::path(r.checkpoint).parent_path(), dir / "checkpoints");
}

}  // namespace
}  // namespace skein
