// model.h — Block (pre-norm: x + mixer(norm(x)); x + mlp(norm(x))) and HybridLM, built from
// the layer-pattern string (L linear attention, S softmax attention, M MoM), with a final
// norm and a tied or untied LM head; loss = mean cross-entropy over non-ignored tokens
// (+ the MoM auxiliary loss).
// Tensor parallelism: built with a ModelParallel of tp_size > 1, the model holds rank
// tp_rank's shard of exactly the one-process model's parameters (see layers/basic.h); the
// embedding and LM head are vocabulary-parallel and loss() uses par->vocab_cross_entropy,
// so loss and gradients equal the one-process run; forward() gathers the whole logits on
// every tp rank (par->tp_gather_last), so generation runs on the tp ranks in lockstep.
#pragma once
#include <memory>
#include <vector>
#include "layers/basic.h"
#include "layers/config.h"
#include "layers/mixer.h"

namespace skein {

// Forward matrix-multiply FLOPs per token as ../shared/BENCHMARK.md counts them (2 per
// multiply-add; a training step is 3x this) for sequence length T.
double model_flops_per_token(const ModelConfig& cfg, int64_t T);

// Activation recomputation in training (train.recompute; reference: Korthikanti et al.,
// "Reducing Activation Recomputation in Large Transformer Models", 2022):
//  none: every block keeps its activations;
//  mlp:  each block keeps the input of its MLP half and re-runs norm2 + SwiGLU in backward;
//  full: each block keeps only its input and re-runs the whole block in backward. Blocks
//        whose mixer is neither LinearAttention nor SoftmaxAttention (MoM: its aux-loss
//        statistics must keep their graph; converted students: LoRA dropout) fall back to mlp.
// The MLP half is re-run in chunks of rows tokens (layers/recompute.h: its [tokens, hidden]
// intermediates exist one chunk at a time). Gradients equal those without recomputation;
// generation (caches) never recomputes.
enum class Recompute { none, mlp, full };
// "none" | "mlp" | "full"; throws naming the valid values (key names the config key).
Recompute parse_recompute(const std::string& name, const std::string& key = "train.recompute");

class Block : public Module {
 public:
  // par: the model's split over ranks (null: one process); must outlive the block.
  Block(const ModelConfig& cfg, int64_t layer, Generator& gen, const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& x, MixerCache* cache);  // x: [B, T, d]
 private:
  Tensor mixer_half(const Tensor& x, MixerCache* cache);  // x + mixer(norm1(x)); x: [B, T, d]
  Tensor mlp_half(const Tensor& h);                       // h + mlp(norm2(h)); h: [B, T, d]
 public:
  char kind;
  Recompute recompute = Recompute::none;
  int64_t recompute_rows = 2048;  // tokens per chunk of the MLP half's re-run
  std::shared_ptr<RMSNorm> norm1, norm2;
  std::shared_ptr<Mixer> mixer;
  std::shared_ptr<SwiGLU> mlp;
};

struct LossParts {
  Tensor total;   // lm + aux_scale * aux (what backward runs on)
  Tensor lm;      // mean cross-entropy
  Tensor aux;     // MoM load-balancing term (undefined without M layers)
};

class HybridLM : public Module {
 public:
  // par: how the model is split over ranks (null: one process); the model keeps it alive.
  explicit HybridLM(const ModelConfig& cfg, std::shared_ptr<const ModelParallel> par = nullptr);
  // ids: [B, T] -> logits [B, T, V]. caches: one per layer (generation; each holds this tp
  // rank's heads) or null. With tp_size > 1 every tp rank calls it (collectives inside) and
  // gets the same whole logits: the vocabulary shards gathered, the padding columns dropped.
  // With sp_size > 1 and no caches, ids are this rank's slice of each sequence (the logits of
  // its tokens only).
  Tensor forward(const Tensor& ids, std::vector<MixerCache>* caches = nullptr);
  // targets: [B, T] (ignore_index skipped). The same value on every tp rank.
  LossParts loss(const Tensor& ids, const Tensor& targets, int64_t ignore_index = -100);
  // Continuous-input models (cfg.input_dim > 0): inputs [B, 2n, input_dim] -> predictions
  // [B, n] read at the even (query) positions; loss = mean squared error against targets [B, n].
  Tensor predict(const Tensor& inputs);
  LossParts regression_loss(const Tensor& inputs, const Tensor& targets);

  ModelConfig cfg;
  std::shared_ptr<Embedding> embed;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<RMSNorm> norm;
  std::shared_ptr<Linear> lm_head;  // null when tied to embed
  std::shared_ptr<Linear> read_in, read_out;  // continuous-input models only

  const ModelParallel& par() const { return *par_; }
  // Sets every block's recomputation mode (see Recompute) and MLP chunk (tokens).
  void set_recompute(Recompute mode, int64_t rows = 2048);
  // loss() computes the LM head and cross-entropy with lm_head_cross_entropy (core/ops.h),
  // never holding the [N, V] logits; exact. Under tensor parallelism (vocabulary-parallel
  // head) loss() keeps the unfused path (par->vocab_cross_entropy) whatever this says.
  bool fused_head = false;

 private:
  Tensor hidden(const Tensor& ids, std::vector<MixerCache>* caches);
  // This tp rank's columns of the (padded) vocabulary's logits: [B, T, Vp / tp].
  Tensor logits_shard(const Tensor& ids, std::vector<MixerCache>* caches);
  std::shared_ptr<const ModelParallel> par_;
};

}  // namespace skein
