// softmax_sp.cpp — lasp2h_attention and ring_attention (parallel/softmax_sp.h).
// The ring works on "chunks": runs of a rank's slice whose global positions are consecutive
// (one chunk per rank in the contiguous layout, two in the zigzag one). Each step pairs every
// query chunk of this rank with every key chunk of the block it holds and runs the block
// kernels of core/ops.h on the pairs that see each other (a pair entirely in the causal
// future, or entirely behind the window, is skipped). The forward merges the block results
// through their log-sum-exp; the backward feeds every pair the merged out and lse.
// reference: Liu et al., "Ring Attention with Blockwise Transformers for Near-Infinite
//            Context", 2023; zhuzilin/ring-flash-attention zigzag_ring_flash_attn.py;
//            NVIDIA TransformerEngine's reversed backward ring (parallel_distill.md §1.4 B).
#include "parallel/softmax_sp.h"
#include <algorithm>
#include <limits>
#include <vector>
#include "core/autograd.h"
#include "core/ops.h"
#include "parallel/collective_ops.h"

namespace skein {

namespace {

constexpr int kTagKv = 5101;        // the K/V ring (forward and backward)
constexpr int kTagDkv = 5102;       // the dK/dV accumulator ring (backward)
constexpr int kTagRelayout = 5103;  // the zigzag re-layout exchanges

struct RingGeometry {
  int64_t B, H, Hkv, T, D, Dv;
  double scale;
  int64_t window;
  bool zigzag;
  int64_t k_numel() const { return B * Hkv * T * D; }
  int64_t v_numel() const { return B * Hkv * T * Dv; }
};

// Checks the shapes that both ops need (naming `op`) and returns them.
// q: [B, H, T, D], k: [B, Hkv, T, D], v: [B, Hkv, T, Dv]
RingGeometry checked_geometry(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                              double scale, int64_t window, bool zigzag) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 4 && k.dim() == 4 &&
                  v.dim() == 4,
              op, ": need q [B, H, T, D], k [B, Hkv, T, D], v [B, Hkv, T, Dv], got q ",
              q.defined() ? shape_str(q.shape()) : "undefined", ", k ",
              k.defined() ? shape_str(k.shape()) : "undefined", ", v ",
              v.defined() ? shape_str(v.shape()) : "undefined");
  const Shape &qs = q.shape(), &ks = k.shape(), &vs = v.shape();
  SKEIN_CHECK(qs[0] == ks[0] && qs[0] == vs[0] && qs[2] == ks[2] && qs[2] == vs[2] &&
                  ks[1] == vs[1] && qs[3] == ks[3] && ks[1] >= 1 && qs[1] % ks[1] == 0,
              op, ": shapes do not match: q ", shape_str(qs), " [B, H, T, D], k ", shape_str(ks),
              " [B, Hkv, T, D], v ", shape_str(vs), " [B, Hkv, T, Dv] (H a multiple of Hkv)");
  SKEIN_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, ": dtypes differ: q ",
              dtype_name(q.dtype()), ", k ", dtype_name(k.dtype()), ", v ", dtype_name(v.dtype()));
  SKEIN_CHECK(window >= 0, op, ": window must be >= 0 (0: none), got ", window);
  SKEIN_CHECK(!zigzag || qs[2] % 2 == 0, op, ": zigzag needs an even slice length T, got q ",
              shape_str(qs));
  return {qs[0], qs[1], ks[1], qs[2], qs[3], vs[3], scale, window, zigzag};
}

// Rows [row, row + len) of a rank's slice, at global positions [pos, pos + len).
struct Chunk {
  int64_t row, len, pos;
};

// The chunks of rank j's slice: contiguous, global chunk j of W; zigzag, chunks j and
// 2W-1-j of 2W (T/2 tokens each).
std::vector<Chunk> chunks_of(int j, int W, const RingGeometry& g) {
  if (!g.zigzag) return {{0, g.T, j * g.T}};
  const int64_t m = g.T / 2;
  return {{0, m, j * m}, {m, m, (2 * W - 1 - j) * m}};
}

