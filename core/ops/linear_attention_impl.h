// linear_attention_impl.h — private to core/ops/linear_attention*.cpp: the chunkwise kernels
// of linear_attention for one (batch, head) slice, and the per-chunk gate factors that the
// forward (linear_attention.cpp) and the backward (linear_attention_backward.cpp) share.
//
// Notation (one slice, one chunk of L rows starting at t0; s = scale):
//   Γ[r]  = Σ_{i<=r} g[t0 + i]   chunk-LOCAL inclusive cumulative log gate (restarts every chunk)
//   eq[r] = exp(Γ[r]),  ek[r] = exp(Γ[L-1] - Γ[r]),  elast = exp(Γ[L-1])     (all exponents <= 0)
//   A[r, j] = s · Σ_c q[r,c] k[j,c] exp(Γ[r,c] - Γ[j,c])   for j <= r, 0 above   (intra-chunk)
//   out[rows] = s · (q ⊙ eq) h + A v,    h' = diag(elast) h + (k ⊙ ek)^T v   (h: state entering)
// reference: Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
// Training", 2024 (chunkwise form); fla-org/flash-linear-attention fla/ops/gla/chunk.py,
// fla/ops/common/chunk_h.py (see ../shared/research/linear_attention.md §1.4–§1.5).
#pragma once
#include <cstdint>
#include <vector>

namespace skein::linear_attention_impl {

// Rows of the GLA intra block handled elementwise around the diagonal (fla's BC = 16).
constexpr int64_t kSubChunk = 16;

// Sizes shared by every (batch, head) slice.
struct Dims {
  int64_t T = 0, Dk = 0, Dv = 0;  // sequence length, key and value head dims
  int64_t C = 64;                 // chunk length
  double scale = 1.0;
  bool vector_gate = false;       // GLA gates [T, Dk] per slice; else one log decay per head
};

// One (batch, head) slice: pointers to contiguous row-major rows.
template <typename T>
struct Slice {
  const T* q = nullptr;  // [T, Dk]
  const T* k = nullptr;  // [T, Dk]
  const T* v = nullptr;  // [T, Dv]
  const T* g = nullptr;  // [T, Dk] GLA log gates (vector_gate only)
  double gamma = 0;      // per-head log decay (scalar gate; 0 means no decay)
};

// The gate factors of one chunk. load() fills them; intra() / intra_backward() apply the
// intra-chunk decay mask. Scalar gate: Γ[r] = (r+1)·gamma, mask exp((r-j)·gamma), one GEMM.
// Vector (GLA) gate, fla's secondary chunking, every exponent <= 0: rows are cut into
// sub-blocks of kSubChunk; sub-block [i0, i1) meets the columns j < i0 in one GEMM of
// (q ⊙ exp(Γ[r] - Γ[i0])) (k ⊙ exp(Γ[i0] - Γ[j]))^T (reference point Γ[i0], its first row);
// the diagonal sub-block is done elementwise with running products of exp(g) <= 1.
template <typename T>
class Chunk {
 public:
  explicit Chunk(const Dims& d);
  void load(const Slice<T>& s, int64_t t0, int64_t L);
  // A: [L, L] (row stride L) <- s · masked q k^T, zero above the diagonal.
  void intra(T* A) const;
  // P: [L, L] lower-triangular, P = s · ∂L/∂A (A carries the scale); overwritten as scratch.
  // dq[r] += Σ_j P[r,j] k[j] ⊙ exp(Γ[r]-Γ[j]);  dk[j] += Σ_r P[r,j] q[r] ⊙ exp(Γ[r]-Γ[j]).
  void intra_backward(T* P, T* dq, T* dk) const;

  int64_t L = 0;
  const T *q = nullptr, *k = nullptr, *v = nullptr;  // the chunk's rows: [L, Dk], [L, Dk], [L, Dv]
  std::vector<T> eq, ek;    // [C, Dk] exp(Γ), exp(Γ_last - Γ)
  std::vector<T> qd, kd;    // [C, Dk] q ⊙ eq, k ⊙ ek
  std::vector<T> elast;     // [Dk] exp(Γ_last)

 private:
  void sub_block_operands(int64_t i, T* qt, T* kt) const;

  Dims d_;
  std::vector<T> decay_;    // [C + 1] exp(i · gamma)                       (scalar gate)
  std::vector<double> G_;   // [C, Dk] Γ, accumulated in double             (vector gate)
  std::vector<T> a_;        // [C, Dk] exp(g)                               (vector gate)
  std::vector<T> qf_;       // [C, Dk] exp(Γ[r] - Γ[i0]), i0 = first row of r's sub-block
  std::vector<T> kf_;       // per sub-block i >= 1: [i0, Dk] exp(Γ[i0] - Γ[j]) for j < i0
  mutable std::vector<T> qt_, kt_, tmp_;  // scratch
};

// Offset (in rows) of sub-block i's key factors inside Chunk::kf_.
inline int64_t kf_row_offset(int64_t i) { return kSubChunk * i * (i - 1) / 2; }

// Forward over one slice. s0: [Dk, Dv] or nullptr (zeros). out: [T, Dv].
// final_state: [Dk, Dv]. states: [ceil(T/C), Dk, Dv] state entering each chunk, or nullptr.
template <typename T>
void forward_slice(const Dims& d, const Slice<T>& s, const T* s0, T* out, T* final_state, T* states);

// Gradients of one slice; every pointer is written in full (none accumulates).
template <typename T>
struct SliceGrads {
  T* dq = nullptr;        // [T, Dk]
  T* dk = nullptr;        // [T, Dk]
  T* dv = nullptr;        // [T, Dv]
  T* dg = nullptr;        // [T, Dk] (vector gate) or nullptr
  double* dgamma = nullptr;  // the slice's share of d(gamma) (scalar gate with decay) or nullptr
  T* ds0 = nullptr;       // [Dk, Dv]
};

// Backward over one slice: a reverse sweep over chunks carrying dS. states: from
// forward_slice. dout: [T, Dv] or nullptr (zero); dfinal: [Dk, Dv] or nullptr (zero).
template <typename T>
void backward_slice(const Dims& d, const Slice<T>& s, const T* states, const T* dout,
                    const T* dfinal, const SliceGrads<T>& g);

}  // namespace skein::linear_attention_impl
