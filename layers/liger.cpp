// liger.cpp — LigerAttention (see liger.h).
#include "layers/liger.h"
#include <cmath>

namespace skein {

Tensor liger_log_gates(const Tensor& k, double normalizer) { return mul(log_sigmoid(k), 1.0 / normalizer); }

LigerAttention::LigerAttention(const SoftmaxAttention& teacher, const LigerOptions& opt)
    : ConvertedAttention(teacher), options(opt) {
  SKEIN_CHECK(opt.window >= 1, "Liger: window must be >= 1, got ", opt.window);
  SKEIN_CHECK(opt.mix >= 0 && opt.mix <= 1, "Liger: mix must lie in [0, 1], got ", opt.mix);
  SKEIN_CHECK(opt.gate_normalizer > 0, "Liger: gate_normalizer must be > 0, got ", opt.gate_normalizer);
  SKEIN_CHECK(opt.chunk >= 1, "Liger: chunk must be >= 1, got ", opt.chunk);
}

Tensor LigerAttention::log_gates(const Tensor& x) const {
  return repeat_kv(liger_log_gates(split_heads(k_proj->forward(x), n_kv_heads), options.gate_normalizer));
}

Tensor LigerAttention::forward(const Tensor& x, MixerCache* cache) {
  const int64_t pos = cache ? cache->pos : 0, T = x.size(1);
  Tensor q = split_heads(q_proj->forward(x), n_heads);     // [B, H, T, hd]
  Tensor k = split_heads(k_proj->forward(x), n_kv_heads);  // [B, Hkv, T, hd]
  Tensor v = split_heads(v_proj->forward(x), n_kv_heads);
  Tensor gate = repeat_kv(liger_log_gates(k, options.gate_normalizer));
  Tensor init = cache && !cache->states.empty() ? cache->states[0] : Tensor();
  LinearAttentionResult r = par().linear_attention(softmax(q, -1), softmax(repeat_kv(k), -1), repeat_kv(v), gate,
                                                   init, 1.0, options.chunk);
  Tensor o = r.out;
  if (options.attention) {
    const RopeFreqs freqs = layer_rope_freqs(rope_cfg, head_dim, pos + T);
    Tensor qr = rope(q, freqs, pos), kr = rope(k, freqs, pos), va = v;
    if (cache && cache->k.defined()) {
      kr = cat({cache->k, kr}, 2);
      va = cat({cache->v, va}, 2);
    }
    // the queries are the last T of the keys (default offset); the window needs window-1 earlier keys
    Tensor swa = softmax_attention(qr, kr, va, 1.0 / std::sqrt(static_cast<double>(head_dim)), true, options.window);
    o = add(mul(swa, options.mix), mul(o, 1.0 - options.mix));
    if (cache) {
      const int64_t keep = std::min(kr.size(2), options.window - 1);
      cache->k = keep > 0 ? kr.narrow(2, kr.size(2) - keep, keep).detach().contiguous() : Tensor();
      cache->v = keep > 0 ? va.narrow(2, va.size(2) - keep, keep).detach().contiguous() : Tensor();
    }
  }
  if (cache) {
    cache->states = {r.final_state.detach()};
    cache->pos += T;
  }
  return o_proj->forward(merge_heads(o));
}

std::vector<int64_t> convert_to_liger(HybridLM& model, const std::string& pattern, const LigerOptions& options) {
  return convert_attention_layers(model, pattern, [&](const SoftmaxAttention& teacher, int64_t) {
    return std::make_shared<LigerAttention>(teacher, options);
  });
}

}  // namespace skein
