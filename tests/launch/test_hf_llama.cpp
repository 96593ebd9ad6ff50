// test_hf_llama.cpp — HF Llama folders: skein's logits equal transformers' on the committed
// tiny Llama (f32, bf16 weights, shards, tied embeddings); export -> re-import is exact (also
// for hybrid L/S/M models and a distilled student); `skein convert` both ways; the tensor name
// mapping; one clear error per unsupported config key or bad tensor. HfExport.WritesForTransformers
// feeds tests/launch/check_hf_export.py (transformers loads skein's export).
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include "configs/loader.h"
#include "configs/registry.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "launch/checkpoint.h"
#include "launch/distill.h"
#include "launch/hf_llama.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {
namespace {

const fs::path kFixture = fs::path(SKEIN_SOURCE_DIR) / "tests" / "fixtures" / "tiny_llama";

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_hf_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

Tensor logits_of(HybridLM& model, const Tensor& ids) {
  NoGradGuard no_grad;
  return model.forward(ids);
}

// max |a - b| / max |b|: the error relative to the logits' scale.
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

void expect_same_state(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_EQ(t.shape(), b.at(name).shape()) << name;
    EXPECT_EQ(t.to_vector(), b.at(name).to_vector()) << name;
  }
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// Loads fixture folder `sub` and checks its logits against reference `key` of `ref_dir`.
void expect_matches_transformers(const std::string& sub, const std::string& ref_sub, const std::string& key) {
  auto model = load_hf_llama_model((kFixture / sub).string());
  TensorMap ref = load_safetensors((kFixture / ref_sub / "reference.safetensors").string());
  const double err = rel_error(logits_of(*model, ref.at("input_ids")), ref.at(key));
  EXPECT_LT(err, 1e-4) << sub;
  EXPECT_GT(rel_error(ref.at("logits"), zeros_like(ref.at("logits"))), 0.5);  // not a trivial reference
}

TEST(HfLlama, ReadsTheConfig) {
  HfModel m = load_hf_llama(kFixture.string());
  const ModelConfig& c = m.config.model;
  EXPECT_EQ(c.layer_pattern, "S");
  EXPECT_EQ(c.vocab_size, 96);
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.kv_heads(), 2);
  EXPECT_EQ(c.mlp_hidden, 64);
  EXPECT_EQ(c.rope_theta, 1000.0);  // from rope_parameters (transformers v5)
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(m.max_position_embeddings, 64);
  EXPECT_EQ(m.state.size(), 21u);
  EXPECT_EQ(m.state.at("blocks.1.mixer.k_proj.weight").shape(), (Shape{16, 32}));
}

TEST(HfLlama, LogitsMatchTransformers) { expect_matches_transformers("", "", "logits"); }
TEST(HfLlama, Bf16WeightsMatchTheirReference) { expect_matches_transformers("bf16", "", "logits_bf16"); }
TEST(HfLlama, TiedEmbeddingsMatchTransformers) {
  expect_matches_transformers("tied", "tied", "logits");
  EXPECT_FALSE(load_hf_llama_model((kFixture / "tied").string())->lm_head);
}

TEST(HfLlama, ShardedEqualsUnsharded) {
  expect_same_state(load_hf_llama((kFixture / "sharded").string()).state, load_hf_llama(kFixture.string()).state);
}

TEST(HfLlama, ExportReimportIsExact) {
  const std::string dir = temp_dir("export");
  auto model = load_hf_llama_model(kFixture.string());
  HfSaveOptions opts;
  opts.max_position_embeddings = 64;
  opts.max_shard_bytes = 50'000;  // 2+ shards and an index
  save_hf_llama(*model, dir, opts);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  const json config = read_json(fs::path(dir) / "config.json");
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["skein"]["config"]["model"]["layer_pattern"], "S");
  HfModel back = load_hf_llama(dir);
  expect_same_state(back.state, model->state_dict());
  EXPECT_EQ(back.max_position_embeddings, 64);
  // The Llama keys alone (a folder re-saved by other tools drops "skein") rebuild it too.
  json plain = config;
  plain.erase("skein");
  std::ofstream(fs::path(dir) / "config.json") << plain.dump();
  auto again = load_hf_llama_model(dir);
  TensorMap ref = load_safetensors((kFixture / "reference.safetensors").string());
  EXPECT_EQ(logits_of(*again, ref.at("input_ids")).to_vector(), logits_of(*model, ref.at("input_ids")).to_vector());
  EXPECT_THROW(save_hf_llama(*model, dir), Error);  // not an empty folder
  fs::remove_all(dir);
}

