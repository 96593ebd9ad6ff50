// test_config.cpp — the config loader's happy paths: defaults from an empty file, nested YAML
// into every type, the example configs under configs/ (and the sweep's grid) load and hold
// the values their headers promise, the YAML round trip (exact doubles, awkward strings),
// overrides (list values, precedence, fixing a file), and the schema's wiring (every key reads
// and writes its own field). Error paths: test_config_errors.cpp.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include "configs/loader.h"
#include "configs/registry.h"

namespace skein {
namespace {

namespace fs = std::filesystem;

// The repository root, found from this file's path (tests/configs/test_config.cpp).
fs::path repo_root() {
  const fs::path root = fs::path(SKEIN_SOURCE_DIR);
  EXPECT_TRUE(fs::exists(root / "configs" / "loader.h")) << root;
  return root;
}

TEST(Config, EmptyFileAndEmptyPathGiveTheDefaults) {
  const Config defaults;
  EXPECT_TRUE(configs_equal(parse_config("", "empty.yaml"), defaults));
  EXPECT_TRUE(configs_equal(parse_config("# only a comment\n\n", "c.yaml"), defaults));
  EXPECT_TRUE(configs_equal(parse_config("model:\ntrain:\n", "null-sections.yaml"), defaults));
  EXPECT_TRUE(configs_equal(load_config(""), defaults));
  EXPECT_NO_THROW(validate_config(defaults));
  // configs_equal can fail: one changed key breaks it
  Config other;
  other.optim.eps = 1.0000000000000002e-8;
  EXPECT_FALSE(configs_equal(other, defaults));
}

TEST(Config, NestedYamlSetsEveryType) {
  const Config c = parse_config(
      "model: {d_model: 384, n_heads: 6, n_layers: 6, layer_pattern: LSM, layer_variants: [gla, '', delta],\n"
      "        linear_scale: 0.125, tie_embeddings: true, seed: 18446744073709551615, dtype: f64}\n"
      "data:\n  seq_len: 4096\n  shuffle: off\n"
      "train:\n  sample_prompt: In the beginning\n  run_dir: runs/x\n"
      "optim:\n  lr: 1e-3\n  min_lr: 0\n",
      "nested.yaml");
  EXPECT_EQ(c.model.d_model, 384);
  EXPECT_EQ(c.model.n_heads, 6);
  EXPECT_EQ(c.model.layer_pattern, "LSM");
  EXPECT_EQ(c.model.layer_variants, (std::vector<std::string>{"gla", "", "delta"}));
  EXPECT_EQ(c.model.linear_scale, 0.125);
  EXPECT_TRUE(c.model.tie_embeddings);
  EXPECT_EQ(c.model.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(c.model.dtype, DType::f64);
  EXPECT_EQ(c.data.seq_len, 4096);
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.train.sample_prompt, "In the beginning");
  EXPECT_EQ(c.train.run_dir, "runs/x");
  EXPECT_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.optim.min_lr, 0.0);  // an int where a float belongs is fine
  EXPECT_EQ(c.model.n_layers, 6);
  EXPECT_EQ(c.model.mlp_hidden, ModelConfig{}.mlp_hidden);  // untouched keys keep their defaults
}

TEST(Config, VocabZeroMeansFromTheData) {
  EXPECT_EQ(parse_config("model: {vocab_size: 0}", "v.yaml").model.vocab_size, 0);
  EXPECT_EQ(parse_config("model: {vocab_size: 2}", "v.yaml").model.vocab_size, 2);
  EXPECT_THROW(parse_config("model: {vocab_size: 1}", "v.yaml"), Error);
}

TEST(Config, EveryExampleConfigLoads) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(repo_root() / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++n;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path().string()));
  }
  EXPECT_GE(n, 7);
  const fs::path dir = repo_root() / "configs";

  const Config h = load_config((dir / "hybrid-small.yaml").string());
  EXPECT_EQ(h.model.vocab_size, 0);
  EXPECT_EQ(h.model.d_model, 256);
  EXPECT_EQ(h.model.n_layers, 4);
  EXPECT_EQ(h.model.n_heads, 4);
  EXPECT_EQ(h.model.mlp_hidden, 704);
  EXPECT_EQ(h.model.layer_pattern, "LLLS");
  EXPECT_EQ(h.model.linear_variant, "decay");
  EXPECT_EQ(h.data.source, "hdf5");
  EXPECT_EQ(h.data.path, "data/kjv.h5");
  EXPECT_EQ(h.data.seq_len, 256);
  EXPECT_EQ(h.data.batch_size, 8);
  EXPECT_EQ(h.train.steps, 600);
  EXPECT_EQ(h.train.log_every, 20);
  EXPECT_EQ(h.train.eval_every, 200);
  EXPECT_EQ(h.train.eval_batches, 8);
  EXPECT_EQ(h.train.run_dir, "runs/hybrid-small");
  EXPECT_EQ(h.train.sample_tokens, 200);
  EXPECT_EQ(h.train.sample_prompt, "And God said");
  EXPECT_EQ(h.optim.lr, 2e-3);
  EXPECT_EQ(h.optim.min_lr, 2e-4);
  EXPECT_EQ(h.optim.warmup, 50);
  EXPECT_EQ(h.optim.weight_decay, 0.1);
  EXPECT_EQ(h.checkpoint.every, 200);
  EXPECT_EQ(h.checkpoint.keep, 2);

  // ../shared/BENCHMARK.md
  const Config b = load_config((dir / "bench.yaml").string());
  EXPECT_EQ(b.model.vocab_size, 8192);
  EXPECT_EQ(b.model.d_model, 512);
  EXPECT_EQ(b.model.n_heads, 8);
  EXPECT_EQ(b.model.head_dim(), 64);
  EXPECT_EQ(b.model.n_layers, 4);
  EXPECT_EQ(b.model.layer_pattern, "LLLS");
  EXPECT_EQ(b.model.mlp_hidden, 1408);
  EXPECT_EQ(b.model.linear_variant, "decay");
  EXPECT_EQ(b.model.feature_map, "identity");
  EXPECT_EQ(b.model.linear_scale, 1.0);
  EXPECT_TRUE(b.model.linear_output_norm);
  EXPECT_EQ(b.model.chunk_size, 64);
  EXPECT_EQ(b.model.rope_theta, 10000.0);
  EXPECT_EQ(b.model.norm_eps, 1e-6);
  EXPECT_EQ(b.model.init_std, 0.02);
  EXPECT_FALSE(b.model.tie_embeddings);
  EXPECT_EQ(b.model.dtype, DType::f32);
  EXPECT_EQ(b.optim.name, "adamw");
  EXPECT_EQ(b.optim.lr, 3e-4);
  EXPECT_EQ(b.optim.beta1, 0.9);
  EXPECT_EQ(b.optim.beta2, 0.95);
  EXPECT_EQ(b.optim.eps, 1e-8);
  EXPECT_EQ(b.optim.weight_decay, 0.1);
  EXPECT_EQ(b.data.seq_len, 2048);
  EXPECT_EQ(b.data.batch_size, 2);

  EXPECT_EQ(load_config((dir / "linear.yaml").string()).model.linear_variant, "gla");
  EXPECT_EQ(load_config((dir / "linear.yaml").string()).model.layer_pattern, "L");
  EXPECT_EQ(load_config((dir / "softmax.yaml").string()).model.layer_pattern, "S");
  const Config mom = load_config((dir / "mom.yaml").string());
  EXPECT_EQ(mom.model.layer_pattern, "M");
  EXPECT_EQ(mom.model.mom_memories, 4);
  EXPECT_EQ(mom.model.mom_topk, 2);
  EXPECT_EQ(mom.model.mom_variant, "gated_delta");
  const Config mqar = load_config((dir / "mqar.yaml").string());
  EXPECT_EQ(mqar.data.source, "mqar");
  EXPECT_GT(mqar.model.vocab_size, 0);
  EXPECT_EQ(mqar.data.seq_len, 128);
  EXPECT_EQ(mqar.data.mqar_num_kv_pairs, 8);
  EXPECT_EQ(load_config((dir / "icl-regression.yaml").string()).data.source, "icl_regression");
}