// True when some query of qc sees some key of kc (causal, and inside the window).
bool sees(const Chunk& qc, const Chunk& kc, int64_t window) {
  if (kc.pos > qc.pos + qc.len - 1) return false;
  return window <= 0 || qc.pos - (kc.pos + kc.len - 1) < window;
}

// K and V of one block packed into one message: [k_numel + v_numel].
Tensor pack_kv(const Tensor& k, const Tensor& v) { return cat({k.reshape({-1}), v.reshape({-1})}, 0); }
Tensor kv_k(const Tensor& kv, const RingGeometry& g) {
  return kv.narrow(0, 0, g.k_numel()).view({g.B, g.Hkv, g.T, g.D});
}
Tensor kv_v(const Tensor& kv, const RingGeometry& g) {
  return kv.narrow(0, g.k_numel(), g.v_numel()).view({g.B, g.Hkv, g.T, g.Dv});
}

// Rows of the given chunks of x: [B, Hx, T, Dx] -> one contiguous tensor per chunk.
std::vector<Tensor> rows_of(const Tensor& x, const std::vector<Chunk>& chunks) {
  std::vector<Tensor> out;
  for (const Chunk& c : chunks) out.push_back(x.narrow(2, c.row, c.len).contiguous());
  return out;
}

// Progresses pending messages (Open MPI moves them only inside MPI calls).
void progress(std::vector<Request>& reqs) {
  for (Request& r : reqs) r.test();
}

// ---- zigzag re-layout ------------------------------------------------------------------------
// With m = T/2, global chunk c of 2W sits in half c % 2 of rank c / 2 (contiguous) and in
// rank c < W ? c : 2W-1-c (zigzag), half 0 for c < W, else half 1. Round h moves the chunks of
// parity h: a permutation of the ranks (r and 2W-1-r differ in parity), so one sendrecv each.
int zigzag_owner(int64_t c, int W) { return static_cast<int>(c < W ? c : 2 * W - 1 - c); }

// xs: tensors [B, Hx, T, Dx] in one layout -> the same tensors in the other layout.
std::vector<Tensor> relayout(Communicator& sp, const std::vector<Tensor>& xs, bool to_zigzag) {
  const int W = sp.size(), r = sp.rank();
  const int64_t m = xs[0].size(2) / 2;
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(Tensor::empty(x.shape(), x.dtype()));
  for (int64_t h = 0; h < 2; ++h) {
    const int64_t c_zig = r % 2 == h ? r : 2 * W - 1 - r;  // my zigzag chunk of parity h
    const int64_t zig_half = c_zig == r ? 0 : 1;
    const int zig_peer = zigzag_owner(2 * r + h, W);        // who owns my contiguous chunk 2r+h
    const int contig_peer = static_cast<int>(c_zig / 2);    // who holds c_zig contiguously
    const int64_t send_half = to_zigzag ? h : zig_half, recv_half = to_zigzag ? zig_half : h;
    const int dst = to_zigzag ? zig_peer : contig_peer, src = to_zigzag ? contig_peer : zig_peer;
    SKEIN_ASSERT((dst == r) == (src == r));
    std::vector<Tensor> halves;
    for (const Tensor& x : xs) halves.push_back(x.narrow(2, send_half * m, m).reshape({-1}));
    Tensor got = cat(halves, 0);
    if (dst != r) {
      Tensor sent = got;
      got = Tensor::empty(sent.shape(), sent.dtype());
      sp.sendrecv(sent, dst, got, src, kTagRelayout);
    }
    int64_t at = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      Tensor dst_rows = out[i].narrow(2, recv_half * m, m);
      const int64_t n = halves[i].numel();
      copy_(dst_rows, got.narrow(0, at, n).view(dst_rows.shape()));
      at += n;
    }
  }
  return out;
}

// ---- the rings -------------------------------------------------------------------------------
struct RingForward {
  Tensor out;      // [B, H, T, Dv] in the ring layout
  Tensor lse;      // [B, H, T]
  Tensor last_kv;  // the block received last: rank r + 1's (the backward ring starts there)
};