TEST(HfLlama, HybridRoundTrip) {
  const std::string dir = temp_dir("hybrid");
  ModelConfig c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.n_layers = 3;
  c.n_heads = 2;
  c.mlp_hidden = 24;
  c.layer_pattern = "LSM";
  c.linear_variant = "gla";
  c.mom_memories = 2;
  c.mom_topk = 1;
  c.chunk_size = 4;
  c.tie_embeddings = true;
  c.seed = 7;
  HybridLM model(c);
  Config full;
  full.model = c;
  full.data.seq_len = 48;  // any section travels in the "skein" object
  HfSaveOptions opts;
  opts.config = full;
  save_hf_llama(model, dir, opts);
  const json config = read_json(fs::path(dir) / "config.json");
  EXPECT_EQ(config["architectures"][0], "SkeinForCausalLM");
  EXPECT_EQ(config["model_type"], "skein_hybrid");
  const TensorMap hf = load_safetensors((fs::path(dir) / "model.safetensors").string());
  EXPECT_TRUE(hf.count("model.layers.0.self_attn.skein.q_proj.weight"));  // L layer: skein names
  EXPECT_TRUE(hf.count("model.layers.1.self_attn.q_proj.weight"));        // S layer: Llama names
  EXPECT_TRUE(hf.count("model.layers.2.mlp.gate_proj.weight"));
  Config back_cfg;
  auto back = load_hf_llama_model(dir, &back_cfg);
  EXPECT_TRUE(configs_equal(back_cfg, full)) << config_to_yaml(back_cfg);
  expect_same_state(back->state_dict(), model.state_dict());
  const Tensor ids = from_vector({1, 5, 9, 33, 2, 0, 17, 39}, {1, 8}, DType::i64);
  EXPECT_EQ(logits_of(*back, ids).to_vector(), logits_of(model, ids).to_vector());
  fs::remove_all(dir);
}

TEST(HfLlama, ConvertBothWays) {
  const std::string root = temp_dir("convert");
  const std::string ckpt = root + "/ckpt", hf = root + "/hf";
  convert_hf_to_checkpoint(kFixture.string(), ckpt, {"data.path=corpus.h5"});
  CheckpointState st = load_checkpoint(ckpt);
  Config cfg = parse_config(st.config_yaml, "state.h5");
  EXPECT_EQ(cfg.data.path, "corpus.h5");
  EXPECT_EQ(cfg.model.layer_pattern, "S");
  HybridLM model(cfg.model);
  model.load_state_dict(st.model);
  TensorMap ref = load_safetensors((kFixture / "reference.safetensors").string());
  EXPECT_LT(rel_error(logits_of(model, ref.at("input_ids")), ref.at("logits")), 1e-4);
  convert_checkpoint_to_hf(ckpt, hf);
  EXPECT_EQ(read_json(fs::path(hf) / "config.json")["max_position_embeddings"], 64);  // kept through skein
  expect_same_state(load_hf_llama(hf).state, model.state_dict());
  EXPECT_THROW(convert_hf_to_checkpoint(kFixture.string(), ckpt), Error);  // the output exists
  fs::remove_all(root);
}

