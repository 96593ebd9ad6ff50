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
  const DType dt = weight.dtype() == DType::bf16 ? DType::f32 : weight.dtype();  // adapters train in f32
  lora_A = register_parameter("lora_A", uniform({rank, in}, gen, -bound, bound, dt));
  lora_B = register_parameter("lora_B", zeros({out, rank}, dt));
  scaling = alpha / static_cast<double>(rank);
  dropout_p = dropout;
  dropout_gen_ = Generator(seed + 1);
  weight.requires_grad_(false);
  if (bias.defined()) bias.requires_grad_(false);
}

Tensor LoRALinear::forward(const Tensor& x) const {
  SKEIN_CHECK(x.dim() >= 1 && x.shape().back() == weight.size(1), "LoRALinear: input ", shape_str(x.shape()),
              " does not end in the layer's in-features ", weight.size(1));
  Tensor w = weight.dtype() == x.dtype() ? weight : weight.to(x.dtype());  // a bf16-stored base
  Tensor y = matmul(x, w.transpose(0, 1));
  if (bias.defined()) y = add(y, bias);
  if (!has_adapter()) return y;
  Tensor h = dropout(x, dropout_p, dropout_gen_, is_training());
  Tensor update = matmul(matmul(h, lora_A.transpose(0, 1)), lora_B.transpose(0, 1));  // [..., out]
  return add(y, mul(update, scaling));
}

std::shared_ptr<LoRALinear> LoRALinear::merged() const {
  NoGradGuard no_grad;
  if (!has_adapter()) return std::make_shared<LoRALinear>(weight.clone(), bias.defined() ? bias.clone() : Tensor());
  const DType dt = lora_A.dtype();  // merged in the adapter's dtype, stored as the base was
  Tensor w = add(weight.dtype() == dt ? weight : weight.to(dt), mul(matmul(lora_B, lora_A), scaling));  // [out, in]
  return std::make_shared<LoRALinear>(w.dtype() == weight.dtype() ? w : w.to(weight.dtype()),
                                      bias.defined() ? bias.clone() : Tensor());
}

LoRASwiGLU::LoRASwiGLU(const SwiGLU& base) {
  SKEIN_CHECK(base.w1 && base.w2 && base.w3, "LoRASwiGLU: the MLP must be a plain SwiGLU (it already has adapters?)");
  gate = register_module("w1", std::make_shared<LoRALinear>(base.w1->weight, base.w1->bias));
  up = register_module("w3", std::make_shared<LoRALinear>(base.w3->weight, base.w3->bias));
  down = register_module("w2", std::make_shared<LoRALinear>(base.w2->weight, base.w2->bias));
}

Tensor LoRASwiGLU::forward(const Tensor& x) const {
  Tensor a = gate->forward(x), b = up->forward(x);  // [..., hidden]
  if (!down->has_adapter()) {  // w2's GEMM fused with silu(a) * b, as SwiGLU does
    Tensor y = swiglu_down(a, b, down->weight.dtype() == a.dtype() ? down->weight : down->weight.to(a.dtype()));
    return down->bias.defined() ? add(y, down->bias) : y;
  }
  return down->forward(mul(silu(a), b));
}

std::shared_ptr<LoRALinear>& LoRASwiGLU::projection(const std::string& name) {
  if (name == "gate_proj") return gate;
  if (name == "up_proj") return up;
  SKEIN_CHECK(name == "down_proj", "LoRA target '", name, "' is not a projection of the MLP (gate_proj, up_proj, down_proj)");
  return down;
}

void LoRASwiGLU::merge_adapters() {
  for (const auto& [name, child] : {std::pair{"gate_proj", "w1"}, {"up_proj", "w3"}, {"down_proj", "w2"}}) {
    std::shared_ptr<LoRALinear>& slot = projection(name);
    if (!slot->has_adapter()) continue;
    slot = slot->merged();
    replace_module(child, slot);
  }
}

bool is_lora_target(const std::string& n) {
  return n == "q_proj" || n == "k_proj" || n == "v_proj" || n == "o_proj" || n == "gate_proj" || n == "up_proj" ||
         n == "down_proj";
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
  for (const auto& name : cfg.targets)
    SKEIN_CHECK(is_lora_target(name), "LoRA target '", name, "' is not one of q_proj, k_proj, v_proj, o_proj, "
                "gate_proj, up_proj, down_proj");
  int64_t added = 0, layer = 0;
  for (auto& block : model.blocks) {
    auto* conv = dynamic_cast<ConvertedAttention*>(block->mixer.get());
    ++layer;
    if (!conv) continue;
    // seeds differ per layer (and per projection through its shape; as before MLP targets existed)
    const uint64_t seed = cfg.seed + 1000003ull * static_cast<uint64_t>(layer) + 7919ull * static_cast<uint64_t>(added);
    for (const auto& name : cfg.targets) {
      if (name == "gate_proj" || name == "up_proj" || name == "down_proj") {
        auto mlp = std::dynamic_pointer_cast<LoRASwiGLU>(block->mlp);
        if (!mlp) {
          SKEIN_CHECK(model.par().tp_size() == 1, "apply_lora: MLP adapters need one process (tp_size ",
                      model.par().tp_size(), ")");
          mlp = std::make_shared<LoRASwiGLU>(*block->mlp);
          block->replace_module("mlp", mlp);
          block->mlp = mlp;
        }
        mlp->projection(name)->add_adapter(cfg.rank, cfg.alpha, cfg.dropout, seed);
      } else {
        conv->projection(name)->add_adapter(cfg.rank, cfg.alpha, cfg.dropout, seed);
      }
    }
    added += static_cast<int64_t>(cfg.targets.size());
  }
  SKEIN_CHECK(added > 0, "apply_lora: the model has no converted attention layers to adapt");
  return added;
}

void merge_lora(HybridLM& model) {
  for (auto& block : model.blocks) {
    if (auto* conv = dynamic_cast<ConvertedAttention*>(block->mixer.get())) conv->merge_adapters();
    if (auto* mlp = dynamic_cast<LoRASwiGLU*>(block->mlp.get())) mlp->merge_adapters();
  }
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
