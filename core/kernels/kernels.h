// kernels.h — the kernel interface of every op family: one table of function pointers over raw
// pointers, sizes and strides, the same for every device. core/cpu/ fills the CPU table,
// core/cuda/ the CUDA one; an op (core/ops/) decides shapes, dtypes, output allocation on the
// inputs' device and what its backward saves, then calls kernels(device).<fn>(...).
//
// Rules every implementation keeps:
//  - A kernel knows nothing of Tensor or autograd and never allocates: scratch memory comes as a
//    workspace whose size the table's *_workspace function gives.
//  - Pointers live on the table's device; scalars the op reads back (a loss, a count) are
//    one-element device buffers, so a CUDA kernel never makes the host wait.
//  - Deterministic: no float atomics; every reduction has a fixed order for given sizes, so a run
//    repeats bit for bit on the same device (the CPU split never depends on the thread count).
//  - User errors found inside a kernel (an id outside the table) throw skein::Error on the CPU;
//    the CUDA kernels clamp the access and raise the device's error flag, which the host reads
//    at its next synchronisation (core/cuda/runtime.h) and turns into an error naming the op.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include "core/dtype.h"

namespace skein::kern {

constexpr int kMaxDims = 8;

// One operand of an elementwise map: its base pointer and its strides (in elements) over the
// output's shape; a stride of 0 broadcasts.
struct Operand {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t strides[kMaxDims] = {};
};

// The elementwise ops. Unary ops read in[0]; binary in[0], in[1]; d_<f> ops compute the backward
// of a unary f: out = in[0] (the gradient) * f'(in[1] (the input)); where: in[0] != 0 ? in[1] :
// in[2]. copy converts between any two dtypes; every other op has one floating dtype throughout.
enum class MapOp : uint8_t {
  fill,                                                   // out = s0
  copy,                                                   // out = in0 (dtype conversion)
  neg, exp, log, sqrt, rsqrt, pow, tanh, sigmoid, silu, gelu, relu, elu, softplus, log_sigmoid,
  add_scalar, mul_scalar,                                 // in0 + s0, in0 * s0
  dropout_mask,                                           // in0 >= s0 ? s1 : 0
  add, sub, mul, div,
  axpy,                                                   // in0 + s0 * in1
  d_log, d_sqrt, d_rsqrt, d_pow, d_tanh, d_sigmoid, d_silu, d_gelu, d_relu, d_elu, d_softplus,
  d_log_sigmoid,
  where,
};
int map_arity(MapOp op);          // number of inputs
const char* map_op_name(MapOp op);

struct MapArgs {
  MapOp op = MapOp::fill;
  int ndim = 0;                   // 0 = a single element
  int64_t shape[kMaxDims] = {};   // the output's shape
  Operand out;
  Operand in[3];
  double s0 = 0, s1 = 0;          // scalar parameters (fill value, exponent, alpha, p, keep)
};

enum class ReduceOp : uint8_t { sum, max, logsumexp };

// C[b] = alpha * op(A[b]) · op(B[b]) + beta * C[b] for b < batch, row-major; op = transpose when
// the flag is set (never a copy). A stride of 0 shares one matrix across the batch.
struct GemmArgs {
  DType dtype = DType::f32;
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  double alpha = 1, beta = 0;
  const void* A = nullptr; int64_t lda = 0, stride_a = 0;
  const void* B = nullptr; int64_t ldb = 0, stride_b = 0;
  void* C = nullptr; int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
};

// Softmax attention over contiguous q: [B, H, Tq, D], k: [B, Hkv, Tk, D], v: [B, Hkv, Tk, Dv]
// (query head h reads kv head h / (H / Hkv)). Query i sits at position off + i, key j at j; key j
// is seen when (!causal || j <= off + i) && (window <= 0 || off + i - j < window). A query that
// sees no key outputs 0 with log-sum-exp -inf and gets 0 gradient.
struct AttentionArgs {
  DType dtype = DType::f32;
  int64_t B = 0, H = 0, Hkv = 0, Tq = 0, Tk = 0, D = 0, Dv = 0;
  double scale = 1;
  bool causal = true;
  int64_t window = 0, off = 0;
};

struct KernelTable {
  Device device = Device::cpu;

  // ---- map: N-ary strided elementwise with broadcast ----
  void (*map)(const MapArgs& a) = nullptr;