// A distilled (Liger) student has exactly the Llama attention tensors, but its mixers differ:
// the export must not claim LlamaForCausalLM, and converting back must rebuild the student.
TEST(HfLlama, DistilledStudentRoundTrip) {
  const std::string root = temp_dir("student");
  Config cfg;
  cfg.model.vocab_size = 40;
  cfg.model.d_model = 16;
  cfg.model.n_layers = 2;
  cfg.model.n_heads = 2;
  cfg.model.mlp_hidden = 24;
  cfg.model.layer_pattern = "S";
  cfg.distill.teacher = root + "/teacher";  // only recorded: the student is built here
  cfg.distill.method = "liger";
  cfg.distill.window = 4;
  HybridLM teacher(cfg.model);
  auto student = make_student(teacher, cfg, nullptr);
  CheckpointState st;
  st.model = student->state_dict();
  st.config_yaml = config_to_yaml(cfg);
  const std::string ckpt = save_checkpoint(root + "/ckpts", st);
  convert_checkpoint_to_hf(ckpt, root + "/hf");
  const json config = read_json(fs::path(root) / "hf" / "config.json");
  EXPECT_EQ(config["architectures"][0], "SkeinForCausalLM");
  EXPECT_EQ(config["model_type"], "skein_hybrid");
  EXPECT_TRUE(load_safetensors((fs::path(root) / "hf" / "model.safetensors").string())
                  .count("model.layers.0.self_attn.skein.q_proj.weight"));
  convert_hf_to_checkpoint(root + "/hf", root + "/back");
  auto back = load_student(root + "/back");
  const Tensor ids = from_vector({1, 5, 9, 33, 2, 0, 17, 39, 4, 4}, {1, 10}, DType::i64);
  EXPECT_EQ(logits_of(*back, ids).to_vector(), logits_of(*student, ids).to_vector());
  EXPECT_GT(rel_error(logits_of(teacher, ids), logits_of(*student, ids)), 1e-3);  // the mixers really differ
  fs::remove_all(root);
}

TEST(HfLlama, TensorNames) {
  const std::pair<std::string, std::string> plain[] = {
      {"embed.weight", "model.embed_tokens.weight"},
      {"lm_head.weight", "lm_head.weight"},
      {"norm.weight", "model.norm.weight"},
      {"blocks.3.norm1.weight", "model.layers.3.input_layernorm.weight"},
      {"blocks.3.norm2.weight", "model.layers.3.post_attention_layernorm.weight"},
      {"blocks.12.mlp.w1.weight", "model.layers.12.mlp.gate_proj.weight"},
      {"blocks.12.mlp.w3.weight", "model.layers.12.mlp.up_proj.weight"},
      {"blocks.12.mlp.w2.weight", "model.layers.12.mlp.down_proj.weight"},
      {"blocks.0.mixer.k_proj.weight", "model.layers.0.self_attn.k_proj.weight"}};
  for (const auto& [sk, hf] : plain) {
    EXPECT_EQ(hf_tensor_name(sk, true), hf);
    EXPECT_EQ(skein_tensor_name(hf), sk);
  }
  EXPECT_EQ(hf_tensor_name("blocks.0.mixer.k_proj.weight", false), "model.layers.0.self_attn.skein.k_proj.weight");
  EXPECT_EQ(hf_tensor_name("blocks.2.mixer.gate.lora_a", true), "model.layers.2.self_attn.skein.gate.lora_a");
  EXPECT_EQ(hf_tensor_name("blocks.2.extra.w", true), "model.layers.2.skein.extra.w");
  EXPECT_EQ(hf_tensor_name("read_in.weight", true), "skein.read_in.weight");
  for (const std::string sk :
       {"blocks.0.mixer.k_proj.weight", "blocks.2.mixer.gate.lora_a", "blocks.2.extra.w", "read_in.weight"})
    EXPECT_EQ(skein_tensor_name(hf_tensor_name(sk, false)), sk);
  EXPECT_EQ(skein_tensor_name("model.layers.0.self_attn.q_proj.bias"), "blocks.0.mixer.q_proj.bias");  // Qwen2
  for (const char* bad : {"model.layers.0.self_attn.o_proj.bias", "model.layers.x.mlp.gate_proj.weight", "lm_head.bias"})
    EXPECT_THROW(skein_tensor_name(bad), Error) << bad;
}

// A copy of the f32 fixture with config.json edited by `edit` (and its tensors by `edit_tensors`).
std::string edited_copy(const std::function<void(json&)>& edit,
                        const std::function<void(TensorMap&)>& edit_tensors = nullptr) {
  const std::string dir = temp_dir("edited");
  fs::create_directories(dir);
  json c = read_json(kFixture / "config.json");
  edit(c);
  std::ofstream(fs::path(dir) / "config.json") << c.dump();
  TensorMap t = load_safetensors((kFixture / "model.safetensors").string());
  if (edit_tensors) edit_tensors(t);
  save_safetensors((fs::path(dir) / "model.safetensors").string(), t);
  return dir;
}

