// attention.cpp — SoftmaxAttention (see attention.h).
#include "layers/attention.h"
#include <cmath>
#include "layers/rope.h"

namespace skein {

Tensor split_heads(const Tensor& x, int64_t heads) {
  const int64_t B = x.size(0), T = x.size(1), hd = x.size(2) / heads;
  return x.reshape({B, T, heads, hd}).permute({0, 2, 1, 3});
}

Tensor merge_heads(const Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), hd = x.size(3);
  return x.permute({0, 2, 1, 3}).reshape({B, T, H * hd});
}

RopeFreqs layer_rope_freqs(const ModelConfig& rope_cfg, int64_t head_dim, int64_t seq_len) {
  return rope_freqs(rope_cfg, head_dim, seq_len);
}

SoftmaxAttention::SoftmaxAttention(const ModelConfig& cfg, Generator& gen, double out_std, const ModelParallel* par)
    : Mixer(par), head_dim(cfg.head_dim()), window(cfg.window), rope_cfg(cfg) {
  const int64_t d = cfg.d_model, H = cfg.n_heads, Hkv = cfg.kv_heads(), tp = this->par().tp_size();
  SKEIN_CHECK(H % tp == 0, "SoftmaxAttention: model.n_heads (", H, ") must be divisible by tp_size (", tp, ")");
  SKEIN_CHECK(Hkv % tp == 0, "SoftmaxAttention: the kv heads (model.n_kv_heads ", Hkv,
              ") must be divisible by tp_size (", tp, ")");
  n_heads = H / tp;
  n_kv_heads = Hkv / tp;
  validate_rope(cfg);
  const ModelParallel* p = &this->par();
  const bool b = cfg.qkv_bias;
  q_proj = register_module("q_proj", std::make_shared<Linear>(d, H * head_dim, gen, cfg.init_std, b, cfg.dtype, TpMode::column, p));
  k_proj = register_module("k_proj", std::make_shared<Linear>(d, Hkv * head_dim, gen, cfg.init_std, b, cfg.dtype, TpMode::column, p));
  v_proj = register_module("v_proj", std::make_shared<Linear>(d, Hkv * head_dim, gen, cfg.init_std, b, cfg.dtype, TpMode::column, p));
  o_proj = register_module("o_proj", std::make_shared<Linear>(H * head_dim, d, gen, out_std, false, cfg.dtype, TpMode::row, p));
}

Tensor SoftmaxAttention::forward(const Tensor& x, MixerCache* cache) {
  // Training (no cache): this rank's tokens start at the sequence-parallel offset.
  const int64_t pos = cache ? cache->pos : par().seq_offset(x.size(1));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  // The sequence ends at pos + T (generation), or after all sp ranks' tokens (training).
  const int64_t seq_len = cache ? pos + x.size(1) : par().sp_size() * x.size(1);
  const RopeFreqs freqs = layer_rope_freqs(rope_cfg, head_dim, seq_len);
  Tensor xc = par().tp_copy(x);  // Megatron f: the input gradient is summed over tp ranks
  Tensor q = rope(split_heads(q_proj->forward(xc), n_heads), freqs, pos);
  Tensor k = rope(split_heads(k_proj->forward(xc), n_kv_heads), freqs, pos);
  Tensor v = split_heads(v_proj->forward(xc), n_kv_heads);
  Tensor o;
  if (cache) {
    if (cache->k.defined()) {
      k = cat({cache->k, k}, 2);
      v = cat({cache->v, v}, 2);
    }
    cache->k = k.detach();
    cache->v = v.detach();
    cache->pos += x.size(1);
    o = softmax_attention(q, k, v, scale, true, window, pos);
  } else {
    o = par().causal_attention(q, k, v, scale, window);
  }
  return o_proj->forward(merge_heads(o));  // row-parallel: the partial outputs summed over tp
}

}  // namespace skein