// q: [B, H, T, D] (ring layout); kv: this rank's packed K/V block.
RingForward ring_forward(Communicator& sp, const RingGeometry& g, const Tensor& q, const Tensor& kv) {
  const int W = sp.size(), r = sp.rank(), next = (r + 1) % W, prev = (r + W - 1) % W;
  const std::vector<Chunk> q_chunks = chunks_of(r, W, g);
  const std::vector<Tensor> qs = rows_of(q, q_chunks);
  std::vector<Tensor> outs, lses;
  for (const Chunk& c : q_chunks) {
    outs.push_back(zeros({g.B, g.H, c.len, g.Dv}, q.dtype()));
    lses.push_back(full({g.B, g.H, c.len}, -std::numeric_limits<double>::infinity(), q.dtype()));
  }
  Tensor cur = kv;
  for (int s = 0; s < W; ++s) {
    std::vector<Request> hop;  // the next block arrives while this one is computed
    Tensor incoming;
    if (s < W - 1) {
      incoming = Tensor::empty(kv.shape(), kv.dtype());
      hop.push_back(sp.irecv(incoming, prev, kTagKv));
      hop.push_back(sp.isend(cur, next, kTagKv));
    }
    const Tensor k = kv_k(cur, g), v = kv_v(cur, g);
    for (const Chunk& kc : chunks_of((r + W - s) % W, W, g)) {
      for (size_t i = 0; i < q_chunks.size(); ++i) {
        if (!sees(q_chunks[i], kc, g.window)) continue;
        AttentionBlockResult blk = attention_block_forward(
            qs[i], k.narrow(2, kc.row, kc.len), v.narrow(2, kc.row, kc.len), g.scale, true,
            g.window, q_chunks[i].pos, kc.pos);
        attention_merge_(outs[i], lses[i], blk.out, blk.lse);
        progress(hop);
      }
    }
    wait_all(hop);
    if (s < W - 1) cur = incoming;
  }
  return {cat(outs, 2), cat(lses, 2), cur};
}

// The gradients {dq, dk, dv} in the ring layout. The ring runs backwards: at step s this rank
// holds block j = r + 1 + s (mod W) — starting from last_kv — and the dK/dV accumulator of
// block j, which has collected ranks r + 1 + s, ..., r + 1 and after the last step (j = r)
// holds every rank's share of this rank's own block. q: [B, H, T, D]; out, dout:
// [B, H, T, Dv]; lse: [B, H, T] (the merged ones).
std::vector<Tensor> ring_backward(Communicator& sp, const RingGeometry& g, const Tensor& q,
                                  const Tensor& last_kv, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout) {
  const int W = sp.size(), r = sp.rank(), next = (r + 1) % W, prev = (r + W - 1) % W;
  const std::vector<Chunk> q_chunks = chunks_of(r, W, g);
  const std::vector<Tensor> qs = rows_of(q, q_chunks), outs = rows_of(out, q_chunks),
                            douts = rows_of(dout, q_chunks);
  std::vector<Tensor> lses, dqs;
  for (const Chunk& c : q_chunks) {
    lses.push_back(lse.narrow(2, c.row, c.len).contiguous());
    dqs.push_back(zeros({g.B, g.H, c.len, g.D}, q.dtype()));
  }
  Tensor cur = last_kv, dkv, dkv_in;  // dkv: block j's accumulator; dkv_in: arriving from `next`
  std::vector<Request> dkv_hop;
  for (int s = 0; s < W; ++s) {
    std::vector<Request> kv_hop;
    Tensor incoming;
    if (s < W - 1) {
      incoming = Tensor::empty(cur.shape(), cur.dtype());
      kv_hop.push_back(sp.irecv(incoming, next, kTagKv));
      kv_hop.push_back(sp.isend(cur, prev, kTagKv));
    }
    const Tensor k = kv_k(cur, g), v = kv_v(cur, g);
    dkv = zeros(cur.shape(), cur.dtype());  // this rank's share of block j (a request keeps
                                            // the previous one, still in flight, alive)
    const Tensor dk = kv_k(dkv, g), dv = kv_v(dkv, g);
    for (const Chunk& kc : chunks_of((r + 1 + s) % W, W, g)) {
      for (size_t i = 0; i < q_chunks.size(); ++i) {
        if (!sees(q_chunks[i], kc, g.window)) continue;
        const std::vector<Tensor> d = attention_block_backward(
            qs[i], k.narrow(2, kc.row, kc.len), v.narrow(2, kc.row, kc.len), outs[i], lses[i],
            douts[i], g.scale, true, g.window, q_chunks[i].pos, kc.pos);
        add_(dqs[i], d[0]);
        add_(dk.narrow(2, kc.row, kc.len), d[1]);
        add_(dv.narrow(2, kc.row, kc.len), d[2]);
        progress(kv_hop);
        progress(dkv_hop);
      }
    }
    wait_all(dkv_hop);  // the previous step's accumulator has arrived (and ours has left)
    dkv_hop.clear();
    if (s > 0) add_(dkv, dkv_in);
    if (s < W - 1) {
      dkv_in = Tensor::empty(dkv.shape(), dkv.dtype());
      dkv_hop.push_back(sp.irecv(dkv_in, next, kTagDkv));
      dkv_hop.push_back(sp.isend(dkv, prev, kTagDkv));
    }
    wait_all(kv_hop);
    if (s < W - 1) cur = incoming;
  }
  return {cat(dqs, 2), kv_k(dkv, g), kv_v(dkv, g)};
}

}  // namespace