  // ---- reduce: x contiguous [outer, R, inner] -> out [outer, inner] ----
  // argmax (i64 [outer, inner], ReduceOp::max only) may be null; the first maximum wins, nan wins.
  void (*reduce)(ReduceOp op, DType dt, const void* x, void* out, int64_t* argmax, int64_t outer,
                 int64_t R, int64_t inner) = nullptr;
  // gin: [outer, R, inner] = 0 except gin[o, idx[o, i], i] = g[o, i] (max's backward).
  void (*put_along)(DType dt, const void* g, const int64_t* idx, void* gin, int64_t outer,
                    int64_t R, int64_t inner) = nullptr;

  // ---- scan: inclusive cumulative sum of x: [outer, R, inner] along R (double accumulator) ----
  void (*cumsum)(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner,
                 bool reverse) = nullptr;

  // ---- batched GEMM (BLAS / cuBLAS) ----
  void (*gemm)(const GemmArgs& a) = nullptr;

  // ---- row-fused ops over contiguous [rows, n] ----
  void (*softmax_fwd)(DType dt, const void* x, void* y, int64_t rows, int64_t n, bool log) = nullptr;
  // dx = y * (g - Σ g y)  (softmax) or g - exp(y) Σ g  (log_softmax, y = log-probabilities)
  void (*softmax_bwd)(DType dt, const void* g, const void* y, void* dx, int64_t rows, int64_t n,
                      bool log) = nullptr;
  // x: [N, V], targets: [N] i64. lse: [N]; loss: one element (mean over counted rows, 0 if none);
  // count: one i64 element (rows whose target != ignore_index).
  void (*cross_entropy_fwd)(DType dt, const void* x, const int64_t* targets, void* lse, void* loss,
                            int64_t* count, int64_t N, int64_t V, int64_t ignore_index) = nullptr;
  // dx = (softmax(x) - onehot) * g / count; g: one element (the loss gradient).
  void (*cross_entropy_bwd)(DType dt, const void* x, const int64_t* targets, const void* lse,
                            const void* g, const int64_t* count, void* dx, int64_t N, int64_t V,
                            int64_t ignore_index) = nullptr;
  // y = x * rstd * gain, rstd = rsqrt(mean(x²) + eps); x, y: [rows, D], gain: [D], rstd: [rows].
  void (*rms_norm_fwd)(DType dt, const void* x, const void* gain, void* y, void* rstd,
                       int64_t rows, int64_t D, double eps) = nullptr;
  size_t (*rms_norm_bwd_workspace)(DType dt, int64_t rows, int64_t D) = nullptr;
  // dx: [rows, D] and dgain: [D], either may be null (not needed).
  void (*rms_norm_bwd)(DType dt, const void* x, const void* gain, const void* rstd, const void* dy,
                       void* dx, void* dgain, void* workspace, int64_t rows, int64_t D) = nullptr;
  // x, y: [rows = outer * T, D]; row r sits at position pos_offset + r % T, pair i rotates by
  // (pos_offset + r % T) * inv_freq[i] and is scaled by `scale`; inv_freq: [D/2] f64 on the
  // device; sign -1 rotates back (the transpose, for backward).
  void (*rope)(DType dt, const void* x, void* y, int64_t rows, int64_t T, int64_t D, const double* inv_freq,
               double scale, int64_t pos_offset, double sign) = nullptr;
  // y = x / sqrt(Σ x² + eps) per row of [rows, D]; norm: [rows].
  void (*l2_normalize_fwd)(DType dt, const void* x, void* y, void* norm, int64_t rows, int64_t D,
                           double eps) = nullptr;
  void (*l2_normalize_bwd)(DType dt, const void* g, const void* y, const void* norm, void* dx,
                           int64_t rows, int64_t D) = nullptr;

  // ---- rows by index ----
  // out[r] = w[ids[r]]; w: [V, D], ids: [n] i64, out: [n, D]. ids outside [0, V) are an error.
  void (*gather_rows)(DType dt, const void* w, const int64_t* ids, void* out, int64_t n, int64_t D,
                      int64_t V) = nullptr;
  // out: [n_rows, D] = Σ over r with ids[r] == row of src[r], summed in r order (deterministic);
  // out is fully written (rows no id names are 0).
  size_t (*scatter_rows_workspace)(int64_t n, int64_t n_rows) = nullptr;
  void (*scatter_rows)(DType dt, const void* src, const int64_t* ids, void* out, void* workspace,
                       int64_t n, int64_t D, int64_t n_rows) = nullptr;

