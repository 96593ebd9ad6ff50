// lolcats.cpp — lolcats_attention and LolcatsAttention (see lolcats.h).
#include "layers/lolcats.h"
#include <cmath>
#include <limits>

namespace skein {
namespace {

// t: [B, H, L, D] -> zero rows appended to length Lp.
Tensor pad_rows(const Tensor& t, int64_t Lp) {
  const int64_t L = t.size(2);
  if (Lp == L) return t;
  return cat({t, zeros({t.size(0), t.size(1), Lp - L, t.size(3)}, t.dtype(), t.device())}, 2);
}

// t: [B, H, Lp, D] (Lp = nb·bs) -> [B, H, nb, 2bs, D]: block b holds rows [(b-1)·bs, (b+1)·bs)
// (zeros before row 0), the keys a query of block b can reach.
Tensor key_blocks(const Tensor& t, int64_t bs) {
  const int64_t B = t.size(0), H = t.size(1), Lp = t.size(2), D = t.size(3), nb = Lp / bs;
  Tensor p = cat({zeros({B, H, bs, D}, t.dtype(), t.device()), t}, 2);
  return cat({p.narrow(2, 0, Lp).reshape({B, H, nb, bs, D}), p.narrow(2, bs, Lp).reshape({B, H, nb, bs, D})}, 3);
}

// [nb, bs, 2bs]: 1 where key (b-1)·bs + c is NOT in the window of query b·bs + r.
Tensor outside_window(int64_t nb, int64_t bs, int64_t window, DType dtype, Device device) {
  std::vector<double> m(static_cast<size_t>(nb * bs * 2 * bs));
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t r = 0; r < bs; ++r)
      for (int64_t c = 0; c < 2 * bs; ++c) {
        const int64_t i = b * bs + r, j = (b - 1) * bs + c;
        m[static_cast<size_t>((b * bs + r) * 2 * bs + c)] = (j >= 0 && j <= i && i - j < window) ? 0.0 : 1.0;
      }
  return from_vector(m, {nb, bs, 2 * bs}, dtype, device);
}

// t: [B, H, L, D] -> row i holds row i - w (zeros for i < w).
Tensor shift_rows(const Tensor& t, int64_t w) {
  const int64_t L = t.size(2);
  if (L <= w) return zeros(t.shape(), t.dtype(), t.device());
  return cat({zeros({t.size(0), t.size(1), w, t.size(3)}, t.dtype(), t.device()), t.narrow(2, 0, L - w)}, 2);
}

// [G·T, n]: 1 where key `first + j` of a decode step is NOT in the window of its query; row
// g·T + t is query t of group member g, which sits after c cached keys (key c + t is itself).
Tensor decode_outside_window(int64_t G, int64_t T, int64_t c, int64_t first, int64_t n, int64_t window,
                             DType dtype, Device device) {
  std::vector<double> m(static_cast<size_t>(G * T * n));
  for (int64_t r = 0; r < G * T; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = c + r % T, key = first + j;
      m[static_cast<size_t>(r * n + j)] = (key <= i && i - key < window) ? 0.0 : 1.0;
    }
  return from_vector(m, {G * T, n}, dtype, device);
}

// t: [B, H, L, D] -> [B, H, rows, D], zero rows in front (rows >= L).
Tensor pad_front(const Tensor& t, int64_t rows) {
  const int64_t L = t.size(2);
  if (rows == L) return t;
  return cat({zeros({t.size(0), t.size(1), rows - L, t.size(3)}, t.dtype(), t.device()), t}, 2);
}

}  // namespace

