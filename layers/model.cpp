// model.cpp — ModelConfig::validate, Block and HybridLM (see model.h).
#include "layers/model.h"
#include <cmath>
#include "layers/attention.h"
#include "layers/linear_attention.h"
#include "layers/mom.h"
#include "layers/recompute.h"
#include "layers/rope.h"

namespace skein {

void ModelConfig::validate() const {
  SKEIN_CHECK(vocab_size >= 2 || input_dim > 0, "model.vocab_size must be >= 2, got ", vocab_size);
  SKEIN_CHECK(input_dim >= 0, "model.input_dim must be >= 0, got ", input_dim);
  SKEIN_CHECK(d_model >= 1 && n_heads >= 1 && d_model % n_heads == 0, "model.d_model (", d_model,
              ") must be a positive multiple of model.n_heads (", n_heads, ")");
  SKEIN_CHECK(n_heads % kv_heads() == 0, "model.n_kv_heads (", kv_heads(), ") must divide model.n_heads (",
              n_heads, ")");
  SKEIN_CHECK(n_layers >= 1, "model.n_layers must be >= 1, got ", n_layers);
  SKEIN_CHECK(mlp_hidden >= 1, "model.mlp_hidden must be >= 1, got ", mlp_hidden);
  SKEIN_CHECK(!layer_pattern.empty() && layer_pattern.find_first_not_of("LSM") == std::string::npos,
              "model.layer_pattern: '", layer_pattern, "' must be made of the letters L, S and M");
  SKEIN_CHECK(chunk_size >= 1, "model.chunk_size must be >= 1, got ", chunk_size);
  SKEIN_CHECK(window >= 0, "model.window must be >= 0, got ", window);
  SKEIN_CHECK(head_dim() % 2 == 0 || layer_pattern.find('S') == std::string::npos,
              "model: softmax layers need an even head dim for RoPE, got ", head_dim());
  validate_rope(*this);
  SKEIN_CHECK(weight_dtype != DType::bf16 || (dtype == DType::f32 &&
                                        layer_pattern.find_first_not_of('S') == std::string::npos && input_dim == 0),
              "model.weight_dtype ", dtype_name(weight_dtype), ": bf16 weight storage is for f32 softmax-only (S) "
              "language models (model.dtype ", dtype_name(dtype), ", layer_pattern ", layer_pattern, ")");
}

Block::Block(const ModelConfig& cfg, int64_t layer, Generator& gen, const ModelParallel* par)
    : kind(cfg.layer_kind(layer)) {
  const double out_std = cfg.scaled_residual_init ? cfg.init_std / std::sqrt(2.0 * cfg.n_layers) : cfg.init_std;
  norm1 = register_module("norm1", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, cfg.dtype));
  if (kind == 'S') mixer = std::make_shared<SoftmaxAttention>(cfg, gen, out_std, par);
  else if (kind == 'M') mixer = std::make_shared<MoM>(cfg, gen, out_std, par);
  else mixer = std::make_shared<LinearAttention>(cfg, cfg.variant_of(layer), gen, out_std, par);
  register_module("mixer", mixer);
  norm2 = register_module("norm2", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, cfg.dtype));
  // model.weight_dtype bf16: the MLP's (and S layers') weights are drawn and stored bf16 (frozen)
  const DType wdt = cfg.weight_dtype == DType::bf16 ? DType::bf16 : cfg.dtype;
  mlp = register_module("mlp", std::make_shared<SwiGLU>(cfg.d_model, cfg.mlp_hidden, gen, cfg.init_std, out_std, wdt, par));
}

Recompute parse_recompute(const std::string& name, const std::string& key) {
  if (name == "none") return Recompute::none;
  if (name == "mlp") return Recompute::mlp;
  if (name == "full") return Recompute::full;
  throw Error(detail::concat(key, ": unknown '", name, "' (none, mlp, full)"));
}

Tensor Block::mixer_half(const Tensor& x, MixerCache* cache) { return add(x, mixer->forward(norm1->forward(x), cache)); }

Tensor Block::mlp_half(const Tensor& h) { return add(h, mlp->forward(norm2->forward(h))); }

