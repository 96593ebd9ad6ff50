// linear_attention.cpp — the L layer (see linear_attention.h).
// reference: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
// Training", 2024 (GLA gates); Sun et al., "Retentive Network", 2023 (fixed decay);
// Yang et al., "Gated Delta Networks", 2025 (gated delta parameterisation).
#include "layers/linear_attention.h"
#include <cmath>
#include "layers/attention.h"
#include "layers/short_conv.h"

namespace skein {

Tensor retnet_log_decay(int64_t n_heads) {
  Tensor g = Tensor::empty({n_heads}, DType::f32);
  for (int64_t h = 0; h < n_heads; ++h)
    g.data<float>()[h] = static_cast<float>(std::log1p(-std::pow(2.0, -5.0 - static_cast<double>(h))));
  return g;
}

std::pair<Tensor, Tensor> gated_delta_init(int64_t n_heads, Generator& gen, DType dtype) {
  // A ~ U(0, 16), dt ~ log-uniform [1e-3, 0.1], dt_bias = softplus^-1(dt)  (GDN / MoM init)
  const int64_t H = n_heads;
  Tensor a = uniform({H}, gen, 1e-4, 16.0), u = uniform({H}, gen, 0.0, 1.0);
  Tensor alog = Tensor::empty({H}), dtb = Tensor::empty({H});
  for (int64_t h = 0; h < H; ++h) {
    alog.data<float>()[h] = std::log(a.data<float>()[h]);
    double dt = std::exp(std::log(1e-3) + u.data<float>()[h] * (std::log(0.1) - std::log(1e-3)));
    dtb.data<float>()[h] = static_cast<float>(dt + std::log(-std::expm1(-dt)));
  }
  return {alog.to(dtype), dtb.to(dtype)};
}

LinearAttention::LinearAttention(const ModelConfig& cfg, const std::string& variant_,
                                 Generator& gen, double out_std, const ModelParallel* par)
    : Mixer(par), variant(variant_), feature_map(cfg.feature_map), n_heads(cfg.n_heads), head_dim(cfg.head_dim()),
      chunk(cfg.chunk_size), scale(cfg.linear_scale), gate_normalizer(cfg.gla_gate_normalizer),
      output_norm(cfg.linear_output_norm), output_gate(cfg.linear_output_gate),
      short_conv(uses_short_conv(cfg, variant_, false)) {
  const bool delta = variant == "delta" || variant == "gated_delta";
  SKEIN_CHECK(variant == "plain" || variant == "decay" || variant == "gla" || delta,
              "model.linear_variant: unknown variant '", variant, "' (plain, decay, gla, delta, gated_delta)");
  SKEIN_CHECK(feature_map == "identity" || feature_map == "elu1" || feature_map == "relu" ||
              feature_map == "hedgehog", "model.feature_map: unknown '", feature_map,
              "' (identity, elu1, relu, hedgehog)");
  SKEIN_CHECK(!(feature_map == "hedgehog" && (variant == "gla" || delta)), "model.feature_map: hedgehog "
              "doubles the key dim and works with the plain and decay variants only, not '", variant, "'");
  const int64_t d = cfg.d_model, hd = head_dim, H = cfg.n_heads;
  const ModelParallel* p = &this->par();
  const int tp_rank = p->tp_rank(), tp = p->tp_size();
  SKEIN_CHECK(H % tp == 0, "LinearAttention: model.n_heads (", H, ") must be divisible by tp_size (", tp, ")");
  n_heads = H / tp;
  auto column = [&](int64_t in, int64_t out, bool bias) {
    return std::make_shared<Linear>(in, out, gen, cfg.init_std, bias, cfg.dtype, TpMode::column, p);
  };
  // Per-head tensors are built for all H heads (the same random draws as one process); this
  // rank keeps its heads' entries.
  const TpSplit head_split{0, H}, feature_split{0, d};
  auto mine = [&](const Tensor& full, TpSplit split) { return tp_shard(full, split, tp_rank, tp); };
  q_proj = register_module("q_proj", column(d, d, false));
  k_proj = register_module("k_proj", column(d, d, false));
  v_proj = register_module("v_proj", column(d, d, false));
  o_proj = register_module("o_proj", std::make_shared<Linear>(d, d, gen, out_std, false, cfg.dtype, TpMode::row, p));
  if (output_gate) g_proj = register_module("g_proj", column(d, d, false));
  if (output_norm) o_norm = register_parameter("o_norm", mine(ones({d}, cfg.dtype), feature_split), feature_split);
  if (feature_map == "hedgehog") {  // per-head Linear(hd, hd) initialised to the identity (fla)
    Tensor eye = zeros({H, hd, hd}, DType::f64);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < hd; ++i) eye.data<double>()[(h * hd + i) * hd + i] = 1.0;
    eye = eye.to(cfg.dtype);
    q_fmap = register_parameter("q_fmap", mine(eye, head_split), head_split);
    k_fmap = register_parameter("k_fmap", mine(eye.clone(), head_split), head_split);
  }
  if (variant == "decay") {
    log_decay = mine(retnet_log_decay(H).to(cfg.dtype), head_split);  // global head index
    register_buffer("log_decay", log_decay);
  }
  if (variant == "gla") {
    gk_proj_a = register_module("gk_proj_a", std::make_shared<Linear>(d, cfg.gla_gate_rank, gen, cfg.init_std, false, cfg.dtype));
    gk_proj_b = register_module("gk_proj_b", column(cfg.gla_gate_rank, d, true));
  }
  if (delta) b_proj = register_module("b_proj", column(d, H, false));
  if (variant == "gated_delta") {
    a_proj = register_module("a_proj", column(d, H, false));
    auto [alog, dtb] = gated_delta_init(H, gen, cfg.dtype);
    A_log = register_parameter("A_log", mine(alog, head_split), head_split);
    dt_bias = register_parameter("dt_bias", mine(dtb, head_split), head_split);
  }
  if (short_conv) {
    q_conv = register_parameter("q_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
    k_conv = register_parameter("k_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
    v_conv = register_parameter("v_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
  }
}

Tensor LinearAttention::feature(const Tensor& x, const Tensor& fmap) const {
  // delta: SiLU (the short conv's when there is one) and L2 norm (fla GatedDeltaNet)
  if (variant == "delta" || variant == "gated_delta") return l2_normalize(short_conv ? x : silu(x));
  if (feature_map == "elu1") return add(elu(x), 1.0);
  if (feature_map == "relu") return relu(x);
  if (feature_map == "hedgehog") {  // phi(x) = softmax([y, -y]) with y = 2 x W_h  (fla HedgehogFeatureMap)
    Tensor w = fmap.reshape({1, n_heads, head_dim, head_dim}).expand({x.size(0), n_heads, head_dim, head_dim});
    Tensor y = mul(matmul(x, w), 2.0);
    return softmax(cat({y, neg(y)}, -1), -1);
  }
  return x;
}

Tensor LinearAttention::output(const Tensor& o, const Tensor& x) const {
  // o: [B, H, T, dv] -> per-head RMSNorm over dv -> [B, T, d] * gain (* silu gate) -> o_proj
  Tensor y = o.permute({0, 2, 1, 3});  // [B, T, H, dv]
  if (output_norm) y = rms_norm(y, ones({y.size(-1)}, y.dtype(), y.device()), 1e-6);
  y = y.reshape({x.size(0), x.size(1), -1});
  if (output_norm) y = mul(y, o_norm);
  if (output_gate) y = mul(y, silu(g_proj->forward(x)));
  return o_proj->forward(y);
}

Tensor LinearAttention::forward(const Tensor& x, MixerCache* cache) {
  const int64_t T = x.size(1), H = n_heads;
  Tensor xc = par().tp_copy(x);  // Megatron f: the input gradient is summed over tp ranks
  std::vector<Tensor> qkv = {q_proj->forward(xc), k_proj->forward(xc), v_proj->forward(xc)};  // [B, T, H*hd]
  if (short_conv) qkv = run_short_convs(par(), qkv, {q_conv, k_conv, v_conv}, cache ? &cache->conv : nullptr);
  Tensor q = feature(split_heads(qkv[0], H), q_fmap);
  Tensor k = feature(split_heads(qkv[1], H), k_fmap);
  Tensor v = split_heads(qkv[2], H);
  // Generation continues from the cache with the core ops; training (no cache) goes through
  // par() so that a sequence split over sp ranks gets its state from the earlier ranks.
  Tensor init = cache && !cache->states.empty() ? cache->states[0] : Tensor();
  LinearAttentionResult r;
  if (variant == "delta" || variant == "gated_delta") {
    Tensor beta = sigmoid(b_proj->forward(xc)).permute({0, 2, 1});  // [B, H, T]
    Tensor log_alpha;
    if (variant == "gated_delta")  // -exp(A_log) * softplus(a_proj(x) + dt_bias)
      log_alpha = mul(neg(exp(A_log)), softplus(add(a_proj->forward(xc), dt_bias))).permute({0, 2, 1});
    r = cache ? delta_rule(q, k, v, beta, log_alpha, init, scale, chunk)
              : par().delta_rule(q, k, v, beta, log_alpha, Tensor(), scale, chunk);
  } else {
    Tensor gate = log_decay;
    if (variant == "gla") {  // logsigmoid(low-rank projection) / normaliser, per key dim
      // gk_proj_a is replicated: its output's gradient is summed over the ranks' gk_proj_b.
      Tensor low_rank = par().tp_copy(gk_proj_a->forward(x));
      gate = split_heads(mul(log_sigmoid(gk_proj_b->forward(low_rank)), 1.0 / gate_normalizer), H);
    }
    r = cache ? linear_attention(q, k, v, gate, init, scale, chunk)
              : par().linear_attention(q, k, v, gate, Tensor(), scale, chunk);
  }
  if (cache) {
    cache->states = {r.final_state.detach()};
    cache->pos += T;
  }
  return output(r.out, xc);
}

}  // namespace skein