LolcatsResult lolcats_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& fq,
                                const Tensor& fk, const Tensor& gamma, int64_t window, double scale,
                                const Tensor& linear_state, bool linear, int64_t chunk) {
  SKEIN_CHECK(q.dim() == 4 && k.shape() == q.shape() && v.dim() == 4 && v.size(2) == q.size(2) &&
                  v.size(0) == q.size(0) && v.size(1) == q.size(1),
              "lolcats_attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
              shape_str(v.shape()), " must be [B, H, L, D], [B, H, L, D], [B, H, L, Dv]");
  SKEIN_CHECK(gamma.dim() == 1 && gamma.size(0) == q.size(1), "lolcats_attention: gamma ", shape_str(gamma.shape()),
              " must be [H] with H = ", q.size(1));
  SKEIN_CHECK(window >= 1, "lolcats_attention: window must be >= 1, got ", window);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Dv = v.size(3);
  const int64_t bs = std::min(window, L), nb = (L + bs - 1) / bs, Lp = nb * bs;
  // window part, block by block: queries of block b against keys of blocks b-1 and b
  Tensor qb = pad_rows(q, Lp).reshape({B, H, nb, bs, q.size(3)});
  Tensor kb = key_blocks(pad_rows(k, Lp), bs), vb = key_blocks(pad_rows(v, Lp), bs);
  Tensor s = mul(matmul(qb, kb.transpose(3, 4)), scale);  // [B, H, nb, bs, 2bs]
  s = masked_fill(s, outside_window(nb, bs, window, q.dtype(), q.device()), -std::numeric_limits<double>::infinity());
  Tensor e = exp(sub(s, max(s, -1, true)));               // a_sm / γ
  Tensor g = gamma.reshape({1, H, 1, 1});
  Tensor num = mul(matmul(e, vb).reshape({B, H, Lp, Dv}).narrow(2, 0, L), g);
  Tensor den = mul(sum(e, {-1}, true).reshape({B, H, Lp, 1}).narrow(2, 0, L), g);
  LolcatsResult r;
  if (linear) {
    SKEIN_CHECK(fq.dim() == 4 && fk.shape() == fq.shape() && fq.size(2) == L && fq.size(1) == H,
                "lolcats_attention: fq ", shape_str(fq.shape()), " and fk ", shape_str(fk.shape()),
                " must be [B, H, L, F] with L = ", L);
    // keys and [v, 1] shifted by w rows: query i then sees exactly the keys j <= i - w
    Tensor v1 = cat({v, ones({B, H, L, 1}, v.dtype(), v.device())}, 3);
    LinearAttentionResult la = linear_attention(fq, shift_rows(fk, window), shift_rows(v1, window), Tensor(),
                                                linear_state, 1.0, chunk);
    num = add(num, la.out.narrow(3, 0, Dv));
    den = add(den, la.out.narrow(3, Dv, 1));
    r.state = la.final_state;
  }
  r.out = div(num, den);
  return r;
}

LolcatsAttention::LolcatsAttention(const SoftmaxAttention& teacher, const LolcatsOptions& opt, Generator& gen)
    : ConvertedAttention(teacher), options(opt) {
  SKEIN_CHECK(opt.window >= 1, "LoLCATs: window must be >= 1, got ", opt.window);
  SKEIN_CHECK(opt.feature_dim >= 1, "LoLCATs: feature_dim must be >= 1, got ", opt.feature_dim);
  SKEIN_CHECK(opt.chunk >= 1, "LoLCATs: chunk must be >= 1, got ", opt.chunk);
  const DType dt = q_proj->weight.dtype();
  const double bound = std::sqrt(6.0 / static_cast<double>(head_dim * opt.feature_dim));
  q_map = register_parameter("q_map", uniform({n_heads, head_dim, opt.feature_dim}, gen, -bound, bound, dt));
  k_map = register_parameter("k_map", uniform({n_heads, head_dim, opt.feature_dim}, gen, -bound, bound, dt));
  window_factors = register_parameter("window_factors", full({n_heads}, opt.window_factor_init, dt));
}

Tensor LolcatsAttention::feature(const Tensor& x, const Tensor& map) const {
  const int64_t f = map.size(2);
  Tensor u = matmul(x, map.reshape({1, n_heads, head_dim, f}).expand({x.size(0), n_heads, head_dim, f}));
  return cat({softmax(u, -1), softmax(neg(u), -1)}, -1);
}