  // ---- random: Philox-4x32-10 blocks base_block, base_block + 1, ... of (seed) ----
  // Element i comes from word i % 4 of block base_block + i / 4: the same numbers on every device.
  void (*philox_uniform)(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base_block,
                         double low, double high) = nullptr;
  void (*philox_normal)(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base_block) = nullptr;

  // ---- optimizer: AdamW over one contiguous parameter [n] ----
  void (*adamw)(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double b1,
                double b2, double eps, double step_size, double bc2_sqrt, double decay_mul) = nullptr;
  // Σ x² of a contiguous [n] buffer, in double, into out (one f64 element on the device).
  void (*sum_squares)(DType dt, const void* x, double* out, int64_t n) = nullptr;

  // ---- softmax attention (flash-style: the Tq x Tk scores are never stored) ----
  // out: [B, H, Tq, Dv], lse: [B, H, Tq] (log-sum-exp of each row's visible scaled scores).
  void (*attention_fwd)(const AttentionArgs& a, const void* q, const void* k, const void* v,
                        void* out, void* lse) = nullptr;
  size_t (*attention_bwd_workspace)(const AttentionArgs& a) = nullptr;
  // From the final out and lse and dout: [B, H, Tq, Dv]: dq [B, H, Tq, D] and, per QUERY head,
  // dk [B, H, Tk, D] and dv [B, H, Tk, Dv] (the op sums a kv head's group); all fully written.
  void (*attention_bwd)(const AttentionArgs& a, const void* q, const void* k, const void* v,
                        const void* out, const void* lse, const void* dout, void* dq, void* dk,
                        void* dv, void* workspace) = nullptr;
  // (out, lse) <- the attention over the keys of both, row by row: lse' = log(e^lse + e^blse),
  // out' = e^(lse - lse') out + e^(blse - lse') bout. out, bout: [rows, dv]; lse, blse: [rows].
  void (*attention_merge)(DType dt, void* out, void* lse, const void* bout, const void* blse,
                          int64_t rows, int64_t dv) = nullptr;
};

// Every entry of KernelTable as X(member, implementation): core/cpu/cpu_kernels.h and
// core/cuda/cuda_kernels.h declare the implementations from it (with the member's signature),
// core/cpu/table.cpp and core/cuda/table.cu fill their tables from it, and the coverage test
// checks every entry is set. A new entry goes here and in KernelTable, nowhere else.
#define SKEIN_KERNEL_ENTRIES(X)                                                                  \
  X(map, map) X(reduce, reduce) X(put_along, put_along) X(cumsum, cumsum) X(gemm, gemm_batched) \
  X(softmax_fwd, softmax_fwd) X(softmax_bwd, softmax_bwd) X(cross_entropy_fwd, cross_entropy_fwd) \
  X(cross_entropy_bwd, cross_entropy_bwd) X(rms_norm_fwd, rms_norm_fwd)                          \
  X(rms_norm_bwd_workspace, rms_norm_bwd_workspace) X(rms_norm_bwd, rms_norm_bwd) X(rope, rope)  \
  X(l2_normalize_fwd, l2_normalize_fwd) X(l2_normalize_bwd, l2_normalize_bwd)                    \
  X(gather_rows, gather_rows) X(scatter_rows_workspace, scatter_rows_workspace)                  \
  X(scatter_rows, scatter_rows) X(philox_uniform, philox_uniform) X(philox_normal, philox_normal) \
  X(adamw, adamw) X(sum_squares, sum_squares) X(attention_fwd, attention_fwd)                    \
  X(attention_bwd_workspace, attention_bwd_workspace) X(attention_bwd, attention_bwd)            \
  X(attention_merge, attention_merge)

// Every KernelTable member is in the list (the table is its device plus one pointer per entry).
#define SKEIN_COUNT_KERNEL(member, impl) +1
static_assert(sizeof(KernelTable) == sizeof(void*) * (1 SKEIN_KERNEL_ENTRIES(SKEIN_COUNT_KERNEL)),
              "a KernelTable member is missing from SKEIN_KERNEL_ENTRIES");
#undef SKEIN_COUNT_KERNEL

// Declares `impl` as a function with the signature of KernelTable::member.
#define SKEIN_DECLARE_KERNEL(member, impl) \
  std::remove_pointer_t<decltype(::skein::kern::KernelTable::member)> impl;

// The table of a device; throws skein::Error naming the device when it has none (a build without
// CUDA, or no GPU visible).
const KernelTable& kernels(Device d);
const KernelTable& cpu_kernels();

}  // namespace skein::kern