void expect_load_error(const std::string& dir, const std::string& part) {
  try {
    load_hf_llama(dir);
    ADD_FAILURE() << "no error, expected '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(HfLlama, UnsupportedConfigsAreClearErrors) {
  expect_load_error(edited_copy([](json& c) { c["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}}; }),
                    "rope_scaling.rope_type 'longrope' is not supported");
  expect_load_error(edited_copy([](json& c) { c["rope_parameters"]["rope_type"] = "llama3"; }),
                    "rope_parameters: key \"factor\" is missing");
  expect_load_error(edited_copy([](json& c) { c["attention_bias"] = true; }), "attention_bias is true");
  expect_load_error(edited_copy([](json& c) { c["mlp_bias"] = true; }), "mlp_bias is true");
  expect_load_error(edited_copy([](json& c) { c["hidden_act"] = "gelu"; }), "hidden_act 'gelu' is not supported");
  expect_load_error(edited_copy([](json& c) { c["head_dim"] = 16; }), "head_dim 16 differs from");
  expect_load_error(edited_copy([](json& c) { c["model_type"] = "gemma"; }), "model_type 'gemma'");
  expect_load_error(edited_copy([](json& c) { c.erase("hidden_size"); }), "key \"hidden_size\" is missing");
  expect_load_error(edited_copy([](json& c) { c["vocab_size"] = "96"; }), "\"vocab_size\" has the wrong type");
  expect_load_error(edited_copy([](json& c) { c["num_key_value_heads"] = 3; }), "multiple of num_key_value_heads 3");
}

TEST(HfLlama, BadTensorsAreClearErrors) {
  auto same = [](json&) {};
  expect_load_error(edited_copy(same, [](TensorMap& t) { t.erase("model.layers.1.mlp.up_proj.weight"); }),
                    "tensor 'model.layers.1.mlp.up_proj.weight' is missing");
  expect_load_error(edited_copy(same, [](TensorMap& t) { t["model.layers.0.self_attn.k_proj.weight"] = zeros({32, 32}); }),
                    "'model.layers.0.self_attn.k_proj.weight' has shape [32,32] but config.json implies [16,32]");
  expect_load_error(edited_copy(same, [](TensorMap& t) { t["model.layers.0.self_attn.q_proj.bias"] = zeros({32}); }),
                    "'model.layers.0.self_attn.q_proj.bias' is not part of a Llama model");
  expect_load_error(edited_copy([](json& c) { c["num_hidden_layers"] = 3; }),
                    "'model.layers.2.input_layernorm.weight' is missing");
  const std::string dir = temp_dir("no_config");
  fs::create_directories(dir);
  expect_load_error(dir, "config.json is missing");
}

// Not a check by itself: with SKEIN_HF_EXPORT_DIR set (by tests/launch/check_hf_export.py),
// exports random skein Llamas (untied grouped-query, tied) there, each with the skein logits of
// fixed ids in reference.safetensors, for transformers to load and compare.
TEST(HfExport, WritesForTransformers) {
  const char* out = std::getenv("SKEIN_HF_EXPORT_DIR");
  if (!out) GTEST_SKIP() << "SKEIN_HF_EXPORT_DIR not set";
  for (const bool tied : {false, true}) {
    ModelConfig c;
    c.vocab_size = 80;
    c.d_model = 48;
    c.n_layers = 2;
    c.n_heads = 6;
    c.n_kv_heads = tied ? 0 : 2;
    c.mlp_hidden = 72;
    c.layer_pattern = "S";
    c.rope_theta = 500.0;
    c.norm_eps = 1e-5;
    c.init_std = 0.1;
    c.tie_embeddings = tied;
    HybridLM model(c);
    Generator gen(3);
    for (auto& [name, p] : model.state_dict()) {  // norm gains around 1, not all ones
      NoGradGuard no_grad;
      if (name.ends_with("norm1.weight") || name.ends_with("norm2.weight") || name == "norm.weight")
        copy_(p, add(mul(randn(p.shape(), gen), 0.2), 1.0));
    }
    const std::string dir = (fs::path(out) / (tied ? "tied" : "gqa")).string();
    fs::remove_all(dir);
    save_hf_llama(model, dir);
    const Tensor ids = from_vector({3, 79, 0, 41, 12, 12, 60, 7, 33, 25, 1, 66, 5, 48, 70, 2}, {2, 8}, DType::i64);
    save_safetensors((fs::path(dir) / "reference.safetensors").string(),
                     {{"input_ids", ids}, {"logits", logits_of(model, ids)}});
  }
}

}  // namespace
}  // namespace skein
