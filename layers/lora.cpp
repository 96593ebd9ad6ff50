// lora.cpp — LoRALinear, ConvertedAttention and the model-level adapter helpers (see lora.h).
#include "layers/lora.h"
#include <cmath>

namespace skein {

LoRALinear::LoRALinear(const Tensor& w, const Tensor& b) {
  SKEIN_CHECK(w.dim() == 2, "LoRALinear: weight must be [out, in], got ", shape_str(w.shape()));
  weight = register_parameter("weight", w);
  if (b.defined()) {
    SKEIN_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "LoRALinear: bias ", shape_str(b.shape()),
                " does not match weight ", shape_str(w.shape()));
    bias = register_parameter("bias", b);
  }
}

void LoRALinear::add_adapter(int64_t rank, double alpha, double dropout, uint64_t seed) {
  SKEIN_CHECK(!has_adapter(), "LoRALinear::add_adapter: the projection already has an adapter");
  SKEIN_CHECK(rank >= 1, "LoRA: rank must be >= 1, got ", rank);
  SKEIN_CHECK(dropout >= 0 && dropout < 1, "LoRA: dropout must lie in [0, 1), got ", dropout);
  const int64_t out = weight.size(0), in = weight.size(1);
  Generator gen(seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));  // kaiming-uniform with a = √5
  lora_A = register_parameter("lora_A", uniform({rank, in}, gen, -bound, bound, weight.dtype()));
  lora_B = register_parameter("lora_B", zeros({out, rank}, weight.dtype()));
  scaling = alpha / static_cast<double>(rank);
  dropout_p = dropout;
  dropout_gen_ = Generator(seed + 1);
  weight.requires_grad_(false);
  if (bias.defined()) bias.requires_grad_(false);
}

Tensor LoRALinear::forward(const Tensor& x) const {
  SKEIN_CHECK(x.dim() >= 1 && x.shape().back() == weight.size(1), "LoRALinear: input ", shape_str(x.shape()),
              " does not end in the layer's in-features ", weight.size(1));
  Tensor y = matmul(x, weight.transpose(0, 1));
  if (bias.defined()) y = add(y, bias);
  if (!has_adapter()) return y;
  Tensor h = dropout(x, dropout_p, dropout_gen_, is_training());
  Tensor update = matmul(matmul(h, lora_A.transpose(0, 1)), lora_B.transpose(0, 1));  // [..., out]
  return add(y, mul(update, scaling));
}

std::shared_ptr<LoRALinear> LoRALinear::merged() const {
  NoGradGuard no_grad;
  if (!has_adapter()) return std::make_shared<LoRALinear>(weight.clone(), bias.defined() ? bias.clone() : Tensor());
  Tensor w = add(weight, mul(matmul(lora_B, lora_A), scaling));  // [out, in]
  return std::make_shared<LoRALinear>(w, bias.defined() ? bias.clone() : Tensor());
}

ConvertedAttention::ConvertedAttention(const SoftmaxAttention& t)
    : n_heads(t.n_heads), n_kv_heads(t.n_kv_heads), head_dim(t.head_dim), rope_cfg(t.rope_cfg) {
  auto adopt = [&](const char* name, const Linear& base) {
    return register_module(name, std::make_shared<LoRALinear>(base.weight, base.bias));
  };
  q_proj = adopt("q_proj", *t.q_proj);
  k_proj = adopt("k_proj", *t.k_proj);
  v_proj = adopt("v_proj", *t.v_proj);
  o_proj = adopt("o_proj", *t.o_proj);
}

std::shared_ptr<LoRALinear>& ConvertedAttention::projection(const std::string& name) {
  if (name == "q_proj") return q_proj;
  if (name == "k_proj") return k_proj;
  if (name == "v_proj") return v_proj;
  SKEIN_CHECK(name == "o_proj", "LoRA target '", name, "' is not a projection of a converted attention layer "
              "(q_proj, k_proj, v_proj, o_proj)");
  return o_proj;
}

void ConvertedAttention::merge_adapters() {
  for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    std::shared_ptr<LoRALinear>& slot = projection(name);
    if (!slot->has_adapter()) continue;
    slot = slot->merged();
    replace_module(name, slot);
  }
}

Tensor ConvertedAttention::repeat_kv(const Tensor& x) const {
  if (n_heads == n_kv_heads) return x;
  const int64_t B = x.size(0), T = x.size(2), D = x.size(3), groups = n_heads / n_kv_heads;
  return x.reshape({B, n_kv_heads, 1, T, D}).expand({B, n_kv_heads, groups, T, D}).reshape({B, n_heads, T, D});
}

std::vector<int64_t> convert_attention_layers(HybridLM& model, const std::string& pattern, const ConvertFn& make) {
  SKEIN_CHECK(pattern.find_first_not_of("LS") == std::string::npos, "distill.layers: '", pattern,
              "' must be \"\" (every softmax layer) or letters L (convert) and S (keep)");
  std::vector<int64_t> converted;
  for (int64_t i = 0; i < static_cast<int64_t>(model.blocks.size()); ++i) {
    Block& block = *model.blocks[static_cast<size_t>(i)];
    const auto* attn = dynamic_cast<const SoftmaxAttention*>(block.mixer.get());
    const bool wanted = pattern.empty() ? attn != nullptr : pattern[static_cast<size_t>(i) % pattern.size()] == 'L';
    if (!wanted) continue;
    SKEIN_CHECK(attn, "distill.layers: layer ", i, " of the teacher is '", std::string(1, block.kind),
                "', not softmax attention (S); only softmax layers can be converted");
    std::shared_ptr<ConvertedAttention> m = make(*attn, i);
    block.replace_module("mixer", m);
    block.mixer = m;
    converted.push_back(i);
  }
  SKEIN_CHECK(!converted.empty(), "distill.layers: '", pattern, "' converts no layer of the teacher");
  return converted;
}

int64_t apply_lora(HybridLM& model, const LoRAConfig& cfg) {
  SKEIN_CHECK(!cfg.targets.empty(), "apply_lora: no target projections given");
  int64_t added = 0, layer = 0;
  for (auto& block : model.blocks) {
    auto* conv = dynamic_cast<ConvertedAttention*>(block->mixer.get());
    ++layer;
    if (!conv) continue;
    for (const auto& name : cfg.targets)  // seeds differ per layer and projection
      conv->projection(name)->add_adapter(cfg.rank, cfg.alpha, cfg.dropout,
                                          cfg.seed + 1000003ull * static_cast<uint64_t>(layer) + 7919ull * static_cast<uint64_t>(added));
    added += static_cast<int64_t>(cfg.targets.size());
  }
  SKEIN_CHECK(added > 0, "apply_lora: the model has no converted attention layers to adapt");
  return added;
}

void merge_lora(HybridLM& model) {
  for (auto& block : model.blocks)
    if (auto* conv = dynamic_cast<ConvertedAttention*>(block->mixer.get())) conv->merge_adapters();
}

void set_trainable(const Module& m, bool on) {
  for (auto& [name, p] : m.named_parameters()) {
    Tensor t = p;
    t.requires_grad_(on);
  }
}

NamedTensors trainable_parameters(const Module& m) {
  NamedTensors out;
  for (auto& [name, p] : m.named_parameters())
    if (p.requires_grad()) out.emplace_back(name, p);
  return out;
}

}  // namespace skein
