// attention.cpp — SoftmaxAttention (see attention.h).
#include "layers/attention.h"
#include <cmath>

namespace skein {

Tensor split_heads(const Tensor& x, int64_t heads) {
  const int64_t B = x.size(0), T = x.size(1), hd = x.size(2) / heads;
  return x.reshape({B, T, heads, hd}).permute({0, 2, 1, 3});
}

Tensor merge_heads(const Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), hd = x.size(3);
  return x.permute({0, 2, 1, 3}).reshape({B, T, H * hd});
}

SoftmaxAttention::SoftmaxAttention(const ModelConfig& cfg, Generator& gen, double out_std)
    : n_heads(cfg.n_heads), n_kv_heads(cfg.kv_heads()), head_dim(cfg.head_dim()), window(cfg.window),
      rope_theta(cfg.rope_theta) {
  const int64_t d = cfg.d_model;
  q_proj = register_module("q_proj", std::make_shared<Linear>(d, n_heads * head_dim, gen, cfg.init_std, false, cfg.dtype));
  k_proj = register_module("k_proj", std::make_shared<Linear>(d, n_kv_heads * head_dim, gen, cfg.init_std, false, cfg.dtype));
  v_proj = register_module("v_proj", std::make_shared<Linear>(d, n_kv_heads * head_dim, gen, cfg.init_std, false, cfg.dtype));
  o_proj = register_module("o_proj", std::make_shared<Linear>(n_heads * head_dim, d, gen, out_std, false, cfg.dtype));
}

Tensor SoftmaxAttention::forward(const Tensor& x, MixerCache* cache) {
  const int64_t pos = cache ? cache->pos : 0;
  Tensor q = rope(split_heads(q_proj->forward(x), n_heads), rope_theta, pos);
  Tensor k = rope(split_heads(k_proj->forward(x), n_kv_heads), rope_theta, pos);
  Tensor v = split_heads(v_proj->forward(x), n_kv_heads);
  if (cache) {
    if (cache->k.defined()) {
      k = cat({cache->k, k}, 2);
      v = cat({cache->v, v}, 2);
    }
    cache->k = k.detach();
    cache->v = v.detach();
    cache->pos += x.size(1);
  }
  Tensor o = softmax_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(head_dim)), true, window, pos);
  return o_proj->forward(merge_heads(o));
}

}  // namespace skein
