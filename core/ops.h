// ops.h — every tensor op of skein. Each op's shape rules, forward dispatch and
// backward live together in one file under core/ops/ (named beside each group here).
// Floating ops accept f32 and f64; ids are i32 or i64.
#pragma once
#include <vector>
#include "core/autograd.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace skein {

// ---- elementwise (core/ops/elementwise.cpp) -------------------------------------------
// Binary ops broadcast numpy-style: shapes align right; a dim of 1 stretches.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor silu(const Tensor& a);
Tensor gelu(const Tensor& a);  // exact: x * Phi(x)
Tensor relu(const Tensor& a);
Tensor elu(const Tensor& a);   // alpha = 1: x > 0 ? x : exp(x) - 1
// (core/ops/activations.cpp) stable forms for gates and key norms:
Tensor softplus(const Tensor& a);      // log(1 + e^x)
Tensor log_sigmoid(const Tensor& a);   // log σ(x) = -softplus(-x)
Tensor l2_normalize(const Tensor& a, double eps = 1e-6);  // x / sqrt(Σ x² + eps) over the last dim
// cond: bool-like (nonzero = true), broadcasts with a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }

// In place, never recorded by autograd (optimizers, gradient accumulation, init).
void fill_(Tensor& t, double value);
void copy_(Tensor& dst, const Tensor& src);          // src broadcasts to dst; dtypes may differ
void add_(Tensor dst, const Tensor& src, double alpha = 1.0);  // dst += alpha * src
void mul_(Tensor dst, double s);                      // dst *= s

// ---- reductions (core/ops/reduce.cpp) ---------------------------------------------------
Tensor sum(const Tensor& a, const Shape& dims, bool keepdim = false);
Tensor sum(const Tensor& a);  // all elements -> scalar
Tensor mean(const Tensor& a, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);  // gradient to the first max
Tensor logsumexp(const Tensor& a, int64_t dim, bool keepdim = false);
// Inclusive cumulative sum along dim: out_t = Σ_{s<=t} a_s, or with reverse Σ_{s>=t} a_s (the
// suffix sums). Backward: the scan in the other direction (core/ops/cumsum.cpp).
Tensor cumsum(const Tensor& a, int64_t dim, bool reverse = false);

// ---- matmul (core/ops/matmul.cpp, over core/cpu/gemm.h) ---------------------------------
// a: [..., M, K], b: [..., K, N] or [K, N] -> [..., M, N]. Batch dims must be equal
// (b may also be 2-D and shared by every batch). Transposed views go to BLAS as flags.
Tensor matmul(const Tensor& a, const Tensor& b);
// matmul outside the precision policy (forward and backward in the operands' dtype, never
// bf16): for the mixer state math that bf16-mixed keeps f32 (core/precision.h) when it is
// composed from ops, as LASP-2's cross-slice terms are (parallel/lasp2.cpp).
Tensor matmul_f32(const Tensor& a, const Tensor& b);

// ---- neural-net ops (core/ops/nn.cpp, core/ops/nn_fused.cpp) ----------------------------
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);
// logits: [N, V], targets: [N] ids; mean over targets != ignore_index (0 when none).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// weight: [V, D], ids: [...] -> [..., D]; backward scatter-adds into the rows used.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// src: [n, D], idx: [n] in [0, n_rows) -> [n_rows, D], rows with the same index summed.
// The conjugate of embedding() used as a row gather (core/ops/index.cpp).
Tensor scatter_rows(const Tensor& src, const Tensor& idx, int64_t n_rows);
// x: [..., D], gain: [D] -> x * rsqrt(mean(x^2) + eps) * gain; fused forward and backward.
Tensor rms_norm(const Tensor& x, const Tensor& gain, double eps = 1e-6);
// The frequencies of rope(): pair i of a head turns by position * inv_freq[i] ([D/2]) and
// both outputs are multiplied by attention_factor. RoPE scalings (linear, NTK, Llama 3, YaRN;
// layers/rope.h) change only these numbers, never the op.
struct RopeFreqs {
  std::vector<double> inv_freq;  // [D/2]
  double attention_factor = 1.0;
  static RopeFreqs plain(int64_t D, double theta);  // inv_freq[i] = theta^(-2i/D), factor 1
};
// x: [..., T, D] (D even) rotated at positions pos_offset + t, half-split pairing
// (dims i and i + D/2) — the Llama / GPT-NeoX convention; y = a (x cos + rotate_half(x) sin).
Tensor rope(const Tensor& x, const RopeFreqs& freqs, int64_t pos_offset = 0);
// rope with RopeFreqs::plain(D, theta).
Tensor rope(const Tensor& x, double theta = 10000.0, int64_t pos_offset = 0);
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when
// !training or p == 0. The mask comes from gen (Philox), so it is reproducible.
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