// Every run of the sweep (base + grid point + `set`) is a valid config with the grid values.
TEST(Config, SweepGridGivesValidConfigs) {
  const fs::path sweep = repo_root() / "configs" / "sweeps" / "lr-pattern.yaml";
  const YAML::Node s = YAML::LoadFile(sweep.string());
  const fs::path base = sweep.parent_path() / s["base"].as<std::string>();
  std::vector<std::string> set = s["set"].as<std::vector<std::string>>();
  const auto lrs = s["grid"]["optim.lr"].as<std::vector<std::string>>();
  const auto patterns = s["grid"]["model.layer_pattern"].as<std::vector<std::string>>();
  ASSERT_EQ(s["grid"].size(), 2u);
  ASSERT_GE(lrs.size() * patterns.size(), 4u);
  for (const auto& lr : lrs)
    for (const auto& p : patterns) {
      std::vector<std::string> o = set;
      o.push_back("optim.lr=" + lr);
      o.push_back("model.layer_pattern=" + p);
      const Config c = load_config(base.string(), o);
      EXPECT_EQ(c.optim.lr, std::stod(lr));
      EXPECT_EQ(c.model.layer_pattern, p);
      EXPECT_EQ(c.train.steps, 100);
      EXPECT_EQ(c.data.path, "data/kjv.h5");  // the base file is read
    }
}

