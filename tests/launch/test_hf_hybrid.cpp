// test_hf_hybrid.cpp — HF exports of models transformers' Llama cannot compute: config.json
// says model_type skein_hybrid with auto_map and one layer_mixers entry per layer (from the
// actual mixers, distilled ones included), the remote-code files are the repository's
// launch/hf/*.py, plain Llamas stay "llama" without them, and the committed tiny export
// (tests/fixtures/tiny_hybrid) still has that structure and imports back to its reference
// logits. HfHybrid.WritesForTransformers feeds tests/launch/check_hf_hybrid.py, which loads
// every mixer kind in transformers and compares the logits.
#include <gtest/gtest.h>
#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include "core/autograd.h"
#include "core/ops.h"
#include "data/token_file.h"
#include "launch/hf_export.h"
#include "launch/hf_llama.h"
#include "layers/liger.h"
#include "layers/lolcats.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {
namespace {

const fs::path kRepo = fs::path(SKEIN_SOURCE_DIR);
const fs::path kFixture = kRepo / "tests" / "fixtures" / "tiny_hybrid";

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("skein_test_hf_hybrid_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p.string();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json read_json(const fs::path& p) { return json::parse(slurp(p)); }

ModelConfig small(const std::string& pattern) {
  ModelConfig c;
  c.vocab_size = 64;
  c.d_model = 32;
  c.n_layers = static_cast<int64_t>(pattern.size());
  c.n_heads = 4;
  c.mlp_hidden = 48;
  c.layer_pattern = pattern;
  c.chunk_size = 4;  // several chunks over the test's 16 tokens
  c.init_std = 0.1;
  c.rope_theta = 500.0;
  return c;
}

// Every tensor moved off its init (norm gains, gates, feature maps included), deterministically.
void perturb(HybridLM& model, uint64_t seed) {
  NoGradGuard no_grad;
  Generator gen(seed);
  for (auto& [name, p] : model.state_dict()) copy_(p, add(p, mul(randn(p.shape(), gen, p.dtype()), 0.05)));
}

struct Case {
  std::string name;
  std::function<std::unique_ptr<HybridLM>()> make;
};

std::unique_ptr<HybridLM> with(ModelConfig c, const std::function<void(ModelConfig&)>& edit) {
  edit(c);
  return std::make_unique<HybridLM>(c);
}

// One model per mixer kind and option that changes the computation.
std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* v : {"plain", "decay", "gla", "delta", "gated_delta"})
    out.push_back({std::string("linear_") + v, [v] {
                     return with(small("LS"), [&](ModelConfig& c) { c.linear_variant = v; });
                   }});
  for (const char* f : {"elu1", "relu", "hedgehog"})
    out.push_back({std::string("linear_decay_") + f, [f] {
                     return with(small("LS"), [&](ModelConfig& c) { c.feature_map = f; c.linear_scale = 0.5; });
                   }});
  out.push_back({"linear_gated_delta_gate_nonorm", [] {
                   return with(small("LLS"), [](ModelConfig& c) {
                     c.linear_variant = "gated_delta";
                     c.layer_variants = {"", "gla"};
                     c.linear_output_gate = true;
                     c.linear_output_norm = false;
                   });
                 }});
  // All-softmax and windowed: Mistral-shaped, exported as "mistral" (WindowedSoftmaxIsMistral).
  out.push_back({"softmax_window_gqa", [] {
                   return with(small("S"), [](ModelConfig& c) { c.window = 5; c.n_kv_heads = 2; c.tie_embeddings = true; });
                 }});
  for (const char* v : {"gated_delta", "delta", "decay", "plain"})
    out.push_back({std::string("mom_") + v, [v] {
                     return with(small("MS"), [&](ModelConfig& c) {
                       c.mom_variant = v;
                       c.mom_memories = 3;
                       c.mom_topk = 2;
                       c.mom_shared_memory = std::string(v) != "plain";
                     });
                   }});
  for (const bool attention : {true, false})
    out.push_back({std::string("liger") + (attention ? "" : "_gla_only"), [attention] {
                     auto m = with(small("SS"), [](ModelConfig& c) { c.n_kv_heads = 2; });
                     LigerOptions o;
                     o.attention = attention;
                     o.window = 6;
                     o.chunk = 4;
                     convert_to_liger(*m, "LS", o);
                     return m;
                   }});
  out.push_back({"lolcats", [] {
                   auto m = with(small("SS"), [](ModelConfig& c) { c.n_kv_heads = 2; });
                   LolcatsOptions o;
                   o.window = 5;  // < T: the linear part is used
                   o.feature_dim = 6;
                   o.chunk = 4;
                   convert_to_lolcats(*m, "", o, 7);
                   return m;
                 }});
  // scaled RoPE and Qwen2's q/k/v biases through the remote code (converted and kept layers)
  out.push_back({"liger_llama3_rope_qkv_bias", [] {
                   auto m = with(small("SS"), [](ModelConfig& c) {
                     c.n_kv_heads = 2;
                     c.qkv_bias = true;
                     c.rope_type = "llama3";
                     c.rope_factor = 8;
                     c.rope_original_max_positions = 8;
                   });
                   LigerOptions o;
                   o.window = 6;
                   o.chunk = 4;
                   convert_to_liger(*m, "LS", o);
                   return m;
                 }});
  out.push_back({"lolcats_yarn", [] {
                   auto m = with(small("SS"), [](ModelConfig& c) {
                     c.rope_type = "yarn";
                     c.rope_factor = 4;
                     c.rope_original_max_positions = 8;
                   });
                   LolcatsOptions o;
                   o.window = 5;
                   o.feature_dim = 6;
                   o.chunk = 4;
                   convert_to_lolcats(*m, "", o, 7);
                   return m;
                 }});
  return out;
}

