// test_config_errors.cpp — every way a config can be wrong, and that each message names the
// dotted key, where it came from (file:line or --set), and the value or the closest valid key:
// unknown keys and sections, wrong types, invalid values, rules across keys, duplicate keys,
// YAML syntax errors, bad overrides, missing files.
#include <gtest/gtest.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include "configs/loader.h"

namespace skein {
namespace {

// The message of the skein::Error that f throws ("" and a failure when it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no skein::Error thrown";
  return "";
}
std::string parse_error(const std::string& yaml, std::vector<std::string> overrides = {}) {
  return error_of([&] { parse_config(yaml, "configs/x.yaml", overrides); });
}
std::string override_error(const std::string& assignment) {
  return error_of([&] { parse_config("", "", {assignment}); });
}
#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

TEST(ConfigErrors, UnknownKeyNamesFileLineAndClosestKey) {
  EXPECT_EQ(parse_error("# header\nmodel:\n  d_model: 256\n\n  d_modle: 3\n"),
            "configs/x.yaml:5: unknown key 'model.d_modle' (did you mean 'model.d_model'?)");
  EXPECT_EQ(parse_error("optim: {lr: 1e-3, warmpu: 5}"),
            "configs/x.yaml:1: unknown key 'optim.warmpu' (did you mean 'optim.warmup'?)");
  // the right key in the wrong section
  EXPECT_EQ(parse_error("train:\n  lr: 0.1\n"), "configs/x.yaml:2: unknown key 'train.lr' (did you mean 'optim.lr'?)");
  // a part of a key
  EXPECT_HAS(parse_error("model:\n  vocab: 10\n"), "(did you mean 'model.vocab_size'?)");
  // nothing close: the section's keys are listed
  const std::string far = parse_error("model:\n  zzzzzzzzzzzz: 1\n");
  EXPECT_HAS(far, "configs/x.yaml:2: unknown key 'model.zzzzzzzzzzzz' (keys of 'model': vocab_size, d_model,");
}

TEST(ConfigErrors, UnknownSection) {
  EXPECT_EQ(parse_error("model: {d_model: 256}\nmodle:\n  d_model: 3\n"),
            "configs/x.yaml:2: unknown section 'modle' (did you mean 'model'?)");
  EXPECT_HAS(parse_error("lr: 1e-3\n"), "configs/x.yaml:1: unknown section 'lr' (did you mean 'optim.lr'?");
  EXPECT_HAS(parse_error("qqqqqqqq: {}\n"), "unknown section 'qqqqqqqq' (sections: model, data, train, optim, parallel, checkpoint, log, distill)");
}

TEST(ConfigErrors, WrongTypeNamesKeyLineTypeAndValue) {
  EXPECT_EQ(parse_error("model:\n  d_model: abc\n"), "configs/x.yaml:2: model.d_model: expected int, got 'abc'");
  EXPECT_EQ(parse_error("model:\n  d_model: 2.5\n"), "configs/x.yaml:2: model.d_model: expected int, got '2.5'");
  EXPECT_EQ(parse_error("model:\n  d_model: 1e3\n"), "configs/x.yaml:2: model.d_model: expected int, got '1e3'");
  EXPECT_EQ(parse_error("model:\n  d_model: \"512\"\n"), "configs/x.yaml:2: model.d_model: expected int, got quoted string '512'");
  EXPECT_EQ(parse_error("model:\n  d_model: {a: 1}\n"), "configs/x.yaml:2: model.d_model: expected int, got a map");
  EXPECT_EQ(parse_error("model:\n  d_model: [1]\n"), "configs/x.yaml:2: model.d_model: expected int, got a list");
  EXPECT_EQ(parse_error("model:\n  d_model:\n"), "configs/x.yaml:2: model.d_model: expected int, got nothing (null)");
  EXPECT_HAS(parse_error("model:\n  d_model: 99999999999999999999\n"), "expected int, got '99999999999999999999' (out of range)");
  EXPECT_EQ(parse_error("model:\n  seed: -1\n"), "configs/x.yaml:2: model.seed: expected unsigned int, got '-1'");
  EXPECT_EQ(parse_error("optim:\n  lr: fast\n"), "configs/x.yaml:2: optim.lr: expected float, got 'fast'");
  EXPECT_EQ(parse_error("log:\n  jsonl: maybe\n"), "configs/x.yaml:2: log.jsonl: expected bool, got 'maybe' (true or false)");
  EXPECT_EQ(parse_error("log:\n  jsonl: 1\n"), "configs/x.yaml:2: log.jsonl: expected bool, got '1' (true or false)");
  EXPECT_EQ(parse_error("model:\n  layer_pattern: {L: 1}\n"), "configs/x.yaml:2: model.layer_pattern: expected string, got a map");
  EXPECT_EQ(parse_error("model:\n  layer_variants: gla\n"),
            "configs/x.yaml:2: model.layer_variants: expected list of strings, got 'gla' (e.g. [a, b])");
  EXPECT_EQ(parse_error("model:\n  layer_variants: [gla, [x]]\n"),
            "configs/x.yaml:2: model.layer_variants[1]: expected string, got a list");
  // a section or the whole file of the wrong shape
  EXPECT_HAS(parse_error("model: 5\n"), "configs/x.yaml:1: section 'model' must be a map of keys");
  EXPECT_HAS(parse_error("- model\n- data\n"), "configs/x.yaml:1: a config is a map of sections");
  EXPECT_HAS(parse_error("just words\n"), "a config is a map of sections (model, data, train, optim, parallel, checkpoint, log, distill), got 'just words'");
}

TEST(ConfigErrors, InvalidValuesNameKeyAndValue) {
  EXPECT_EQ(parse_error("model:\n  linear_variant: foo\n"),
            "configs/x.yaml:2: model.linear_variant: invalid value 'foo' (must be one of plain, decay, gla, delta, gated_delta)");
  EXPECT_HAS(parse_error("optim: {schedule: exponential}"), "configs/x.yaml:1: optim.schedule: invalid value 'exponential'");
  EXPECT_HAS(parse_error("train: {on_nan: ignore}"), "train.on_nan: invalid value 'ignore' (must be one of stop, skip)");
  EXPECT_HAS(parse_error("data: {source: csv}"), "data.source: invalid value 'csv' (must be one of hdf5, mqar, icl_regression)");
  EXPECT_HAS(parse_error("model: {dtype: f16}"), "model.dtype: invalid value 'f16' (must be one of f32, f64)");
  EXPECT_HAS(parse_error("model: {layer_variants: [gla, gru]}"), "model.layer_variants: invalid value [gla, gru]");
  EXPECT_HAS(parse_error("model: {layer_pattern: LXS}"), "model.layer_pattern: invalid value 'LXS'");
  EXPECT_HAS(parse_error("parallel: {softmax_sp: ulysses}"), "parallel.softmax_sp: invalid value 'ulysses'");
  EXPECT_HAS(parse_error("parallel: {grad_reduce_dtype: f16}"),
             "parallel.grad_reduce_dtype: invalid value 'f16' (must be one of f32, bf16)");
  EXPECT_EQ(parse_error("model:\n  d_model: -5\n"), "configs/x.yaml:2: model.d_model: invalid value -5 (must be >= 1)");
  EXPECT_HAS(parse_error("model: {n_layers: 0}"), "model.n_layers: invalid value 0 (must be >= 1)");
  EXPECT_HAS(parse_error("model: {vocab_size: 1}"), "model.vocab_size: invalid value 1 (must be 0 (from the data) or >= 2)");
  EXPECT_HAS(parse_error("data: {seq_len: -1}"), "data.seq_len: invalid value -1");
  EXPECT_HAS(parse_error("parallel: {dp: 0}"), "parallel.dp: invalid value 0 (must be >= 1)");
  EXPECT_HAS(parse_error("parallel: {sp: 0}"), "parallel.sp: invalid value 0 (must be >= 1)");
  EXPECT_HAS(parse_error("parallel: {tp: -2}"), "parallel.tp: invalid value -2 (must be >= 1)");
  EXPECT_HAS(parse_error("optim: {beta2: 1.0}"), "optim.beta2: invalid value 1.0 (must lie in [0, 1))");
  EXPECT_HAS(parse_error("optim: {lr: 0}"), "optim.lr: invalid value 0.0 (must be finite and > 0)");
  EXPECT_HAS(parse_error("optim: {lr: .nan}"), "optim.lr: invalid value .nan (must be finite and > 0)");
  EXPECT_HAS(parse_error("optim: {lr: nan}"), "optim.lr: invalid value .nan");
  EXPECT_HAS(parse_error("optim: {eps: .inf}"), "optim.eps: invalid value .inf (must be finite and > 0)");
  EXPECT_HAS(parse_error("optim: {weight_decay: -.inf}"), "optim.weight_decay: invalid value -.inf (must be finite and >= 0)");
  EXPECT_HAS(parse_error("train: {run_dir: ''}"), "train.run_dir: invalid value '' (must not be empty)");
  // validate_config on a Config built in code
  Config c;
  c.checkpoint.keep = 0;
  EXPECT_EQ(error_of([&] { validate_config(c); }), "checkpoint.keep: invalid value 0 (must be >= 1)");
}

TEST(ConfigErrors, RulesAcrossKeys) {
  EXPECT_EQ(parse_error("model: {d_model: 500, n_heads: 8}"),
            "configs/x.yaml: model.d_model: 500 is not divisible by model.n_heads (8)");
  EXPECT_HAS(parse_error("model: {n_heads: 8, n_kv_heads: 3}"), "model.n_kv_heads: 3 does not divide model.n_heads (8)");
  EXPECT_HAS(parse_error("model: {n_heads: 8, n_kv_heads: 16}"), "model.n_kv_heads: 16 does not divide");
  EXPECT_HAS(parse_error("model: {d_model: 120, n_heads: 8}"), "model.n_heads: head dim model.d_model / model.n_heads = 120 / 8 = 15 is odd");
  EXPECT_NO_THROW(parse_config("model: {d_model: 120, n_heads: 8, layer_pattern: L}", "ok.yaml"));
  EXPECT_HAS(parse_error("model: {n_layers: 2, layer_pattern: L, layer_variants: [gla, gla, gla]}"), "model.layer_variants: 3 entries but model.n_layers is 2");
  EXPECT_HAS(parse_error("model: {feature_map: hedgehog, layer_variants: [decay, gla]}"),
             "model.feature_map: 'hedgehog' works with the plain and decay variants only, but layer 1 is 'gla'");
  EXPECT_HAS(parse_error("model: {mom_memories: 4, mom_topk: 5}"), "model.mom_topk: 5 exceeds model.mom_memories (4)");
  EXPECT_HAS(parse_error("data: {source: mqar}\nmodel: {vocab_size: 0}"), "model.vocab_size: 0 (from the data) does not apply to data.source mqar");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 30, mqar_num_kv_pairs: 8}\nmodel: {vocab_size: 256}"),
             "data.seq_len: 30 must be even and >= 4 * data.mqar_num_kv_pairs (32) for mqar");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 33, mqar_num_kv_pairs: 8}\nmodel: {vocab_size: 256}"),
             "data.seq_len: 33 must be even");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 64, mqar_num_kv_pairs: 8}\nmodel: {vocab_size: 16}"),
             "data.mqar_num_kv_pairs: 8 distinct keys do not fit in [1, model.vocab_size / 2) with model.vocab_size 16");
  EXPECT_NO_THROW(parse_config("data: {source: mqar, seq_len: 32, mqar_num_kv_pairs: 8}\nmodel: {vocab_size: 18}", "ok.yaml"));
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 64, mqar_num_kv_pairs: 8, mqar_min_kv_pairs: 16}\nmodel: {vocab_size: 64}"),
             "data.mqar_min_kv_pairs: 16 exceeds data.mqar_num_kv_pairs (8)");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 256, mqar_num_kv_pairs: 32, mqar_min_seq_len: 64}\nmodel: {vocab_size: 160}"),
             "data.mqar_min_seq_len: 64 must be even and needs data.mqar_min_kv_pairs > 0");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 256, mqar_num_kv_pairs: 32, mqar_min_kv_pairs: 4, mqar_min_seq_len: 8}\n"
                         "model: {vocab_size: 160}"),
             "data.mqar_min_seq_len: 8 gives the rung of 4 pairs 8 tokens; it needs >= 4 * pairs = 16");
  EXPECT_HAS(parse_error("data: {source: mqar, seq_len: 256, mqar_num_kv_pairs: 32, mqar_curriculum_interval: 100}\nmodel: {vocab_size: 160}"),
             "data.mqar_curriculum_interval: 100 needs data.mqar_min_kv_pairs > 0 (the rungs it walks)");
  EXPECT_NO_THROW(parse_config("data: {source: mqar, seq_len: 256, mqar_num_kv_pairs: 32, mqar_min_kv_pairs: 4, mqar_min_seq_len: 64}\n"
                               "model: {vocab_size: 160}", "ok.yaml"));
  EXPECT_HAS(parse_error("data: {source: icl_regression, seq_len: 64, icl_points: 16}"),
             "data.seq_len: 64 must be 2 * data.icl_points (32) for icl_regression");
  EXPECT_HAS(parse_error("data: {path: ''}"), "data.path: '' (empty), but data.source is hdf5");
  EXPECT_NO_THROW(parse_config("data: {path: '', source: icl_regression, seq_len: 64}", "ok.yaml"));
  EXPECT_HAS(parse_error("optim: {lr: 1e-4, min_lr: 1e-3}"), "optim.min_lr: 0.001 exceeds optim.lr (0.0001)");
  EXPECT_NO_THROW(parse_config("optim: {lr: 1e-4, min_lr: 1e-3, schedule: constant}", "ok.yaml"));
  // A warm-up longer than the run is no config error: the trainer clamps it with a note.
  EXPECT_NO_THROW(parse_config("train: {steps: 10}\noptim: {warmup: 20}", "ok.yaml"));
  // The layer pattern repeats evenly over the depth, or it is an error naming the rule.
  EXPECT_HAS(parse_error("model: {n_layers: 4, layer_pattern: LLS}"),
             "model.layer_pattern: 'LLS' (3 letters) does not repeat evenly over model.n_layers (4)");
  EXPECT_HAS(parse_error("model: {n_layers: 2, layer_pattern: LLLS}"), "n_layers must be a multiple of the pattern's length");
  EXPECT_NO_THROW(parse_config("model: {n_layers: 6, layer_pattern: LLS}", "ok.yaml"));
  EXPECT_HAS(parse_error("parallel: {tp: 3}"), "parallel.tp: 3 does not divide model.n_heads (8)");
  EXPECT_HAS(parse_error("parallel: {sp: 3}"), "parallel.sp: 3 does not divide data.seq_len (256)");
  EXPECT_HAS(parse_error("model: {dtype: f64}\nparallel: {grad_reduce_dtype: bf16}"),
             "parallel.grad_reduce_dtype: bf16 rounds f32 gradients but model.dtype is f64");
  EXPECT_NO_THROW(parse_config("parallel: {grad_reduce_dtype: bf16}", "ok.yaml"));
  // the source names the overrides when there are some
  EXPECT_EQ(parse_error("", {"model.d_model=500"}),
            "configs/x.yaml + --set: model.d_model: 500 is not divisible by model.n_heads (8)");
  Config c;
  c.model.n_heads = 7;
  EXPECT_EQ(error_of([&] { validate_config(c); }), "model.d_model: 512 is not divisible by model.n_heads (7)");
}