// ---- attention mixers (fused ops with hand-written backward) ---------------------------
// Causal softmax attention, flash-style: online softmax over key blocks (the Tq×Tk score
// matrix is never stored), backward recomputes scores from the saved row log-sum-exp.
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv].
// Grouped-query: H % Hkv == 0, query head h reads kv head h / (H / Hkv).
// Query i sits at position q_pos_offset + i (default -1 means Tk - Tq: the queries are the
// last Tq positions, as with a KV cache), key j at position j. causal: keys at positions
// <= the query's; window > 0: additionally query_pos - key_pos < window.
// (core/ops/softmax_attention.cpp)
Tensor softmax_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                         bool causal = true, int64_t window = 0, int64_t q_pos_offset = -1);

// ---- softmax attention blocks, for sequence parallelism (core/ops/softmax_attention.cpp) ----
// One (query block, key block) pair of a split sequence, with the kernels of softmax_attention;
// no autograd (parallel/softmax_sp.h wraps them). Query i sits at global position q_pos + i,
// key j at k_pos + j; causal and window act on the position difference as above.
// reference: Liu et al., "Ring Attention with Blockwise Transformers", 2023; the merge is the
// online softmax of FlashAttention-2 applied to whole blocks.
struct AttentionBlockResult {
  Tensor out;  // [B, H, Tq, Dv], normalised over this block's keys (0 where a row sees none)
  Tensor lse;  // [B, H, Tq], log-sum-exp of the row's visible scaled scores (-inf: none)
};
// q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
AttentionBlockResult attention_block_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             double scale, bool causal, int64_t window,
                                             int64_t q_pos, int64_t k_pos);
// (out, lse) <- the attention over the keys of both: lse' = log(e^lse + e^block_lse),
// out' = e^(lse - lse') out + e^(block_lse - lse') block_out, in place.
// out, block_out: [B, H, Tq, Dv]; lse, block_lse: [B, H, Tq]; all contiguous.
void attention_merge_(const Tensor& out, const Tensor& lse, const Tensor& block_out,
                      const Tensor& block_lse);
// This key block's share of the gradients, given the FINAL out and lse (merged over every key
// block the queries see) and dout: [B, H, Tq, Dv] each, lse [B, H, Tq]. Returns
// {dq [B, H, Tq, D], dk [B, Hkv, Tk, D], dv [B, Hkv, Tk, Dv]}; summing dq over the key blocks
// and dk, dv over the query blocks gives the gradients of the whole attention.
std::vector<Tensor> attention_block_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse,
                                             const Tensor& dout, double scale, bool causal,
                                             int64_t window, int64_t q_pos, int64_t k_pos);

struct LinearAttentionResult {
  Tensor out;          // [B, H, T, Dv]
  Tensor final_state;  // [B, H, Dk, Dv]
};

// Chunkwise causal linear attention with optional decay / gates (core/ops/linear_attention.cpp):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t,   o_t = scale * q_t S_t,   S_{-1} = initial_state
// q, k: [B, H, T, Dk], v: [B, H, T, Dv]
// log_gate: undefined (no decay, g = 0) | [H] (fixed per-head decay log λ_h, applied to every
//   key dim and step) | [B, H, T, Dk] (data-dependent GLA gates, every entry <= 0)
// initial_state: undefined (zeros) | [B, H, Dk, Dv]. All tensor inputs are differentiable,
// and so are both outputs. Any T (not only multiples of chunk).
LinearAttentionResult linear_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& log_gate, const Tensor& initial_state,
                                       double scale = 1.0, int64_t chunk = 64);