const char* const kTokText =
    "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God "
    "divided the light from the darkness. And God called the light Day, and the darkness he called Night.";

const std::vector<int64_t> kIds = {3, 63, 0, 41, 12, 12, 60, 7, 33, 25, 1, 50, 5, 48, 20, 2,
                                   9, 9, 9, 17, 44, 2, 61, 30, 0, 8, 15, 27, 36, 5, 5, 11};

Tensor logits_of(HybridLM& model, const Tensor& ids) {
  NoGradGuard no_grad;
  return model.forward(ids);
}

// Exports `model` to dir with reference.safetensors (ids [2, 16] and skein's logits).
void export_with_reference(HybridLM& model, const std::string& dir, const std::string& tokenizer = "") {
  HfSaveOptions o;
  o.tokenizer_identity = tokenizer;
  save_hf_llama(model, dir, o);
  const Tensor ids = from_vector(std::vector<double>(kIds.begin(), kIds.end()), {2, 16}, DType::i64);
  save_safetensors((fs::path(dir) / "reference.safetensors").string(), {{"input_ids", ids}, {"logits", logits_of(model, ids)}});
}

TEST(HfHybrid, ConfigNamesEveryLayersMixerAndShipsTheRemoteCode) {
  const std::string py_config = slurp(kRepo / "launch" / "hf" / "configuration_skein.py");
  const std::string py_model = slurp(kRepo / "launch" / "hf" / "modeling_skein.py");
  ASSERT_FALSE(py_model.empty());
  std::map<std::string, std::string> kinds = {{"linear_gla", "linear"}, {"mom_delta", "mom"}, {"liger", "liger"},
                                              {"lolcats", "lolcats"}};
  for (const Case& c : cases()) {
    if (!kinds.count(c.name)) continue;
    SCOPED_TRACE(c.name);
    auto model = c.make();
    const std::string dir = temp_dir(c.name);
    save_hf_llama(*model, dir);
    const json cfg = read_json(fs::path(dir) / "config.json");
    EXPECT_EQ(cfg["model_type"], "skein_hybrid");
    EXPECT_EQ(cfg["architectures"], json::array({"SkeinForCausalLM"}));
    EXPECT_EQ(cfg["auto_map"]["AutoModelForCausalLM"], "modeling_skein.SkeinForCausalLM");
    EXPECT_EQ(cfg["auto_map"]["AutoConfig"], "configuration_skein.SkeinConfig");
    ASSERT_EQ(cfg["layer_mixers"].size(), model->blocks.size());
    EXPECT_EQ(cfg["layer_mixers"][0]["kind"], kinds[c.name]);
    for (size_t i = 0; i < model->blocks.size(); ++i) {  // the tensors each layer's mixer holds
      std::vector<std::string> names;
      for (const auto& [n, t] : model->blocks[i]->mixer->state_dict()) names.push_back(n);
      std::sort(names.begin(), names.end());
      EXPECT_EQ(cfg["layer_mixers"][i]["tensors"].get<std::vector<std::string>>(), names) << i;
    }
    EXPECT_EQ(slurp(fs::path(dir) / "configuration_skein.py"), py_config);
    EXPECT_EQ(slurp(fs::path(dir) / "modeling_skein.py"), py_model);
    EXPECT_EQ(slurp(fs::path(dir) / "skein_mixers.py"), slurp(kRepo / "launch" / "hf" / "skein_mixers.py"));
    fs::remove_all(dir);
  }
  // the options of converted layers and windows travel in the layer entry
  auto liger = cases()[14].make();
  json mixers = hf_layer_mixers(*liger);
  EXPECT_EQ(mixers[0]["kind"], "liger");
  EXPECT_EQ(mixers[0]["window"], 6);
  EXPECT_EQ(mixers[1]["kind"], "softmax");
  EXPECT_EQ(mixers[1]["window"], 0);
}