Tensor Block::forward(const Tensor& x, MixerCache* cache) {
  const bool training = cache == nullptr && grad_mode_enabled();
  if (!training || recompute == Recompute::none) return mlp_half(mixer_half(x, cache));
  // The MLP half acts on each token alone: it is re-run in chunks of tokens, so its
  // [tokens, hidden] intermediates and their gradients exist for one chunk at a time.
  // value_unused: inside the whole-block re-run (grad on) the block output only carries the
  // graph to its checkpoint's backward, so the MLP half's forward values are not computed.
  auto mlp_rows = [this](const Tensor& h, bool value_unused) {
    return checkpoint_rows([this](const Tensor& hc) { return mlp_half(hc); }, h, recompute_rows, value_unused);
  };
  const bool whole = recompute == Recompute::full && (dynamic_cast<const LinearAttention*>(mixer.get()) ||
                                                      dynamic_cast<const SoftmaxAttention*>(mixer.get()));
  if (!whole) return mlp_rows(mixer_half(x, nullptr), false);
  return checkpoint(
      [this, mlp_rows](const std::vector<Tensor>& in) {
        return mlp_rows(mixer_half(in[0], nullptr), /*value_unused=*/grad_mode_enabled());
      },
      {x});
}

double model_flops_per_token(const ModelConfig& c, int64_t T) {
  const double d = static_cast<double>(c.d_model), h = static_cast<double>(c.mlp_hidden);
  // the LM head, or a continuous-input model's read-in (input_dim -> d) and read-out (d -> 1)
  double f = c.input_dim > 0 ? 2 * d * static_cast<double>(c.input_dim + 1) : 2 * d * static_cast<double>(c.vocab_size);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    f += 2 * (4 * d * d + 3 * d * h);
    if (c.layer_kind(i) == 'S') f += 4 * d * (static_cast<double>(T) + 1) / 2;
    else f += 4 * d * (static_cast<double>(c.chunk_size) + 1) / 2 + 4 * d * static_cast<double>(c.head_dim());
  }
  return f;
}

HybridLM::HybridLM(const ModelConfig& c, std::shared_ptr<const ModelParallel> par)
    : cfg(c), par_(par ? std::move(par) : std::make_shared<const ModelParallel>()) {
  cfg.validate();
  const ModelParallel* p = par_.get();
  Generator gen(cfg.seed);
  if (cfg.input_dim > 0)
    read_in = register_module("read_in", std::make_shared<Linear>(cfg.input_dim, cfg.d_model, gen, cfg.init_std, false, cfg.dtype));
  else
    embed = register_module("embed", std::make_shared<Embedding>(cfg.vocab_size, cfg.d_model, gen, cfg.init_std, cfg.dtype, p));
  for (int64_t i = 0; i < cfg.n_layers; ++i)
    blocks.push_back(register_module("blocks." + std::to_string(i), std::make_shared<Block>(cfg, i, gen, p)));
  norm = register_module("norm", std::make_shared<RMSNorm>(cfg.d_model, cfg.norm_eps, cfg.dtype));
  if (cfg.input_dim > 0)
    read_out = register_module("read_out", std::make_shared<Linear>(cfg.d_model, 1, gen, cfg.init_std, false, cfg.dtype));
  else if (!cfg.tie_embeddings)  // vocabulary-parallel: this rank's rows of the padded vocabulary
    lm_head = register_module("lm_head", std::make_shared<Linear>(cfg.d_model, cfg.vocab_size, gen, cfg.init_std,
                                                                  false,
                                                                  cfg.weight_dtype == DType::bf16 ? DType::bf16 : cfg.dtype,
                                                                  TpMode::column, p));
}

void HybridLM::set_recompute(Recompute mode, int64_t rows) {
  SKEIN_CHECK(rows >= 1, "HybridLM::set_recompute: rows must be >= 1, got ", rows);
  for (auto& b : blocks) b->recompute = mode, b->recompute_rows = rows;
}

