// hf_export.cpp — skein_hybrid config keys and remote-code files of an HF export (see
// hf_export.h). The mixer of each layer is described from its C++ type and options, so the
// Python side rebuilds exactly the layers the checkpoint holds (distilled students included).
#include "launch/hf_export.h"
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <typeinfo>
#include "core/error.h"
#include "layers/attention.h"
#include "layers/liger.h"
#include "layers/linear_attention.h"
#include "layers/lolcats.h"
#include "layers/mom.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace skein {

json hf_layer_mixers(const HybridLM& model) {
  json layers = json::array();
  for (const auto& block : model.blocks) {
    const Mixer& m = *block->mixer;
    json spec;
    if (typeid(m) == typeid(SoftmaxAttention)) {
      spec = {{"kind", "softmax"}, {"window", static_cast<const SoftmaxAttention&>(m).window}};
    } else if (const auto* l = dynamic_cast<const LinearAttention*>(&m)) {
      spec = {{"kind", "linear"}, {"variant", l->variant}};
    } else if (dynamic_cast<const MoM*>(&m)) {
      spec = {{"kind", "mom"}};
    } else if (const auto* g = dynamic_cast<const LigerAttention*>(&m)) {
      const LigerOptions& o = g->options;
      spec = {{"kind", "liger"}, {"attention", o.attention}, {"window", o.window}, {"mix", o.mix},
              {"gate_normalizer", o.gate_normalizer}};
    } else if (const auto* c = dynamic_cast<const LolcatsAttention*>(&m)) {
      spec = {{"kind", "lolcats"}, {"window", c->options.window}, {"feature_dim", c->q_map.size(2)},
              {"linear", c->options.linear}};
    } else {
      spec = {{"kind", std::string("unsupported: ") + typeid(m).name()}};
    }
    std::vector<std::string> names;
    for (const auto& [name, t] : m.state_dict()) names.push_back(name);
    std::sort(names.begin(), names.end());
    spec["tensors"] = names;
    layers.push_back(spec);
  }
  return layers;
}

void make_skein_hybrid_config(json& config, const HybridLM& model) {
  config["model_type"] = "skein_hybrid";
  config["architectures"] = json::array({"SkeinForCausalLM"});
  config["auto_map"] = {{"AutoConfig", "configuration_skein.SkeinConfig"},
                        {"AutoModelForCausalLM", "modeling_skein.SkeinForCausalLM"}};
  config["layer_mixers"] = hf_layer_mixers(model);
}

void write_hf_remote_code(const std::string& dir) {
  for (const auto& [name, text] : {std::pair{"configuration_skein.py", kHfConfigurationPy},
                                   std::pair{"modeling_skein.py", kHfModelingPy}}) {
    const fs::path p = fs::path(dir) / name;
    std::ofstream f(p, std::ios::binary);
    f << text;
    f.close();
    SKEIN_CHECK(f, "hf export: writing ", p.string(), " failed (disk full?)");
  }
}

}  // namespace skein