// Softmax attention with a window is Mistral: transformers computes it without remote code.
TEST(HfHybrid, WindowedSoftmaxIsMistral) {
  for (const Case& c : cases()) {
    if (c.name != "softmax_window_gqa") continue;
    auto model = c.make();
    const std::string dir = temp_dir(c.name);
    save_hf_llama(*model, dir);
    const json cfg = read_json(fs::path(dir) / "config.json");
    EXPECT_EQ(cfg["model_type"], "mistral");
    EXPECT_EQ(cfg["sliding_window"], model->cfg.window);
    EXPECT_FALSE(cfg.contains("auto_map"));
    EXPECT_FALSE(fs::exists(fs::path(dir) / "modeling_skein.py"));
    fs::remove_all(dir);
  }
}

TEST(HfHybrid, PlainLlamaStaysLlamaWithoutRemoteCode) {
  ModelConfig c = small("SS");
  HybridLM model(c);
  const std::string dir = temp_dir("llama");
  save_hf_llama(model, dir);
  const json cfg = read_json(fs::path(dir) / "config.json");
  EXPECT_EQ(cfg["model_type"], "llama");
  EXPECT_FALSE(cfg.contains("auto_map"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "modeling_skein.py"));
  fs::remove_all(dir);
}

TEST(HfHybrid, HybridExportImportsBackExactly) {
  auto model = cases()[4].make();  // linear_gated_delta
  perturb(*model, 5);
  const std::string dir = temp_dir("roundtrip");
  save_hf_llama(*model, dir);
  Config cfg;
  auto back = load_hf_llama_model(dir, &cfg);
  EXPECT_EQ(cfg.model.layer_pattern, "LS");
  const Tensor ids = from_vector({1, 2, 3, 4, 5, 6}, {1, 6}, DType::i64);
  EXPECT_EQ(logits_of(*back, ids).to_vector(), logits_of(*model, ids).to_vector());
  fs::remove_all(dir);
}

// The committed export (tests/fixtures/tiny_hybrid): its structure, its remote code equal to
// the repository's (remake it with SKEIN_HF_HYBRID_FIXTURE=<dir> and the test below after
// changing launch/hf/*.py), and skein reading it back to the logits stored beside it.
TEST(HfHybrid, CommittedFixtureHasTheExportStructure) {
  ASSERT_TRUE(fs::exists(kFixture / "config.json")) << kFixture;
  const json cfg = read_json(kFixture / "config.json");
  EXPECT_EQ(cfg["model_type"], "skein_hybrid");
  EXPECT_EQ(cfg["layer_mixers"].size(), cfg["num_hidden_layers"].get<size_t>());
  std::set<std::string> kinds;
  for (const auto& l : cfg["layer_mixers"]) kinds.insert(l["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"linear", "mom", "softmax"}));
  EXPECT_EQ(slurp(kFixture / "modeling_skein.py"), slurp(kRepo / "launch" / "hf" / "modeling_skein.py"))
      << "launch/hf/modeling_skein.py changed: remake the fixture (see this test)";
  EXPECT_EQ(slurp(kFixture / "configuration_skein.py"), slurp(kRepo / "launch" / "hf" / "configuration_skein.py"));
  EXPECT_EQ(slurp(kFixture / "skein_mixers.py"), slurp(kRepo / "launch" / "hf" / "skein_mixers.py"));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors"})
    EXPECT_TRUE(fs::exists(kFixture / f)) << f;
  auto model = load_hf_llama_model(kFixture.string());
  TensorMap ref = load_safetensors((kFixture / "reference.safetensors").string());
  const std::vector<double> got = logits_of(*model, ref.at("input_ids")).to_vector(), want = ref.at("logits").to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << i;
}

// The export carries the run's tokenizer; `convert --from hf` reads it back and checks it
// against the eos of tokenizer_config.json and the tokenizer of a data.path given.
TEST(HfHybrid, TokenizerTravelsWithTheExport) {
  auto model = with(small("LS"), [](ModelConfig& c) { c.vocab_size = 300; });
  const BpeTokenizer tok = train_bpe({kTokText}, 290);
  const std::string dir = temp_dir("tok");
  HfSaveOptions o;
  o.tokenizer_identity = tok.identity();
  o.max_position_embeddings = 512;
  save_hf_llama(*model, dir, o);
  const json tc = read_json(fs::path(dir) / "tokenizer_config.json");
  EXPECT_EQ(tc["eos_token"], "<|endoftext|>");
  EXPECT_EQ(tc["pad_token"], "<|endoftext|>");
  EXPECT_EQ(tc["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(tc["model_max_length"], 512);
  const json gc = read_json(fs::path(dir) / "generation_config.json");
  EXPECT_EQ(gc["eos_token_id"], tok.eos_id());
  EXPECT_EQ(read_json(fs::path(dir) / "config.json")["eos_token_id"], tok.eos_id());
  auto back = read_hf_tokenizer(dir);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(same_tokenizer(*back, tok));
  EXPECT_EQ(back->encode(kTokText), tok.encode(kTokText));
  // the byte tokenizer is the no-merge BPE: the same ids
  ByteTokenizer bytes;
  EXPECT_EQ(hf_tokenizer_of("bytes").encode("abc \xc3\xa9!"), bytes.encode("abc \xc3\xa9!"));
  EXPECT_EQ(hf_tokenizer_of("bytes").eos_id(), bytes.eos_id());

  // convert --from hf: a token file made with this tokenizer is accepted, one made with bytes is not
  const std::string good = temp_dir("tok_good.h5"), bad = temp_dir("tok_bad.h5");
  for (const auto& [path, t] : {std::pair<std::string, const Tokenizer*>{good, &tok}, {bad, &bytes}}) {
    TokenFileWriter w(path, *t);
    for (int i = 0; i < 4; ++i) w.append(i ? "train" : "val", t->encode(kTokText));
    w.finalize();
  }
  const std::string ckpt = temp_dir("tok_ckpt");
  convert_hf_to_checkpoint(dir, ckpt, {"data.path=" + good});
  EXPECT_TRUE(fs::exists(fs::path(ckpt) / "state.h5"));
  fs::remove_all(ckpt);
  try {
    convert_hf_to_checkpoint(dir, ckpt, {"data.path=" + bad});
    ADD_FAILURE() << "a token file of another tokenizer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another tokenizer"), std::string::npos) << e.what();
  }
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << R"({"eos_token": "the"})";
  try {
    convert_hf_to_checkpoint(dir, ckpt);
    ADD_FAILURE() << "a wrong eos_token was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eos_token 'the'"), std::string::npos) << e.what();
  }
  for (const auto& p : {dir, good, bad, ckpt}) fs::remove_all(p);
}