void expect_round_trip(const Config& c) {
  const std::string yaml = config_to_yaml(c);
  const Config back = parse_config(yaml, "round-trip.yaml");
  EXPECT_TRUE(configs_equal(back, c)) << yaml;
  EXPECT_EQ(config_to_yaml(back), yaml);
}

TEST(Config, YamlRoundTripIsExact) {
  expect_round_trip(Config{});
  for (const char* name : {"hybrid-small", "bench", "mom", "mqar", "icl-regression"})
    expect_round_trip(load_config((repo_root() / "configs" / (std::string(name) + ".yaml")).string()));

  Config c;
  c.optim.lr = 0.1 + 0.2;  // 0.30000000000000004
  c.optim.min_lr = 1e-300;
  c.optim.eps = 1.0 / 3.0;
  c.model.rope_theta = 500000.0;  // integral double: written "500000.0"
  c.model.init_std = std::nextafter(0.02, 1.0);
  c.model.seed = std::numeric_limits<uint64_t>::max();
  c.model.dtype = DType::f64;
  c.model.layer_variants = {"gla", "", "delta"};
  c.train.sample_prompt = "He said: \"Let there be light\" # not a comment\n\tand it was so \\ é — 光";
  c.train.run_dir = "runs/with space/and:colon";
  c.checkpoint.dir = "";
  c.data.path = "true";  // a YAML bool/number/null spelled as a string stays a string
  expect_round_trip(c);
  for (const char* s : {"123", "null", "~", "-", "- x", "[a]", "{a: 1}", "&a", "*a", "!x", "%x", "@x", " lead", "trail "}) {
    c.train.sample_prompt = s;
    expect_round_trip(c);
    EXPECT_EQ(parse_config(config_to_yaml(c), "rt.yaml").train.sample_prompt, s);
  }
  const Config back = parse_config(config_to_yaml(c), "rt.yaml");
  EXPECT_EQ(back.optim.lr, 0.1 + 0.2);
  EXPECT_EQ(back.optim.eps, 1.0 / 3.0);
  EXPECT_EQ(back.model.init_std, std::nextafter(0.02, 1.0));
}