TEST(ConfigErrors, DuplicatesSyntaxAndDocuments) {
  EXPECT_EQ(parse_error("model:\n  d_model: 256\n  d_model: 512\n"),
            "configs/x.yaml:3: key 'model.d_model' is set twice (first on line 2)");
  EXPECT_EQ(parse_error("model: {}\ndata: {}\nmodel: {}\n"), "configs/x.yaml:3: section 'model' appears twice (first on line 1)");
  EXPECT_HAS(parse_error("model:\n  d_model: [1, 2\n"), "configs/x.yaml:");
  EXPECT_HAS(parse_error("model:\n  d_model: [1, 2\n"), "YAML syntax error");
  EXPECT_HAS(parse_error("model: {}\n---\ndata: {}\n"), "configs/x.yaml: holds 2 YAML documents");
}

TEST(ConfigErrors, BadOverrides) {
  EXPECT_EQ(override_error("model.d_model"), "--set: 'model.d_model' is not of the form section.key=value");
  EXPECT_EQ(override_error("=5"), "--set: '=5' has no key before '='");
  EXPECT_EQ(override_error("model.d_modle=5"), "--set: unknown key 'model.d_modle' (did you mean 'model.d_model'?)");
  EXPECT_EQ(override_error("lr=1e-3"), "--set: unknown key 'lr' (did you mean 'optim.lr'?)");
  EXPECT_HAS(override_error("modle.d_model=5"), "--set: unknown key 'modle.d_model' (did you mean 'model.d_model'?)");
  EXPECT_EQ(override_error("model={d_model: 3}"), "--set: unknown key 'model' ('model' is a section; name one key: model.vocab_size)");
  EXPECT_EQ(override_error("model.d_model=abc"), "--set: model.d_model: expected int, got 'abc'");
  EXPECT_EQ(override_error("model.d_model=-1"), "--set: model.d_model: invalid value -1 (must be >= 1)");
  EXPECT_EQ(override_error("model.linear_variant=lstm"),
            "--set: model.linear_variant: invalid value 'lstm' (must be one of plain, decay, gla, delta, gated_delta)");
  EXPECT_HAS(override_error("model.layer_variants=[gla,"), "--set: model.layer_variants: cannot read '[gla,' as a YAML value");
  EXPECT_EQ(override_error("model.layer_variants=gla"),
            "--set: model.layer_variants: expected list of strings, got 'gla' (e.g. [a, b])");
  EXPECT_EQ(override_error("train.sample_prompt=He said: hi"),
            "--set: train.sample_prompt: expected string, got a map (quote a string holding ': ', ' #', '[' or '{': "
            "train.sample_prompt='\"...\"')");
  EXPECT_EQ(parse_config("", "", {"train.sample_prompt=\"He said: hi\""}).train.sample_prompt, "He said: hi");
  Config c;
  EXPECT_EQ(error_of([&] { apply_override(c, "train.steps=x", "sweep run 3"); }), "sweep run 3: train.steps: expected int, got 'x'");
  EXPECT_EQ(c.train.steps, Config{}.train.steps);  // a failed override changes nothing
}

TEST(ConfigErrors, FilesAreNamedByPath) {
  EXPECT_HAS(error_of([] { load_config("/nonexistent/dir/x.yaml"); }), "config file '/nonexistent/dir/x.yaml' does not exist");
  const auto path = std::filesystem::temp_directory_path() / ("skein_test_config_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "# a comment\noptim:\n  lr: 1e-3\n  betta1: 0.8\n";
  EXPECT_EQ(error_of([&] { load_config(path.string()); }),
            path.string() + ":4: unknown key 'optim.betta1' (did you mean 'optim.beta1'?)");
  std::ofstream(path) << "optim:\n  lr: 1e-3\n";
  EXPECT_EQ(load_config(path.string()).optim.lr, 1e-3);  // the path is read
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace skein