TEST(HfHybrid, WriteFixture) {
  const char* out = std::getenv("SKEIN_HF_HYBRID_FIXTURE");
  if (!out) GTEST_SKIP() << "SKEIN_HF_HYBRID_FIXTURE not set";
  ModelConfig c = small("LMS");
  c.vocab_size = 257;  // the byte tokenizer's
  c.d_model = 16;
  c.mlp_hidden = 24;
  c.mom_memories = 2;
  c.mom_topk = 1;
  HybridLM model(c);
  perturb(model, 11);
  fs::remove_all(out);
  export_with_reference(model, out, "bytes");
}

// Not a check by itself: with SKEIN_HF_HYBRID_DIR set (by tests/launch/check_hf_hybrid.py),
// exports one model per mixer kind there with skein's logits, for transformers to compare.
TEST(HfHybrid, WritesForTransformers) {
  const char* out = std::getenv("SKEIN_HF_HYBRID_DIR");
  if (!out) GTEST_SKIP() << "SKEIN_HF_HYBRID_DIR not set";
  // A BPE tokenizer export, with skein's ids of a text for AutoTokenizer to reproduce.
  const std::string text = "In the beginning God created the heaven and the earth.\n\tUnicode: \xc3\xa9\xe2\x82\xac  end";
  const BpeTokenizer tok = train_bpe({kTokText, kTokText}, 300);
  auto lm = with(small("LS"), [](ModelConfig& c) { c.vocab_size = 300; });
  const std::string tdir = (fs::path(out) / "tokenizer_bpe").string();
  fs::remove_all(tdir);
  export_with_reference(*lm, tdir, tok.identity());
  std::vector<int64_t> ids = tok.encode(text);
  ids.push_back(tok.eos_id());  // an eos between documents, as prep writes it
  std::ofstream(fs::path(tdir) / "tokenizer_text.txt", std::ios::binary) << text;
  save_safetensors((fs::path(tdir) / "tokenizer_ids.safetensors").string(),
                   {{"ids", from_vector(std::vector<double>(ids.begin(), ids.end()), {static_cast<int64_t>(ids.size())}, DType::i64)}});
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    auto model = c.make();
    perturb(*model, ++seed);
    const std::string dir = (fs::path(out) / c.name).string();
    fs::remove_all(dir);
    export_with_reference(*model, dir);
  }
}

}  // namespace
}  // namespace skein