TEST(Config, ToYamlListsEveryKeyInSchemaOrder) {
  const auto keys = config_keys();
  EXPECT_EQ(keys.size(), config_schema().size());
  EXPECT_EQ(keys.front(), "model.vocab_size");
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  const std::string yaml = config_to_yaml(Config{});
  size_t pos = 0;
  std::string section;
  for (const auto& k : keys) {
    const std::string sec = k.substr(0, k.find('.')), leaf = k.substr(k.find('.') + 1);
    if (sec != section) {
      section = sec;
      pos = yaml.find("\n" + sec + ":\n", pos);
      ASSERT_NE(pos, std::string::npos) << sec;
    }
    pos = yaml.find("\n  " + leaf + ": ", pos);
    ASSERT_NE(pos, std::string::npos) << k << " missing or out of order";
  }
  EXPECT_NE(yaml.find("  d_model: 512 "), std::string::npos);
  EXPECT_NE(yaml.find("  dtype: f32 "), std::string::npos);
  EXPECT_EQ(config_value(Config{}, "optim.lr"), "0.0003");
  EXPECT_EQ(config_value(Config{}, "optim.eps"), "1.0e-8");  // YAML 1.1 readers need the '.' and the sign
  EXPECT_EQ(config_value(Config{}, "model.rope_theta"), "10000.0");
  EXPECT_EQ(config_value(Config{}, "model.layer_pattern"), "LLLS");
  EXPECT_EQ(config_value(Config{}, "model.layer_variants"), "[]");
  Config c;
  c.data.path = "Yes";  // a YAML 1.1 bool word is quoted, so no YAML reader mistakes it for one
  c.train.run_dir = "null";
  c.checkpoint.dir = "0x10";
  EXPECT_EQ(config_value(c, "data.path"), "\"Yes\"");
  EXPECT_EQ(config_value(c, "train.run_dir"), "\"null\"");
  EXPECT_EQ(config_value(c, "checkpoint.dir"), "\"0x10\"");
}

// Each key reads and writes its own field: changing one key through the schema changes no other.
TEST(Config, EveryKeyOwnsItsField) {
  const Config defaults;
  for (const auto& k : config_schema()) {
    SCOPED_TRACE(k.name);
    EXPECT_FALSE(k.doc.empty());
    ConfigValue v = k.get(defaults);
    std::visit([](auto& x) {
      using X = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<X, bool>) x = !x;
      else if constexpr (std::is_same_v<X, std::string>) x = x == "f32" ? "f64" : x + "_changed";
      else if constexpr (std::is_same_v<X, std::vector<std::string>>) x.push_back("gla");
      else if constexpr (std::is_same_v<X, std::vector<DataPath>>) x.push_back({"a.h5", 0.5});
      else x += 7;
    }, v);
    Config c;
    k.set(c, v);
    EXPECT_EQ(k.get(c), v);
    for (const auto& other : config_schema()) {
      if (other.name == k.name) continue;
      EXPECT_EQ(other.get(c), other.get(defaults)) << other.name << " changed too";
    }
  }
}

TEST(Config, OverridesParseYamlValuesAndWinOverTheFile) {
  const std::string file = "model:\n  d_model: 256\n  n_heads: 4\ntrain:\n  steps: 50\n";
  Config c = parse_config(file, "f.yaml",
                          {"model.layer_variants=[decay,gla]", "model.d_model=512", "train.sample_prompt=In the beginning",
                           " log.jsonl = false", "model.dtype=f64", "optim.lr=1e-2", "optim.warmup=10"});
  EXPECT_EQ(c.model.layer_variants, (std::vector<std::string>{"decay", "gla"}));
  EXPECT_EQ(c.model.d_model, 512);  // the override beats the file
  EXPECT_EQ(c.model.n_heads, 4);    // the file beats the default
  EXPECT_EQ(c.train.steps, 50);
  EXPECT_EQ(c.train.sample_prompt, "In the beginning");
  EXPECT_FALSE(c.log.jsonl);
  EXPECT_EQ(c.model.dtype, DType::f64);
  EXPECT_EQ(c.optim.lr, 1e-2);
  // the later of two overrides wins; quoted and empty list entries
  c = parse_config("", "", {"model.d_model=128", "model.d_model=64", "model.layer_variants=[decay, \"\", gla]"});
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.layer_variants, (std::vector<std::string>{"decay", "", "gla"}));
  EXPECT_EQ(parse_config("", "", {"train.sample_prompt="}).train.sample_prompt, "");
  EXPECT_EQ(parse_config("", "", {"model.layer_variants=[]"}).model.layer_variants.size(), 0u);
  // validation runs after the overrides: an override can repair a combination the file breaks
  EXPECT_THROW(parse_config("model: {d_model: 500, n_heads: 8}", "bad.yaml"), Error);
  EXPECT_EQ(parse_config("model: {d_model: 500, n_heads: 8}", "bad.yaml", {"model.d_model=512"}).model.d_model, 512);
  // apply_override on its own
  Config d;
  apply_override(d, "parallel.sp=2");
  EXPECT_EQ(d.parallel.sp, 2);
}

}  // namespace
}  // namespace skein