// The delta rule, DeltaNet and gated DeltaNet (core/ops/delta_rule.cpp):
//   S_t = a_t (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t,  o_t = scale * q_t S_t
// with a_t = exp(log_alpha_t) (gated DeltaNet; a_t = 1 when log_alpha is undefined).
// q, k: [B, H, T, Dk] (k is expected L2-normalised by the caller), v: [B, H, T, Dv],
// beta: [B, H, T] in (0, 1), log_alpha: undefined | [B, H, T] (<= 0),
// initial_state: undefined | [B, H, Dk, Dv]. All inputs and both outputs differentiable.
LinearAttentionResult delta_rule(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& beta, const Tensor& log_alpha,
                                 const Tensor& initial_state, double scale = 1.0,
                                 int64_t chunk = 64);

// ---- activation memory (core/ops/checkpoint.cpp, lm_head_ce.cpp, swiglu.cpp) -----------
// Activation recomputation: fn(inputs) runs WITHOUT recording (none of its intermediates
// are kept); backward re-runs fn with grad from the saved inputs and back-propagates through
// the re-run, so the parameters fn uses get their gradients exactly as without checkpointing.
// rngs: generators fn draws from; their states are replayed, so the re-run draws the same
// numbers (dropout masks) and the generators end where the forward left them. fn must do the
// same work both times (collectives included: every rank re-runs it in the same order).
// When no input requires grad (or grad mode is off) fn simply runs as usual.
// reference: Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016;
// Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models", 2022.
Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                  const std::vector<Generator*>& rngs = {});
// The LM head and mean cross-entropy fused and chunked over rows: loss = mean over targets !=
// ignore_index of lse(h Wᵀ)_i - (h Wᵀ)_{i, t_i}, never holding the [N, V] logits or their
// gradient (rows go through in chunks of chunk_rows; 0 picks ~16 MB of logits). When grad is
// needed the chunk's gradients dh [N, D] and dW [V, D] are formed in forward (Liger-style)
// and scaled by the incoming gradient in backward. h: [N, D], weight: [V, D], targets: [N].
Tensor lm_head_cross_entropy(const Tensor& h, const Tensor& weight, const Tensor& targets,
                             int64_t ignore_index = -100, int64_t chunk_rows = 0);
// The SwiGLU down projection with its hidden recomputed in backward: y = (silu(a) * b) w2ᵀ.
// Saves a and b only; silu(a) * b is formed again in backward (elementwise, no GEMM).
// a, b: [..., H], w2: [D, H] -> [..., D].
Tensor swiglu_down(const Tensor& a, const Tensor& b, const Tensor& w2);
// Short causal depthwise convolution over time (core/ops/short_conv.cpp), the one fla puts on
// q, k, v of DeltaNet / gated DeltaNet / MoM: y[b,t,c] = act(Σ_{j<K} w[c,j] xx[b,t+j,c]) with
// xx = [prefix; x] along time, act = SiLU or identity.
// x: [B, T, C], weight: [C, K], prefix: undefined (zeros) | [B, K-1, C] (the K-1 inputs before
// x[:, 0]: generation's carried state, or the previous sequence-parallel rank's last inputs)
// -> [B, T, C]. x, weight and prefix are differentiable.
Tensor short_conv(const Tensor& x, const Tensor& weight, const Tensor& prefix, bool silu_activation);
// The last `width` rows of [prefix; x] (x: [B, T, C], prefix: undefined (zeros) | [B, width, C])
// -> [B, width, C]: the conv state to carry after x. Differentiable.
Tensor short_conv_tail(const Tensor& x, const Tensor& prefix, int64_t width);

// ---- joining and splitting (core/ops/shape.cpp) -----------------------------------------
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
std::vector<Tensor> split(const Tensor& t, const Shape& sizes, int64_t dim);  // views
std::vector<Tensor> split(const Tensor& t, int64_t size, int64_t dim);        // equal pieces

}  // namespace skein
