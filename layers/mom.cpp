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

// x: [..., d] through the bias-free, column-parallel `layers` as ONE GEMM (their weights
// stacked) -> one view per layer: [..., out_i]. One GEMM, one input gradient and one weight
// gradient instead of a GEMM each and the sum of their input gradients.
std::vector<Tensor> stacked_projection(const std::vector<const Linear*>& layers, const Tensor& x) {
  std::vector<Tensor> ws;
  Shape sizes;
  for (const Linear* l : layers) {
    SKEIN_ASSERT(!l->bias.defined() && l->mode != TpMode::row, "MoM: stacked projections are bias-free, not row-parallel");
    ws.push_back(l->compute_weight(x.dtype()));
    sizes.push_back(l->weight.size(0));
  }
  Tensor y = matmul(x, (ws.size() == 1 ? ws[0] : cat(ws, 0)).transpose(0, 1));
  return ws.size() == 1 ? std::vector<Tensor>{y} : split(y, sizes, -1);
}

}  // namespace

std::vector<const Linear*> MemoryProjections::layers() const {
  std::vector<const Linear*> out{k_proj.get(), v_proj.get()};
  if (b_proj) out.push_back(b_proj.get());
  if (a_proj) out.push_back(a_proj.get());
  return out;
}

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

MoM::Inputs MoM::inputs(const Tensor& q, const std::vector<Tensor>& p) const {
  // -> k, v: [Bx, n, H*hd], beta, log_alpha: [Bx, H, n]
  Inputs r{q, p[0], p[1], Tensor(), log_decay};  // gate: undefined for plain
  if (!is_delta(variant)) return r;
  r.beta = sigmoid(p[2]).permute({0, 2, 1});
  r.gate = Tensor();
  if (variant == "gated_delta")  // -exp(A_log) * softplus(a_proj(x) + dt_bias)
    r.gate = mul(neg(exp(A_log)), softplus(add(p[3], dt_bias))).permute({0, 2, 1});
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

Tensor MoM::output(const Tensor& o, const Tensor& gate) const {
  // o: [B, T, H, dv] -> per-head RMSNorm over dv -> [B, T, H*dv] * gain (* silu gate) -> o_proj
  Tensor y = output_norm ? rms_norm(o, ones({o.size(-1)}, o.dtype(), o.device()), 1e-6) : o;
  y = y.reshape({o.size(0), o.size(1), -1});
  if (output_norm) y = mul(y, o_norm);
  if (output_gate) y = mul(y, silu(gate));
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
  // Dispatch: last_segments[b * M + m] holds the times of batch b's tokens that chose memory m
  // (in order); seg_slots[b * M + m] each one's index into w's flat [K*BT].
  last_segments.assign(B * M, {});
  std::vector<std::vector<double>> seg_slots(B * M);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < K; ++s) {
        const int64_t m = choice[(b * T + t) * K + s];
        last_segments[b * M + m].push_back(t);
        seg_slots[b * M + m].push_back(static_cast<double>(s * BT + b * T + t));
      }
  Tensor xc = par().tp_copy(x);  // Megatron f: the input gradient is summed over tp ranks
  Tensor x_flat = xc.reshape({BT, d});
  // q, the output gate and the shared memory's projections of every token: one GEMM.
  std::vector<const Linear*> whole{q_proj.get()};
  if (output_gate) whole.push_back(g_proj.get());
  if (shared)
    for (const Linear* l : shared_memory->layers()) whole.push_back(l);
  const std::vector<Tensor> proj = stacked_projection(whole, xc);
  const Tensor& q_all = proj[0];  // [B, T, H*hd]
  const Tensor gate = output_gate ? proj[1] : Tensor();
  const std::vector<Tensor> shared_proj(proj.begin() + (output_gate ? 2 : 1), proj.end());
  Tensor q_flat = q_all.reshape({BT, -1});  // [BT, H*hd]
  // The weights are replicated and scale this rank's heads: their gradient is summed over tp.
  Tensor w_flat = par().tp_copy(w).reshape({K * BT, 1});
  const size_t n_states = static_cast<size_t>(M + (shared ? 1 : 0));
  if (cache && cache->states.size() != n_states) cache->states.assign(n_states, Tensor());
  // The routed memories' outputs, in pieces: rows [n, H*dv] with their destination rows and
  // routing-weight slots (indices into w_flat).
  struct Routed {
    Tensor out;
    std::vector<double> dest, slots;
  };
  std::vector<Routed> routed;
  Tensor shared_out;  // [B, H, T, dv]
  std::vector<LinearAttentionResult> results;
  if (!cache && par().sp_size() == 1) {
    // Training on one sp rank: a memory's segments of up to kGroupRows batch rows, taken in
    // order of length, run as ONE batch [rows, L, ...], each segment right-padded to the
    // group's longest with copies of its last token: a causal conv and recurrence leave the
    // valid positions exact whatever follows them, the padded positions' outputs and the
    // final states are dropped, so the padding receives an exactly zero gradient. A few
    // recurrences per memory instead of B small ones, with little padding; every group's
    // rows come from one gather of x and of q.
    constexpr size_t kGroupRows = 8;
    std::vector<double> pad;  // group after group: [rows, L] row indices into x_flat
    Shape group_memory, group_rows, lens;
    std::vector<Tensor> valid;
    for (int64_t m = 0; m < M; ++m) {
      std::vector<int64_t> order;  // batch rows with tokens for m, longest segment first
      for (int64_t b = 0; b < B; ++b)
        if (!last_segments[b * M + m].empty()) order.push_back(b);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return last_segments[a * M + m].size() > last_segments[b * M + m].size();
      });
      for (size_t g0 = 0; g0 < order.size(); g0 += kGroupRows) {
        const size_t nr = std::min(kGroupRows, order.size() - g0);
        const int64_t L = static_cast<int64_t>(last_segments[order[g0] * M + m].size());
        const size_t at = pad.size();
        pad.resize(at + nr * static_cast<size_t>(L));
        Routed r;
        std::vector<double> keep;
        for (size_t i = 0; i < nr; ++i) {
          const int64_t b = order[g0 + i];
          const std::vector<int64_t>& seg = last_segments[b * M + m];
          for (size_t p = 0; p < static_cast<size_t>(L); ++p) {
            const double row = static_cast<double>(b * T + seg[std::min(p, seg.size() - 1)]);
            pad[at + i * static_cast<size_t>(L) + p] = row;
            if (p >= seg.size()) continue;
            keep.push_back(static_cast<double>(i * static_cast<size_t>(L) + p));
            r.dest.push_back(row);
          }
          r.slots.insert(r.slots.end(), seg_slots[b * M + m].begin(), seg_slots[b * M + m].end());
        }
        routed.push_back(std::move(r));
        valid.push_back(from_vector(keep, {static_cast<int64_t>(keep.size())}, DType::i64, x.device()));
        group_memory.push_back(m);
        group_rows.push_back(static_cast<int64_t>(nr));
        lens.push_back(L);
      }
    }
    Shape sizes;  // each group's rows of the gathered x and q
    for (size_t i = 0; i < lens.size(); ++i) sizes.push_back(group_rows[i] * lens[i]);
    Tensor idx = from_vector(pad, {static_cast<int64_t>(pad.size())}, DType::i64, x.device());
    const std::vector<Tensor> xs = split(embedding(x_flat, idx), sizes, 0), qs = split(embedding(q_flat, idx), sizes, 0);
    std::vector<Inputs> parts;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const Shape rows_shape{group_rows[i], lens[i], -1};
      parts.push_back(inputs(qs[i].reshape(rows_shape),
                             stacked_projection(memories[group_memory[i]]->layers(), xs[i].reshape(rows_shape))));
    }
    if (shared) parts.push_back(inputs(q_all, shared_proj));
    conv_parts(parts, nullptr);
    for (size_t i = 0; i < routed.size(); ++i) {
      Tensor o = run_recurrence(recurrence(parts[i]), scale, chunk).out;  // [rows, H, L, dv]
      routed[i].out = embedding(o.permute({0, 2, 1, 3}).reshape({o.size(0) * o.size(2), -1}), valid[i]);
    }
    if (shared) shared_out = run_recurrence(recurrence(parts.back()), scale, chunk).out;
  } else {
    // One recurrence per (memory, batch) — empty where no token of that batch chose the
    // memory — then the shared memory's over every token. rows[m]: memory m's rows of x_flat
    // in (batch, time) order, so its tokens of batch b are one contiguous run; slot_rows[m]:
    // each one's index into w_flat.
    std::vector<std::vector<double>> rows(M), slot_rows(M);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b = 0; b < B; ++b)
        for (size_t i = 0; i < last_segments[b * M + m].size(); ++i) {
          rows[m].push_back(static_cast<double>(b * T + last_segments[b * M + m][i]));
          slot_rows[m].push_back(seg_slots[b * M + m][i]);
        }
    std::vector<Inputs> parts;  // per (memory, batch), then the shared memory
    for (int64_t m = 0; m < M; ++m) {
      const int64_t n = static_cast<int64_t>(rows[m].size());
      Inputs all;
      if (n > 0) {
        Tensor row_index = from_vector(rows[m], {n}, DType::i64, x.device());
        all = inputs(embedding(q_flat, row_index).reshape({1, n, -1}),
                     stacked_projection(memories[m]->layers(), embedding(x_flat, row_index).reshape({1, n, d})));
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
    if (shared) parts.push_back(inputs(q_all, shared_proj));
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
      routed.push_back({(outs.size() == 1 ? outs[0] : cat(outs, 2)).permute({0, 2, 1, 3}).reshape({n, -1}),
                        rows[m], slot_rows[m]});
    }
    if (shared) shared_out = results.back().out;
  }
  // Combine: the routed outputs times their routing weights, and the shared memory's
  // (unweighted), summed into their rows by ONE scatter.
  std::vector<Tensor> pieces;
  std::vector<double> dest;  // the row of each piece row
  for (const Routed& r : routed) {
    const int64_t n = static_cast<int64_t>(r.slots.size());
    pieces.push_back(mul(r.out, embedding(w_flat, from_vector(r.slots, {n}, DType::i64, x.device()))));
    dest.insert(dest.end(), r.dest.begin(), r.dest.end());
  }
  if (shared) {
    pieces.push_back(shared_out.permute({0, 2, 1, 3}).reshape({BT, -1}));
    for (int64_t r = 0; r < BT; ++r) dest.push_back(static_cast<double>(r));
  }
  Tensor combined = scatter_rows(pieces.size() == 1 ? pieces[0] : cat(pieces, 0),
                                 from_vector(dest, {static_cast<int64_t>(dest.size())}, DType::i64, x.device()), BT);
  if (cache) {
    for (int64_t m = 0; m < M; ++m) {
      std::vector<Tensor> states;
      for (int64_t b = 0; b < B; ++b) states.push_back(results[m * B + b].final_state.detach());
      cache->states[m] = cat(states, 0);
    }
    if (shared) cache->states[M] = results.back().final_state.detach();
    cache->pos += T;
  }
  return output(combined.reshape({B, T, n_heads, -1}), gate);
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