Tensor LolcatsAttention::forward(const Tensor& x, MixerCache* cache) {
  const int64_t pos = cache ? cache->pos : 0, B = x.size(0), T = x.size(1);
  const RopeFreqs freqs = layer_rope_freqs(rope_cfg, head_dim, pos + T);
  Tensor q = rope(split_heads(q_proj->forward(x), n_heads), freqs, pos);     // [B, H, T, hd]
  Tensor k = rope(split_heads(k_proj->forward(x), n_kv_heads), freqs, pos);  // [B, Hkv, T, hd]
  Tensor v = split_heads(v_proj->forward(x), n_kv_heads);
  if (cache && T <= options.window) return o_proj->forward(merge_heads(decode(q, k, v, *cache)));
  int64_t c = 0;  // cached rows in front: context for the window and the linear shift, no output
  if (cache && cache->k.defined()) {
    c = cache->k.size(2);
    k = cat({cache->k, k}, 2);
    v = cat({cache->v, v}, 2);
    q = cat({zeros({B, n_heads, c, head_dim}, q.dtype(), q.device()), q}, 2);
  }
  Tensor kk = repeat_kv(k), vv = repeat_kv(v);
  Tensor init = cache && !cache->states.empty() ? cache->states[0] : Tensor();
  Tensor fq, fk;
  if (options.linear) {
    fq = feature(q, q_map);
    fk = feature(kk, k_map);
  }
  LolcatsResult r = lolcats_attention(q, kk, vv, fq, fk, sigmoid(window_factors), options.window,
                                      1.0 / std::sqrt(static_cast<double>(head_dim)), init, options.linear,
                                      options.chunk);
  Tensor o = c > 0 ? r.out.narrow(2, c, T) : r.out;
  if (cache) {  // keep the last w keys; the state then holds every key before them
    const int64_t keep = std::min(k.size(2), options.window);
    cache->k = k.narrow(2, k.size(2) - keep, keep).detach().contiguous();
    cache->v = v.narrow(2, v.size(2) - keep, keep).detach().contiguous();
    if (options.linear) cache->states = {r.state.detach()};
    cache->pos += T;
  }
  return o_proj->forward(merge_heads(o));
}

Tensor LolcatsAttention::decode(const Tensor& q, const Tensor& k, const Tensor& v, MixerCache& cache) {
  const int64_t B = q.size(0), T = q.size(2), Dv = v.size(3), w = options.window, G = n_heads / n_kv_heads;
  const int64_t c = cache.k.defined() ? cache.k.size(2) : 0, n = c + T;
  SKEIN_ASSERT(c <= w && T <= w, "LoLCATs decode: ", c, " cached keys and ", T, " new ones, window ", w);
  Tensor ka = c > 0 ? cat({cache.k, k}, 2) : k;  // [B, Hkv, n, hd]: query t is key c + t
  Tensor va = c > 0 ? cat({cache.v, v}, 2) : v;
  // window part: query t reaches keys c + t - w < j <= c + t; grouped-query heads share a kv
  // head, so the G queries of a group are rows of one matmul (no repeated keys)
  const int64_t first = std::max<int64_t>(0, c - w + 1), nw = n - first;
  Tensor kw = ka.narrow(2, first, nw), vw = va.narrow(2, first, nw);
  Tensor qg = q.contiguous().reshape({B, n_kv_heads, G * T, head_dim});
  Tensor s = mul(matmul(qg, kw.transpose(2, 3)), 1.0 / std::sqrt(static_cast<double>(head_dim)));
  if (T > 1)
    s = masked_fill(s, decode_outside_window(G, T, c, first, nw, w, q.dtype(), q.device()),
                    -std::numeric_limits<double>::infinity());
  Tensor e = exp(sub(s, max(s, -1, true)));  // [B, Hkv, G·T, nw]: a_sm / γ
  Tensor g = sigmoid(window_factors).reshape({1, n_heads, 1, 1});
  Tensor num = mul(matmul(e, vw).reshape({B, n_heads, T, Dv}), g);
  Tensor den = mul(sum(e, {-1}, true).reshape({B, n_heads, T, 1}), g);
  // keys 0 .. evicted-1 leave the window in this step; query t's linear keys are j <= c + t - w,
  // so the evicted rows go to rows T - evicted .. T - 1 and the linear op sees each key first
  // at the query it enters the linear part for (as the shift by w of the blocked path)
  const int64_t evicted = std::max<int64_t>(0, n - w);
  if (options.linear) {
    Tensor fq = feature(q, q_map), fk, v1;
    if (evicted > 0) {
      Tensor kev = repeat_kv(ka.narrow(2, 0, evicted)), vev = repeat_kv(va.narrow(2, 0, evicted));
      fk = pad_front(feature(kev, k_map), T);
      v1 = pad_front(cat({vev, ones({B, n_heads, evicted, 1}, v.dtype(), v.device())}, 3), T);
    } else {
      fk = zeros(fq.shape(), fq.dtype(), fq.device());
      v1 = zeros({B, n_heads, T, Dv + 1}, v.dtype(), v.device());
    }
    Tensor init = cache.states.empty() ? Tensor() : cache.states[0];
    LinearAttentionResult la = linear_attention(fq, fk, v1, Tensor(), init, 1.0, options.chunk);
    num = add(num, la.out.narrow(3, 0, Dv));
    den = add(den, la.out.narrow(3, Dv, 1));
    cache.states = {la.final_state.detach()};
  }
  const int64_t keep = n - evicted;  // min(n, w)
  cache.k = ka.narrow(2, evicted, keep).detach().contiguous();
  cache.v = va.narrow(2, evicted, keep).detach().contiguous();
  cache.pos += T;
  return div(num, den);
}

