// test_hf_families.cpp — the Hugging Face families people linearise, from the fixtures of
// tools/make_hf_fixtures.py (tests/fixtures/hf_*): Llama with each rope_scaling type (linear,
// dynamic NTK, llama3, yarn), Mistral with a window shorter than the sequence, Qwen2 with q/k/v
// biases (tied; and with every layer sliding), a bf16 checkpoint. skein's logits equal
// transformers' (stored in the fixture) within 1e-4 of their scale (bf16: 2e-2); export ->
// re-import is exact and keeps the config; the legacy rope_scaling key reads as rope_parameters;
// what skein cannot compute is an error naming the key. HfExport.FamiliesForTransformers feeds
// tests/launch/check_hf_export.py (transformers loads the exports: same logits).
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "core/autograd.h"
#include "configs/loader.h"
#include "core/ops.h"
#include "launch/hf_llama.h"
#include "layers/rope.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {
namespace {

const fs::path kFixtures = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures";
const char* const kF32Fixtures[] = {"hf_llama_linear", "hf_llama_dynamic", "hf_llama_llama3", "hf_llama_yarn",
                                    "hf_mistral",      "hf_qwen2",         "hf_qwen2_window"};

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_hff_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

Tensor logits_of(HybridLM& model, const Tensor& ids) {
  NoGradGuard no_grad;
  return model.forward(ids);
}

double rel_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double err = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err = std::max(err, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  return err / scale;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

TensorMap reference(const std::string& name) {
  return load_safetensors((kFixtures / name / "reference.safetensors").string());
}

TEST(HfFamilies, ConfigsRead) {
  const ModelConfig l3 = load_hf_llama((kFixtures / "hf_llama_llama3").string()).config.model;
  EXPECT_EQ(l3.rope_type, "llama3");
  EXPECT_EQ(l3.rope_factor, 8.0);
  EXPECT_EQ(l3.rope_original_max_positions, 64);
  EXPECT_EQ(l3.rope_high_freq_factor, 4.0);
  const HfModel dyn = load_hf_llama((kFixtures / "hf_llama_dynamic").string());
  EXPECT_EQ(dyn.config.model.rope_type, "dynamic");
  EXPECT_EQ(dyn.config.model.rope_original_max_positions, 16);  // max_position_embeddings
  const ModelConfig yarn = load_hf_llama((kFixtures / "hf_llama_yarn").string()).config.model;
  EXPECT_NEAR(yarn.rope_attention_factor, 0.1 * std::log(4.0) + 1, 1e-15);
  const ModelConfig mistral = load_hf_llama((kFixtures / "hf_mistral").string()).config.model;
  EXPECT_EQ(mistral.window, 5);
  EXPECT_FALSE(mistral.qkv_bias);
  const HfModel qwen = load_hf_llama((kFixtures / "hf_qwen2").string());
  EXPECT_TRUE(qwen.config.model.qkv_bias);
  EXPECT_TRUE(qwen.config.model.tie_embeddings);
  EXPECT_EQ(qwen.config.model.window, 0);  // use_sliding_window false: sliding_window ignored
  EXPECT_EQ(qwen.state.at("blocks.1.mixer.k_proj.bias").shape(), (Shape{32}));
  EXPECT_EQ(load_hf_llama((kFixtures / "hf_qwen2_window").string()).config.model.window, 6);
}

TEST(HfFamilies, LogitsMatchTransformers) {
  for (const char* name : kF32Fixtures) {
    auto model = load_hf_llama_model((kFixtures / name).string());
    const TensorMap ref = reference(name);
    EXPECT_LT(rel_error(logits_of(*model, ref.at("input_ids")), ref.at("logits")), 1e-4) << name;
  }
}

// Each feature matters on its fixture: without it the logits are far off (so the test above
// could fail).
TEST(HfFamilies, EachFeatureChangesTheLogits) {
  auto off_by = [](const char* name, const std::function<void(ModelConfig&)>& drop) {
    HfModel m = load_hf_llama((kFixtures / name).string());
    drop(m.config.model);
    HybridLM model(m.config.model);
    model.load_state_dict(m.state, /*strict=*/false);
    const TensorMap ref = reference(name);
    return rel_error(logits_of(model, ref.at("input_ids")), ref.at("logits"));
  };
  for (const char* name : {"hf_llama_linear", "hf_llama_dynamic", "hf_llama_llama3", "hf_llama_yarn"})
    EXPECT_GT(off_by(name, [](ModelConfig& c) { c.rope_type = "default"; }), 1e-2) << name;
  EXPECT_GT(off_by("hf_mistral", [](ModelConfig& c) { c.window = 0; }), 1e-2);
  EXPECT_GT(off_by("hf_qwen2_window", [](ModelConfig& c) { c.window = 0; }), 1e-2);
  EXPECT_GT(off_by("hf_qwen2", [](ModelConfig& c) { c.qkv_bias = false; }), 1e-2);
}

TEST(HfFamilies, Bf16CheckpointMatchesTransformers) {
  auto model = load_hf_llama_model((kFixtures / "hf_bf16").string());
  const TensorMap ref = reference("hf_bf16");
  const Tensor logits = logits_of(*model, ref.at("input_ids"));
  EXPECT_LT(rel_error(logits, ref.at("logits")), 2e-2);  // transformers computing in bf16
  EXPECT_LT(rel_error(logits, ref.at("logits_f32")), 1e-4);  // the same bf16 weights in f32
}

// Dynamic NTK scales only past max_position_embeddings: a prefix within it uses the plain
// frequencies, and generation (growing seq_len) recomputes them per step like transformers.
TEST(HfFamilies, DynamicRopeDependsOnLength) {
  ModelConfig c;
  c.rope_type = "dynamic";
  c.rope_factor = 2.0;
  c.rope_original_max_positions = 16;
  const RopeFreqs plain = RopeFreqs::plain(16, c.rope_theta);
  EXPECT_EQ(rope_freqs(c, 16, 10).inv_freq, plain.inv_freq);
  EXPECT_EQ(rope_freqs(c, 16, 16).inv_freq, plain.inv_freq);
  const RopeFreqs longer = rope_freqs(c, 16, 24);
  const double base = 10000.0 * std::pow(2.0 * 24 / 16 - 1, 16.0 / 14.0);
  EXPECT_NEAR(longer.inv_freq[3], std::pow(base, -6.0 / 16), 1e-15);
}

TEST(HfFamilies, ExportReimportIsExact) {
  for (const char* name : {"hf_llama_llama3", "hf_llama_yarn", "hf_llama_dynamic", "hf_mistral", "hf_qwen2_window"}) {
    const std::string dir = temp_dir(name);
    HfModel src = load_hf_llama((kFixtures / name).string());
    auto model = load_hf_llama_model((kFixtures / name).string());
    HfSaveOptions opts;
    opts.max_position_embeddings = src.max_position_embeddings;
    save_hf_llama(*model, dir, opts);
    json config = read_json(fs::path(dir) / "config.json");
    const json orig = read_json(kFixtures / name / "config.json");
    EXPECT_EQ(config["model_type"], orig["model_type"]) << name;
    EXPECT_EQ(config["architectures"], orig["architectures"]) << name;
    EXPECT_EQ(config["max_position_embeddings"], orig["max_position_embeddings"]) << name;
    config.erase("skein");  // the HF keys alone rebuild the same model
    std::ofstream(fs::path(dir) / "config.json") << config.dump();
    HfModel back = load_hf_llama(dir);
    EXPECT_EQ(config_to_yaml(back.config), config_to_yaml(src.config)) << name;
    auto again = load_hf_llama_model(dir);
    const TensorMap ref = reference(name);
    EXPECT_EQ(logits_of(*again, ref.at("input_ids")).to_vector(), logits_of(*model, ref.at("input_ids")).to_vector())
        << name;
    fs::remove_all(dir);
  }
}

// transformers < 5 wrote "rope_scaling" with "type" or "rope_type" and rope_theta beside it
// (Llama-3.1-8B's config.json); it reads as the v5 rope_parameters.
TEST(HfFamilies, LegacyRopeScalingKey) {
  const std::string dir = temp_dir("legacy");
  fs::copy(kFixtures / "hf_llama_llama3", dir);
  json c = read_json(fs::path(dir) / "config.json");
  json rp = c["rope_parameters"];
  c.erase("rope_parameters");
  c["rope_theta"] = rp["rope_theta"];
  rp.erase("rope_theta");
  rp["type"] = rp["rope_type"];
  rp.erase("rope_type");
  c["rope_scaling"] = rp;
  std::ofstream(fs::path(dir) / "config.json") << c.dump();
  auto model = load_hf_llama_model(dir);
  const TensorMap ref = reference("hf_llama_llama3");
  EXPECT_LT(rel_error(logits_of(*model, ref.at("input_ids")), ref.at("logits")), 1e-4);
  fs::remove_all(dir);
}

void expect_error(const char* fixture, const std::function<void(json&)>& edit, const std::string& part) {
  const std::string dir = temp_dir("err");
  fs::copy(kFixtures / fixture, dir);
  json c = read_json(fs::path(dir) / "config.json");
  edit(c);
  std::ofstream(fs::path(dir) / "config.json") << c.dump();
  try {
    load_hf_llama(dir);
    ADD_FAILURE() << "no error, expected '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(HfFamilies, UnsupportedKeysAreNamed) {
  expect_error("hf_llama_linear", [](json& c) { c["rope_parameters"]["rope_type"] = "longrope"; },
               "rope_parameters.rope_type 'longrope' is not supported");
  expect_error("hf_llama_yarn", [](json& c) { c["rope_parameters"]["short_factor"] = json::array({1.0}); },
               "rope_parameters.short_factor ([1.0]) is not supported for rope_type 'yarn'");
  expect_error("hf_llama_llama3", [](json& c) { c["rope_parameters"].erase("low_freq_factor"); },
               "rope_parameters: key \"low_freq_factor\" is missing");
  expect_error("hf_llama_linear", [](json& c) { c["rope_parameters"]["factor"] = 0.5; }, "model.rope_factor must be >= 1");
  expect_error("hf_llama_linear", [](json& c) { c["partial_rotary_factor"] = 0.5; }, "partial_rotary_factor 0.5");
  expect_error("hf_qwen2_window", [](json& c) { c["layer_types"][0] = "full_attention"; },
               "on some layers only (layer_types)");
  expect_error("hf_qwen2_window", [](json& c) { c.erase("layer_types"); c["max_window_layers"] = 1; },
               "on some layers only (max_window_layers)");
  expect_error("hf_mistral", [](json& c) { c["attention_bias"] = true; }, "attention_bias is true");
  expect_error("hf_mistral", [](json& c) { c["model_type"] = "gemma"; }, "model_type 'gemma' is not supported");
}

// Not a check by itself: with SKEIN_HF_EXPORT_DIR set (by tests/launch/check_hf_export.py),
// exports each fixture as skein loaded it, with skein's logits, for transformers to load.
TEST(HfExport, FamiliesForTransformers) {
  const char* out = std::getenv("SKEIN_HF_EXPORT_DIR");
  if (!out) GTEST_SKIP() << "SKEIN_HF_EXPORT_DIR not set";
  std::vector<std::string> names(std::begin(kF32Fixtures), std::end(kF32Fixtures));
  names.push_back("hf_bf16");
  for (const std::string& name : names) {
    HfModel src = load_hf_llama((kFixtures / name).string());
    auto model = load_hf_llama_model((kFixtures / name).string());
    const std::string dir = (fs::path(out) / name).string();
    fs::remove_all(dir);
    HfSaveOptions opts;
    opts.max_position_embeddings = src.max_position_embeddings;
    save_hf_llama(*model, dir, opts);
    const Tensor ids = reference(name).at("input_ids");
    save_safetensors((fs::path(dir) / "reference.safetensors").string(),
                     {{"input_ids", ids}, {"logits", logits_of(*model, ids).contiguous()}});
  }
}

}  // namespace
}  // namespace skein