Tensor HybridLM::hidden(const Tensor& ids, std::vector<MixerCache>* caches) {
  if (caches) caches->resize(blocks.size());
  Tensor x;
  if (read_in) {
    SKEIN_CHECK(ids.dim() == 3 && ids.size(2) == cfg.input_dim, "HybridLM: inputs must be [B, T, ",
                cfg.input_dim, "] for model.input_dim ", cfg.input_dim, ", got ", shape_str(ids.shape()));
    x = read_in->forward(ids);
  } else {
    SKEIN_CHECK(ids.dim() == 2, "HybridLM: ids must be [B, T], got ", shape_str(ids.shape()));
    x = embed->forward(ids);
  }
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward(x, caches ? &(*caches)[i] : nullptr);
  return norm->forward(x);
}

Tensor HybridLM::logits_shard(const Tensor& ids, std::vector<MixerCache>* caches) {
  Tensor h = par_->tp_copy(hidden(ids, caches));  // Megatron f before the vocabulary-parallel head
  return lm_head ? lm_head->forward(h) : matmul(h, embed->weight.transpose(0, 1));
}

Tensor HybridLM::forward(const Tensor& ids, std::vector<MixerCache>* caches) {
  if (read_out) return read_out->forward(hidden(ids, caches));
  Tensor logits = par_->tp_gather_last(logits_shard(ids, caches));  // [B, T, Vp]: every rank's columns
  return logits.size(2) == cfg.vocab_size ? logits : logits.narrow(2, 0, cfg.vocab_size);
}

Tensor HybridLM::predict(const Tensor& inputs) {
  SKEIN_CHECK(read_out, "HybridLM::predict: the model has no read-out (model.input_dim is 0)");
  SKEIN_CHECK(inputs.dim() == 3 && inputs.size(1) % 2 == 0, "HybridLM::predict: inputs must be [B, 2n, ",
              cfg.input_dim, "], got ", shape_str(inputs.shape()));
  const int64_t B = inputs.size(0), n = inputs.size(1) / 2;
  Tensor y = read_out->forward(hidden(inputs, nullptr));  // [B, 2n, 1]
  return y.reshape({B, n, 2}).narrow(2, 0, 1).reshape({B, n});
}

LossParts HybridLM::regression_loss(const Tensor& inputs, const Tensor& targets) {
  Tensor pred = predict(inputs);
  SKEIN_CHECK(targets.shape() == pred.shape(), "HybridLM::regression_loss: targets ", shape_str(targets.shape()),
              " do not match predictions ", shape_str(pred.shape()));
  Tensor diff = sub(pred, targets);
  LossParts out;
  out.lm = mean(mul(diff, diff));
  out.total = out.lm;
  return out;
}

LossParts HybridLM::loss(const Tensor& ids, const Tensor& targets, int64_t ignore_index) {
  if (read_out) return regression_loss(ids, targets);
  SKEIN_CHECK(targets.shape() == ids.shape(), "HybridLM::loss: targets ", shape_str(targets.shape()),
              " do not match ids ", shape_str(ids.shape()));
  LossParts out;
  if (fused_head && par_->tp_size() == 1) {
    Tensor h = hidden(ids, nullptr);  // [B, T, d]
    out.lm = lm_head_cross_entropy(h.reshape({-1, cfg.d_model}), lm_head ? lm_head->compute_weight(h.dtype()) : embed->weight,
                                   targets.reshape({-1}), ignore_index);
  } else {
    Tensor logits = logits_shard(ids, nullptr);  // [B, T, V_shard]
    const int64_t shard = logits.size(2);
    out.lm = par_->vocab_cross_entropy(logits.reshape({-1, shard}), targets.reshape({-1}), par_->tp_rank() * shard,
                                       cfg.vocab_size, ignore_index);
  }
  out.total = out.lm;
  std::vector<const MoM*> moms;
  for (auto& b : blocks)
    if (auto* m = dynamic_cast<const MoM*>(b->mixer.get())) moms.push_back(m);
  if (!moms.empty()) {
    out.aux = mom_aux_loss(moms);
    out.total = add(out.lm, mul(out.aux, cfg.mom_aux_loss_scale));
  }
  return out;
}

}  // namespace skein
