// mom.cpp — Mixture-of-Memories (see mom.h).
#include "layers/mom.h"
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include "layers/attention.h"
#include "layers/linear_attention.h"
#include "layers/short_conv.h"

namespace skein {

namespace {

bool is_delta(const std::string& variant) { return variant == "delta" || variant == "gated_delta"; }

// Steps [start, start + len) of a memory's inputs (an [H] gate is not cut).
MoM::Inputs piece(const MoM::Inputs& r, int64_t start, int64_t len) {
  auto steps = [&](const Tensor& t) { return t.narrow(1, start, len); };
  auto cut = [&](const Tensor& t) { return t.defined() && t.dim() >= 3 ? t.narrow(2, start, len) : t; };
  return {steps(r.q), steps(r.k), steps(r.v), cut(r.beta), cut(r.gate)};
}

}  // namespace

MemoryProjections::MemoryProjections(const ModelConfig& cfg, const std::string& variant, Generator& gen,
                                     const ModelParallel* par) {
  const int64_t d = cfg.d_model, H = cfg.n_heads;
  auto column = [&](int64_t out) {
    return std::make_shared<Linear>(d, out, gen, cfg.init_std, false, cfg.dtype, TpMode::column, par);
  };
  k_proj = register_module("k_proj", column(d));
  v_proj = register_module("v_proj", column(d));
  if (is_delta(variant)) b_proj = register_module("b_proj", column(H));
  if (variant == "gated_delta") a_proj = register_module("a_proj", column(H));
}

MoM::MoM(const ModelConfig& cfg, Generator& gen, double out_std, const ModelParallel* par)
    : Mixer(par), n_memories(cfg.mom_memories), topk(cfg.mom_topk), head_dim(cfg.head_dim()),
      chunk(cfg.chunk_size), scale(cfg.linear_scale), shared(cfg.mom_shared_memory),
      output_norm(cfg.linear_output_norm), output_gate(cfg.linear_output_gate),
      short_conv(uses_short_conv(cfg, cfg.mom_variant, true)), variant(cfg.mom_variant) {
  SKEIN_CHECK(variant == "gated_delta" || variant == "delta" || variant == "decay" || variant == "plain",
              "model.mom_variant: '", variant, "' is not supported by MoM (gated_delta, delta, decay, plain)");
  SKEIN_CHECK(n_memories >= 1 && topk >= 1 && topk <= n_memories, "model.mom_topk: need 1 <= topk (", topk,
              ") <= mom_memories (", n_memories, ")");
  const int64_t d = cfg.d_model, H = cfg.n_heads;
  const ModelParallel* p = &this->par();
  const int tp_rank = p->tp_rank(), tp = p->tp_size();
  SKEIN_CHECK(H % tp == 0, "MoM: model.n_heads (", H, ") must be divisible by tp_size (", tp, ")");
  n_heads = H / tp;
  // Per-head tensors are built for all H heads (the same random draws as one process); this
  // rank keeps its heads' entries.
  const TpSplit head_split{0, H}, feature_split{0, d};
  auto mine = [&](const Tensor& full, TpSplit split) { return tp_shard(full, split, tp_rank, tp); };
  auto column = [&](int64_t out) {
    return std::make_shared<Linear>(d, out, gen, cfg.init_std, false, cfg.dtype, TpMode::column, p);
  };
  router = register_module("router", std::make_shared<Linear>(d, n_memories, gen, cfg.init_std, false, cfg.dtype));
  q_proj = register_module("q_proj", column(d));
  o_proj = register_module("o_proj", std::make_shared<Linear>(d, d, gen, out_std, false, cfg.dtype, TpMode::row, p));
  if (output_gate) g_proj = register_module("g_proj", column(d));
  if (output_norm) o_norm = register_parameter("o_norm", mine(ones({d}, cfg.dtype), feature_split), feature_split);
  if (variant == "decay") {
    log_decay = mine(retnet_log_decay(H).to(cfg.dtype), head_split);  // global head index
    register_buffer("log_decay", log_decay);
  }
  if (variant == "gated_delta") {
    auto [alog, dtb] = gated_delta_init(H, gen, cfg.dtype);
    A_log = register_parameter("A_log", mine(alog, head_split), head_split);
    dt_bias = register_parameter("dt_bias", mine(dtb, head_split), head_split);
  }
  for (int64_t m = 0; m < n_memories; ++m)
    memories.push_back(register_module("memories." + std::to_string(m),
                                       std::make_shared<MemoryProjections>(cfg, variant, gen, p)));
  if (shared) shared_memory = register_module("shared", std::make_shared<MemoryProjections>(cfg, variant, gen, p));
  if (short_conv) {
    q_conv = register_parameter("q_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
    k_conv = register_parameter("k_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
    v_conv = register_parameter("v_conv1d", mine(short_conv_init(d, cfg.conv_size, gen, cfg.dtype), feature_split), feature_split);
  }
}

MoM::Inputs MoM::inputs(const MemoryProjections& mem, const Tensor& x, const Tensor& q) const {
  // x: [Bx, n, d], q: [Bx, n, H*hd] -> k, v: [Bx, n, H*hd], beta, log_alpha: [Bx, H, n]
  Inputs r{q, mem.k_proj->forward(x), mem.v_proj->forward(x), Tensor(), log_decay};  // gate: undefined for plain
  if (!is_delta(variant)) return r;
  r.beta = sigmoid(mem.b_proj->forward(x)).permute({0, 2, 1});
  r.gate = Tensor();
  if (variant == "gated_delta")  // -exp(A_log) * softplus(a_proj(x) + dt_bias)
    r.gate = mul(neg(exp(A_log)), softplus(add(mem.a_proj->forward(x), dt_bias))).permute({0, 2, 1});
  return r;
}

Recurrence MoM::recurrence(const Inputs& in) const {
  const int64_t H = n_heads;
  Recurrence r{split_heads(in.q, H), split_heads(in.k, H), split_heads(in.v, H), in.beta, in.gate, Tensor()};
  if (is_delta(variant)) {  // SiLU (the short conv's when there is one) and L2 norm
    r.q = l2_normalize(short_conv ? r.q : silu(r.q));
    r.k = l2_normalize(short_conv ? r.k : silu(r.k));
  }
  return r;
}

void MoM::conv_parts(std::vector<Inputs>& parts, MixerCache* cache) const {
  if (!short_conv) return;
  std::vector<Tensor> xs, ws;  // every part's q, k, v at once (one sequence-parallel exchange)
  for (const Inputs& in : parts) {
    xs.insert(xs.end(), {in.q, in.k, in.v});
    ws.insert(ws.end(), {q_conv, k_conv, v_conv});
  }
  xs = run_short_convs(par(), xs, ws, cache ? &cache->conv : nullptr);
  for (size_t i = 0; i < parts.size(); ++i) {
    parts[i].q = xs[3 * i];
    parts[i].k = xs[3 * i + 1];
    parts[i].v = xs[3 * i + 2];
  }
}

Tensor MoM::output(const Tensor& o, const Tensor& x) const {
  // o: [B, T, H, dv] -> per-head RMSNorm over dv -> [B, T, H*dv] * gain (* silu gate) -> o_proj
  Tensor y = output_norm ? rms_norm(o, ones({o.size(-1)}, o.dtype(), o.device()), 1e-6) : o;
  y = y.reshape({x.size(0), x.size(1), -1});
  if (output_norm) y = mul(y, o_norm);
  if (output_gate) y = mul(y, silu(g_proj->forward(x)));
  return o_proj->forward(y);  // row-parallel: summed over tp ranks
}

Tensor MoM::forward(const Tensor& x, MixerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), d = x.size(2), M = n_memories, K = topk, BT = B * T;
  // Router (replicated): probabilities, top-k (constants), renormalised weights (differentiable).
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
  Tensor onehot = from_vector(onehot_v, {K, BT, M}, x.dtype(), x.device());
  Tensor w = sum(mul(probs.reshape({1, BT, M}), onehot), {2});  // [K, BT] selected probabilities
  w = div(w, sum(w, {0}, true));                                // renormalised over the slots
  last_probs = probs;
  last_weights = w;
  // Dispatch (a stable counting sort): memory m's rows in (batch, time) order, so its tokens
  // of batch b are one contiguous run; slot_rows: each row's index into w's flat [K*BT].
  last_segments.assign(B * M, {});
  std::vector<std::vector<double>> rows(M), slot_rows(M);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < K; ++s) {
        const int64_t m = choice[(b * T + t) * K + s];
        last_segments[b * M + m].push_back(t);
        rows[m].push_back(static_cast<double>(b * T + t));
        slot_rows[m].push_back(static_cast<double>(s * BT + b * T + t));
      }
  Tensor xc = par().tp_copy(x);  // Megatron f: the input gradient is summed over tp ranks
  Tensor x_flat = xc.reshape({BT, d});
  Tensor q_flat = q_proj->forward(xc).reshape({BT, -1});  // [BT, H*hd]
  // The weights are replicated and scale this rank's heads: their gradient is summed over tp.
  Tensor w_flat = par().tp_copy(w).reshape({K * BT, 1});
  const size_t n_states = static_cast<size_t>(M + (shared ? 1 : 0));
  if (cache && cache->states.size() != n_states) cache->states.assign(n_states, Tensor());
  std::vector<Tensor> row_index(M), mem_out(M);  // mem_out[m]: [n_m, H*dv] in rows[m] order
  for (int64_t m = 0; m < M; ++m)
    if (!rows[m].empty()) row_index[m] = from_vector(rows[m], {static_cast<int64_t>(rows[m].size())}, DType::i64, x.device());
  Tensor shared_out;                                      // [BT, H*dv]
  std::vector<LinearAttentionResult> results;
  if (!cache && par().sp_size() == 1) {
    // Training on one sp rank: memory m's B segments as ONE batch [B, L_m, ...], each row its
    // segment right-padded with zero rows (a causal conv and recurrence leave the valid
    // positions exact; the padded positions and final states are dropped): M recurrences
    // instead of M * B small ones.
    Tensor x_ext = cat({x_flat, zeros({1, d}, x.dtype(), x.device())}, 0);  // row BT: the padding
    Tensor q_ext = cat({q_flat, zeros({1, q_flat.size(1)}, x.dtype(), x.device())}, 0);
    std::vector<Inputs> parts;
    std::vector<Tensor> valid(M);
    for (int64_t m = 0; m < M; ++m) {
      if (rows[m].empty()) continue;
      int64_t L = 0;
      for (int64_t b = 0; b < B; ++b) L = std::max<int64_t>(L, static_cast<int64_t>(last_segments[b * M + m].size()));
      std::vector<double> pad(static_cast<size_t>(B * L), static_cast<double>(BT)), keep;
      for (int64_t b = 0; b < B; ++b)
        for (size_t p = 0; p < last_segments[b * M + m].size(); ++p) {
          pad[static_cast<size_t>(b * L) + p] = static_cast<double>(b * T + last_segments[b * M + m][p]);
          keep.push_back(static_cast<double>(b * L) + static_cast<double>(p));
        }
      Tensor idx = from_vector(pad, {B * L}, DType::i64, x.device());
      parts.push_back(inputs(*memories[m], embedding(x_ext, idx).reshape({B, L, d}),
                             embedding(q_ext, idx).reshape({B, L, -1})));
      valid[m] = from_vector(keep, {static_cast<int64_t>(keep.size())}, DType::i64, x.device());
    }
    if (shared) parts.push_back(inputs(*shared_memory, xc, q_flat.reshape({B, T, -1})));
    conv_parts(parts, nullptr);
    size_t i = 0;
    for (int64_t m = 0; m < M; ++m) {
      if (rows[m].empty()) continue;
      Tensor o = run_recurrence(recurrence(parts[i++]), scale, chunk).out;  // [B, H, L, dv]
      mem_out[m] = embedding(o.permute({0, 2, 1, 3}).reshape({o.size(0) * o.size(2), -1}), valid[m]);
    }
    if (shared) shared_out = run_recurrence(recurrence(parts[i]), scale, chunk).out;
  } else {
    // One recurrence per (memory, batch) — empty where no token of that batch chose the
    // memory — then the shared memory's over every token.
    std::vector<Inputs> parts;  // per (memory, batch), then the shared memory
    for (int64_t m = 0; m < M; ++m) {
      const int64_t n = static_cast<int64_t>(rows[m].size());
      Inputs all;
      if (n > 0) {
        all = inputs(*memories[m], embedding(x_flat, row_index[m]).reshape({1, n, d}),
                     embedding(q_flat, row_index[m]).reshape({1, n, -1}));
      } else {  // no tokens on this rank: a length-0 piece of the same kind
        Tensor none = zeros({1, 0, n_heads * head_dim}, x.dtype(), x.device());
        all = {none, none, none, Tensor(), log_decay};
        if (is_delta(variant)) all.beta = zeros({1, n_heads, 0}, x.dtype(), x.device());
      }
      int64_t start = 0;
      for (int64_t b = 0; b < B; ++b) {
        const int64_t len = static_cast<int64_t>(last_segments[b * M + m].size());
        parts.push_back(piece(all, start, len));
        start += len;
      }
    }
    if (shared) parts.push_back(inputs(*shared_memory, xc, q_flat.reshape({B, T, -1})));
    conv_parts(parts, cache);
    std::vector<Recurrence> segments;
    for (size_t i = 0; i < parts.size(); ++i) {
      segments.push_back(recurrence(parts[i]));
      if (!cache) continue;
      const int64_t m = static_cast<int64_t>(i) / B, b = static_cast<int64_t>(i) % B;
      if (m < M && cache->states[m].defined()) segments.back().init = cache->states[m].narrow(0, b, 1);
      if (m == M) segments.back().init = cache->states[M];
    }
    // Generation continues from the cache on one process; training goes through par() (one
    // sequence-parallel exchange for every memory).
    results = cache ? single_process_parallel().segment_recurrences(segments, scale, chunk)
                    : par().segment_recurrences(segments, scale, chunk);
    for (int64_t m = 0; m < M; ++m) {
      if (rows[m].empty()) continue;
      std::vector<Tensor> outs;
      for (int64_t b = 0; b < B; ++b)
        if (results[m * B + b].out.size(2) > 0) outs.push_back(results[m * B + b].out);
      const int64_t n = static_cast<int64_t>(rows[m].size());
      mem_out[m] = (outs.size() == 1 ? outs[0] : cat(outs, 2)).permute({0, 2, 1, 3}).reshape({n, -1});
    }
    if (shared) shared_out = results.back().out;
  }
  // Combine: each memory's outputs, weighted, scattered back to their rows.
  Tensor combined;  // [BT, H*dv]
  for (int64_t m = 0; m < M; ++m) {
    if (rows[m].empty()) continue;
    const int64_t n = static_cast<int64_t>(rows[m].size());
    Tensor o = mul(mem_out[m], embedding(w_flat, from_vector(slot_rows[m], {n}, DType::i64, x.device())));
    Tensor placed = scatter_rows(o, row_index[m], BT);
    combined = combined.defined() ? add(combined, placed) : placed;
  }
  if (shared) {  // unweighted
    Tensor o = shared_out.permute({0, 2, 1, 3}).reshape({BT, -1});
    combined = combined.defined() ? add(combined, o) : o;
  }
  if (cache) {
    for (int64_t m = 0; m < M; ++m) {
      std::vector<Tensor> states;
      for (int64_t b = 0; b < B; ++b) states.push_back(results[m * B + b].final_state.detach());
      cache->states[m] = cat(states, 0);
    }
    if (shared) cache->states[M] = results.back().final_state.detach();
    cache->pos += T;
  }
  return output(combined.reshape({B, T, n_heads, -1}), xc);
}

Tensor mom_aux_loss(const std::vector<const MoM*>& layers) {
  SKEIN_CHECK(!layers.empty(), "mom_aux_loss: no MoM layers");
  const int64_t M = layers[0]->n_memories;
  Tensor prob_sum;  // [M]
  std::vector<double> counts(M + 1, 0.0);  // per memory, then the number of rows
  for (const MoM* l : layers) {
    Tensor s = sum(l->last_probs, {0});
    prob_sum = prob_sum.defined() ? add(prob_sum, s) : s;
    for (int64_t m = 0; m < M; ++m) counts[m] += l->last_counts[m];
    counts[M] += static_cast<double>(l->last_probs.size(0));
  }
  // One sum over the ranks of the global batch for [prob_sum | counts | rows], in f64 (exact
  // counts); only prob_sum carries a gradient.
  Tensor stats = layers[0]->par().batch_sum(cat({prob_sum.to(DType::f64), from_vector(counts, {M + 1}, DType::f64, prob_sum.device())}, 0));
  const std::vector<double> global = stats.detach().to_vector();
  const double rows = global[2 * M];
  // f[m] = counts[m] / rows  (Σ over slots of the per-slot fraction), P = prob_sum / rows
  std::vector<double> f(M);
  for (int64_t m = 0; m < M; ++m) f[m] = global[M + m] / rows;
  Tensor aux = mul(sum(mul(stats.narrow(0, 0, M), from_vector(f, {M}, DType::f64, stats.device()))), static_cast<double>(M) / rows);
  return aux.to(prob_sum.dtype());
}

}  // namespace skein