std::vector<int64_t> convert_to_lolcats(HybridLM& model, const std::string& pattern, const LolcatsOptions& options,
                                        uint64_t seed) {
  return convert_attention_layers(model, pattern, [&](const SoftmaxAttention& teacher, int64_t layer) {
    Generator gen(seed + static_cast<uint64_t>(layer));
    return std::make_shared<LolcatsAttention>(teacher, options, gen);
  });
}

namespace {

// Stands in for a teacher mixer during one forward and keeps what went in and came out.
class CaptureMixer : public Mixer {
 public:
  explicit CaptureMixer(std::shared_ptr<Mixer> inner) : inner_(std::move(inner)) {}
  Tensor forward(const Tensor& x, MixerCache* cache) override {
    input = x.detach();
    output = inner_->forward(x, cache).detach();
    return output;
  }
  const std::shared_ptr<Mixer>& inner() const { return inner_; }
  Tensor input, output;

 private:
  std::shared_ptr<Mixer> inner_;
};

}  // namespace

std::vector<MixerActivations> teacher_mixer_activations(HybridLM& teacher, const Tensor& ids,
                                                        const std::vector<int64_t>& layers) {
  NoGradGuard no_grad;
  std::vector<std::shared_ptr<CaptureMixer>> captures;
  for (int64_t i : layers) {
    SKEIN_CHECK(i >= 0 && i < static_cast<int64_t>(teacher.blocks.size()), "teacher_mixer_activations: layer ", i,
                " of a ", teacher.blocks.size(), "-layer model");
    Block& block = *teacher.blocks[static_cast<size_t>(i)];
    captures.push_back(std::make_shared<CaptureMixer>(block.mixer));
    block.mixer = captures.back();  // Block::forward calls the member; the registered child stays
  }
  auto restore = [&] {
    for (size_t n = 0; n < layers.size(); ++n) teacher.blocks[static_cast<size_t>(layers[n])]->mixer = captures[n]->inner();
  };
  try {
    teacher.forward(ids);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  std::vector<MixerActivations> out;
  for (size_t n = 0; n < layers.size(); ++n) out.push_back({layers[n], captures[n]->input, captures[n]->output});
  return out;
}

NamedTensors attention_transfer_parameters(const HybridLM& student) {
  NamedTensors out;
  for (auto& [name, p] : student.named_parameters())
    if (name.ends_with(".q_map") || name.ends_with(".k_map") || name.ends_with(".window_factors")) {
      Tensor t = p;
      t.requires_grad_(true);
      out.emplace_back(name, p);
    }
  return out;
}

Tensor attention_transfer_loss(HybridLM& student, const std::vector<MixerActivations>& acts) {
  SKEIN_CHECK(!acts.empty(), "attention_transfer_loss: no layers recorded");
  Tensor total;
  for (const MixerActivations& a : acts) {
    Tensor diff = sub(student.blocks[static_cast<size_t>(a.layer)]->mixer->forward(a.input, nullptr), a.output);
    Tensor mse = mean(mul(diff, diff));
    total = total.defined() ? add(total, mse) : mse;
  }
  return mul(total, 1.0 / static_cast<double>(acts.size()));
}

}  // namespace skein
