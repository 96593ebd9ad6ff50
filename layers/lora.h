// lora.h — LoRA adapters: LoRALinear (a frozen weight plus a trainable low-rank update,
// merged back into a plain weight on export), ConvertedAttention (the base of the mixers
// that distillation builds from a teacher SoftmaxAttention: the teacher's q/k/v/o
// projections under their own names, each able to take an adapter), and the model-level
// helpers: add adapters by projection name, merge them, freeze and list what trains.
// reference: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022;
// reference: huggingface/peft src/peft/tuners/lora/layer.py (A kaiming-uniform(a=√5), B zeros)
#pragma once
#include <functional>
#include <string>
#include <vector>
#include "layers/attention.h"
#include "layers/model.h"

namespace skein {

struct LoRAConfig {
  int64_t rank = 8;
  double alpha = 16.0;     // the update is scaled by alpha / rank
  double dropout = 0.0;    // on the adapter's input only
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  uint64_t seed = 1234;    // A's init and the dropout masks
};

// y = x Wᵀ (+ b) + (alpha / r) · dropout(x) Aᵀ Bᵀ. Without an adapter, a plain linear map.
class LoRALinear : public Module {
 public:
  // weight: [out, in], bias: [out] or undefined; registered as "weight" / "bias" (the
  // storage is shared with the tensors given, so no copy is made).
  LoRALinear(const Tensor& weight, const Tensor& bias);
  // Registers lora_A [r, in] ~ U(-1/√in, 1/√in) and lora_B [out, r] = 0 (the output is
  // unchanged until B trains) and freezes weight and bias (requires_grad off).
  void add_adapter(int64_t rank, double alpha, double dropout, uint64_t seed);
  bool has_adapter() const { return lora_A.defined(); }
  Tensor forward(const Tensor& x) const;  // x: [..., in] -> [..., out]
  // A plain LoRALinear with weight W + (alpha / r) B A (and the same bias): what export writes.
  std::shared_ptr<LoRALinear> merged() const;

  Tensor weight, bias;     // [out, in], [out]
  Tensor lora_A, lora_B;   // [r, in], [out, r]; undefined without an adapter
  double scaling = 0.0, dropout_p = 0.0;

 private:
  mutable Generator dropout_gen_;
};

// A mixer converted from a teacher SoftmaxAttention. Its q_proj / k_proj / v_proj / o_proj
// children hold the teacher's tensors under the teacher's names (blocks.i.mixer.q_proj.weight),
// so a converted layer's parameters are the teacher's plus whatever the subclass adds.
class ConvertedAttention : public Mixer {
 public:
  explicit ConvertedAttention(const SoftmaxAttention& teacher);
  // The projection slot called `name` (q_proj, k_proj, v_proj, o_proj); throws naming the
  // valid names otherwise.
  std::shared_ptr<LoRALinear>& projection(const std::string& name);
  // Replaces every adapted projection by its merged form (the adapter parameters go away).
  void merge_adapters();

  std::shared_ptr<LoRALinear> q_proj, k_proj, v_proj, o_proj;
  int64_t n_heads, n_kv_heads, head_dim;
  ModelConfig rope_cfg;  // the teacher's: its rope_* fields set the frequencies

 protected:
  // Grouped-query heads repeated to the query heads: [B, Hkv, T, D] -> [B, H, T, D].
  Tensor repeat_kv(const Tensor& x) const;
};

// Swaps the softmax mixers of `model` chosen by `pattern` for make(teacher mixer, layer):
// "" converts every S layer; otherwise one letter a layer, repeated to n_layers like
// model.layer_pattern: L converts the layer (it must be softmax attention), S keeps it.
// Returns the converted layers' indices; errors name the layer and its kind.
using ConvertFn = std::function<std::shared_ptr<ConvertedAttention>(const SoftmaxAttention&, int64_t layer)>;
std::vector<int64_t> convert_attention_layers(HybridLM& model, const std::string& pattern, const ConvertFn& make);

// Adds an adapter to each projection named in cfg.targets of every converted layer of
// `model`; returns how many were added. Errors name an unknown target or a model without
// converted layers.
int64_t apply_lora(HybridLM& model, const LoRAConfig& cfg);
// Merges every adapter of `model` into its base weight (logits unchanged up to rounding).
void merge_lora(HybridLM& model);

// requires_grad of every parameter of m (freezing a whole model, or thawing a part of it).
void set_trainable(const Module& m, bool on);
// The parameters of m that require grad (what an optimizer should get), in order.
NamedTensors trainable_parameters(const Module& m);

}  // namespace skein