Tensor lasp2h_attention(Communicator& sp, const Tensor& q, const Tensor& k, const Tensor& v,
                        double scale, int64_t window) {
  const RingGeometry g = checked_geometry("lasp2h_attention", q, k, v, scale, window, false);
  const int r = sp.rank();
  // The keys this rank's queries may see: [k_lo, (r + 1) T), held by ranks w_lo..r.
  const int64_t k_hi = (r + 1) * g.T;
  const int64_t k_lo = window > 0 ? std::max<int64_t>(0, r * g.T - window + 1) : 0;
  const int64_t w_lo = k_lo / g.T, n_ranks = r + 1 - w_lo;
  // One collective: [W, B, Hkv, T, D + Dv]; its backward reduce-scatters dK | dV.
  Tensor gathered = all_gather_op(sp, cat({k, v}, 3));
  Tensor kv_seen = gathered.narrow(0, w_lo, n_ranks)
                       .permute({1, 2, 0, 3, 4})
                       .reshape({g.B, g.Hkv, n_ranks * g.T, g.D + g.Dv})
                       .narrow(2, k_lo - w_lo * g.T, k_hi - k_lo);
  return softmax_attention(q, kv_seen.narrow(3, 0, g.D), kv_seen.narrow(3, g.D, g.Dv), scale,
                           true, window, r * g.T - k_lo);
}

Tensor ring_attention(Communicator& sp, const Tensor& q, const Tensor& k, const Tensor& v,
                      double scale, int64_t window, bool zigzag) {
  const RingGeometry g = checked_geometry("ring_attention", q, k, v, scale, window, zigzag);
  std::vector<Tensor> qkv{q.detach().contiguous(), k.detach().contiguous(), v.detach().contiguous()};
  if (zigzag) qkv = relayout(sp, qkv, true);
  const RingForward fwd = ring_forward(sp, g, qkv[0], pack_kv(qkv[1], qkv[2]));
  Tensor out = zigzag ? relayout(sp, {fwd.out}, false)[0] : fwd.out;
  if (!any_requires_grad({q, k, v})) return out;
  // out itself must not be saved (its node would own it): save detached handles.
  return record("ring_attention", out, {q, k, v},
                [&sp, g, q_ring = qkv[0], last_kv = fwd.last_kv, saved_out = fwd.out.detach(),
                 lse = fwd.lse](const Tensor& g_out) {
                  Tensor dout = g_out.contiguous();
                  if (g.zigzag) dout = relayout(sp, {dout}, true)[0];
                  std::vector<Tensor> grads = ring_backward(sp, g, q_ring, last_kv, saved_out, lse, dout);
                  return g.zigzag ? relayout(sp, grads, false) : grads;
                });
}

}  // namespace skein
