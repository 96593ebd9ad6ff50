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

// ---- matmul (core/ops/matmul.cpp, over core/cpu/gemm.h) ---------------------------------
// a: [..., M, K], b: [..., K, N] or [K, N] -> [..., M, N]. Batch dims must be equal
// (b may also be 2-D and shared by every batch). Transposed views go to BLAS as flags.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- neural-net ops (core/ops/nn.cpp, core/ops/nn_fused.cpp) ----------------------------
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);
// logits: [N, V], targets: [N] ids; mean over targets != ignore_index (0 when none).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// weight: [V, D], ids: [...] -> [..., D]; backward scatter-adds into the rows used.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// x: [..., D], gain: [D] -> x * rsqrt(mean(x^2) + eps) * gain; fused forward and backward.
Tensor rms_norm(const Tensor& x, const Tensor& gain, double eps = 1e-6);
// x: [..., T, D] (D even) rotated at positions pos_offset + t, half-split pairing
// (dims i and i + D/2), frequency theta^(-2i/D) — the Llama / GPT-NeoX convention.
Tensor rope(const Tensor& x, double theta = 10000.0, int64_t pos_offset = 0);
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when
// !training or p == 0. The mask comes from gen (Philox), so it is reproducible.
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);

// ---- joining and splitting (core/ops/shape.cpp) -----------------------------------------
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
std::vector<Tensor> split(const Tensor& t, const Shape& sizes, int64_t dim);  // views
std::vector<Tensor> split(const Tensor& t, int64_t size, int64_t dim);        // equal pieces

}  // namespace skein
