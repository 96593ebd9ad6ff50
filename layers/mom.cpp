// mom.cpp — Mixture-of-Memories (see mom.h).
#include "layers/mom.h"
#include <algorithm>
#include <numeric>
#include "layers/attention.h"

namespace skein {

MemoryProjections::MemoryProjections(const ModelConfig& cfg, const std::string& variant, Generator& gen) {
  const int64_t d = cfg.d_model, H = cfg.n_heads;
  k_proj = register_module("k_proj", std::make_shared<Linear>(d, d, gen, cfg.init_std, false, cfg.dtype));
  v_proj = register_module("v_proj", std::make_shared<Linear>(d, d, gen, cfg.init_std, false, cfg.dtype));
  if (variant == "delta" || variant == "gated_delta")
    b_proj = register_module("b_proj", std::make_shared<Linear>(d, H, gen, cfg.init_std, false, cfg.dtype));
  if (variant == "gated_delta") a_proj = register_module("a_proj", std::make_shared<Linear>(d, H, gen, cfg.init_std, false, cfg.dtype));
}

MoM::MoM(const ModelConfig& cfg, Generator& gen, double out_std)
    : n_memories(cfg.mom_memories), topk(cfg.mom_topk), shared(cfg.mom_shared_memory), variant(cfg.mom_variant) {
  SKEIN_CHECK(variant == "gated_delta" || variant == "delta" || variant == "decay" || variant == "plain",
              "model.mom_variant: '", variant, "' is not supported by MoM (gated_delta, delta, decay, plain)");
  SKEIN_CHECK(n_memories >= 1 && topk >= 1 && topk <= n_memories, "model.mom_topk: need 1 <= topk (", topk,
              ") <= mom_memories (", n_memories, ")");
  router = register_module("router", std::make_shared<Linear>(cfg.d_model, n_memories, gen, cfg.init_std, false, cfg.dtype));
  // The shared parts live in a LinearAttention whose own k/v/b/a projections are unused, so
  // build it with the memory-less parts only: register just what MoM uses from it.
  ModelConfig c = cfg;
  c.feature_map = "identity";
  base = std::make_shared<LinearAttention>(c, variant, gen, out_std);
  register_module("q_proj", base->q_proj);
  register_module("o_proj", base->o_proj);
  if (base->g_proj) register_module("g_proj", base->g_proj);
  for (int64_t m = 0; m < n_memories; ++m)
    memories.push_back(register_module("memories." + std::to_string(m),
                                       std::make_shared<MemoryProjections>(cfg, variant, gen)));
  if (shared) shared_memory = register_module("shared", std::make_shared<MemoryProjections>(cfg, variant, gen));
  // Parameters of `base` that MoM uses become MoM's own (same handles in both).
  if (base->o_norm.defined()) base->o_norm = register_parameter("o_norm", base->o_norm);
  if (variant == "gated_delta") {
    base->A_log = register_parameter("A_log", base->A_log);
    base->dt_bias = register_parameter("dt_bias", base->dt_bias);
  }
}

Tensor MoM::run_memory(const MemoryProjections& mem, const Tensor& x_rows, const Tensor& q_rows, Tensor* state) {
  // x_rows, q_rows: [n, d] (one batch element's tokens of this memory, time order)
  const int64_t H = base->n_heads;
  Tensor x = x_rows.reshape({1, x_rows.size(0), -1});
  Tensor q = base->feature(split_heads(q_rows.reshape({1, q_rows.size(0), -1}), H), Tensor());
  Tensor k = base->feature(split_heads(mem.k_proj->forward(x), H), Tensor());
  Tensor v = split_heads(mem.v_proj->forward(x), H);
  LinearAttentionResult r;
  if (variant == "delta" || variant == "gated_delta") {
    Tensor beta = sigmoid(mem.b_proj->forward(x)).permute({0, 2, 1});
    Tensor log_alpha;
    if (variant == "gated_delta")
      log_alpha = mul(neg(exp(base->A_log)), softplus(add(mem.a_proj->forward(x), base->dt_bias))).permute({0, 2, 1});
    r = delta_rule(q, k, v, beta, log_alpha, *state, base->scale, base->chunk);
  } else {
    r = linear_attention(q, k, v, base->log_decay, *state, base->scale, base->chunk);
  }
  *state = r.final_state;
  return r.out.permute({0, 2, 1, 3}).reshape({x_rows.size(0), -1});  // [n, H*dv]
}

Tensor MoM::forward(const Tensor& x, MixerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), M = n_memories, K = topk, BT = B * T;
  // Router: probabilities, top-k (constants), renormalised weights (differentiable).
  Tensor probs = softmax(router->forward(x).reshape({BT, M}), -1);
  const std::vector<double> pv = probs.detach().to_vector();
  std::vector<double> onehot_v(K * BT * M, 0.0);  // onehot[s, r, m] = 1 when slot s of row r chose m
  std::vector<int64_t> choice(BT * K);
  last_counts.assign(M, 0.0);
  for (int64_t r = 0; r < BT; ++r) {
    std::vector<int64_t> order(M);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pv[r * M + a] > pv[r * M + b]; });
    for (int64_t s = 0; s < K; ++s) {
      choice[r * K + s] = order[s];
      onehot_v[(s * BT + r) * M + order[s]] = 1.0;
      last_counts[order[s]] += 1.0;
    }
  }
  Tensor onehot = from_vector(onehot_v, {K, BT, M}, x.dtype());
  Tensor w = sum(mul(probs.reshape({1, BT, M}), onehot), {2});  // [K, BT] selected probabilities
  w = div(w, sum(w, {0}, true));                                // renormalised over the slots
  last_probs = probs;
  last_weights = w;
  // Dispatch: memory m's tokens of batch b, in time order (a stable counting sort).
  last_segments.assign(B * M, {});
  std::vector<std::vector<int64_t>> slot_rows(B * M);  // index into w's flat [K*BT] for each token
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < K; ++s) {
        int64_t m = choice[(b * T + t) * K + s];
        last_segments[b * M + m].push_back(t);
        slot_rows[b * M + m].push_back(s * BT + b * T + t);
      }
  Tensor x_flat = x.reshape({BT, d});
  Tensor q_flat = base->q_proj->forward(x).reshape({BT, d});
  Tensor w_flat = w.reshape({K * BT, 1});
  const size_t n_states = static_cast<size_t>(M + (shared ? 1 : 0));
  if (cache && cache->states.size() != n_states) cache->states.assign(n_states, Tensor());
  Tensor combined;  // [BT, H*dv]
  for (int64_t m = 0; m < M; ++m) {
    std::vector<Tensor> next_states;
    for (int64_t b = 0; b < B; ++b) {
      const auto& seg = last_segments[b * M + m];
      Tensor state = cache && cache->states[m].defined() ? cache->states[m].narrow(0, b, 1) : Tensor();
      if (!seg.empty()) {
        std::vector<double> rows_v(seg.size()), wrow_v(seg.size());
        for (size_t i = 0; i < seg.size(); ++i) {
          rows_v[i] = static_cast<double>(b * T + seg[i]);
          wrow_v[i] = static_cast<double>(slot_rows[b * M + m][i]);
        }
        Tensor rows = from_vector(rows_v, {static_cast<int64_t>(seg.size())}, DType::i64);
        Tensor o = run_memory(*memories[m], embedding(x_flat, rows), embedding(q_flat, rows), &state);
        o = mul(o, embedding(w_flat, from_vector(wrow_v, {static_cast<int64_t>(seg.size())}, DType::i64)));
        Tensor placed = scatter_rows(o, rows, BT);
        combined = combined.defined() ? add(combined, placed) : placed;
      }
      if (cache) next_states.push_back(state.defined() ? state.detach() : zeros({1, base->n_heads, base->head_dim, base->head_dim}, x.dtype()));
    }
    if (cache) cache->states[m] = cat(next_states, 0);
  }
  if (shared) {
    std::vector<Tensor> outs, next_states;
    for (int64_t b = 0; b < B; ++b) {
      Tensor state = cache && cache->states[M].defined() ? cache->states[M].narrow(0, b, 1) : Tensor();
      outs.push_back(run_memory(*shared_memory, x_flat.narrow(0, b * T, T), q_flat.narrow(0, b * T, T), &state));
      if (cache) next_states.push_back(state.detach());
    }
    Tensor o = cat(outs, 0);
    combined = combined.defined() ? add(combined, o) : o;
    if (cache) cache->states[M] = cat(next_states, 0);
  }
  if (cache) cache->pos += T;
  Tensor o = combined.reshape({B, T, base->n_heads, -1}).permute({0, 2, 1, 3});  // [B, H, T, dv]
  return base->output(o, x);
}

Tensor mom_aux_loss(const std::vector<const MoM*>& layers) {
  SKEIN_CHECK(!layers.empty(), "mom_aux_loss: no MoM layers");
  const int64_t M = layers[0]->n_memories;
  Tensor prob_sum;
  std::vector<double> counts(M, 0.0);
  double tokens = 0;
  for (const MoM* l : layers) {
    Tensor s = sum(l->last_probs, {0});  // [M]
    prob_sum = prob_sum.defined() ? add(prob_sum, s) : s;
    for (int64_t m = 0; m < M; ++m) counts[m] += l->last_counts[m];
    tokens += static_cast<double>(l->last_probs.size(0));
  }
  // f[m] = counts[m] / tokens  (Σ over slots of the per-slot fraction), P = prob_sum / tokens
  std::vector<double> f(M);
  for (int64_t m = 0; m < M; ++m) f[m] = counts[m] / tokens;
  Tensor fv = from_vector(f, {M}, prob_sum.dtype());
  return mul(sum(mul(prob_sum, fv)), static_cast<double>(M) / tokens);
}

}  // namespace skein
