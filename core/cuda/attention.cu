// attention.cu — the CUDA softmax-attention kernels (core/kernels/kernels.h): a flash-style
// forward (online softmax over tiles of 32 keys; the Tq x Tk scores never leave shared memory),
// the recompute backward from the saved log-sum-exp in two deterministic passes (dq per query
// tile; dk, dv per key tile — each output owned by one block, no atomics), and the merge of two
// blocks' (out, lse) for Ring Attention. A warp owns four query rows (forward, dq) or four keys
// (dk, dv); a lane owns one key (or one query) of the tile while scores are formed and a column
// of the head dim while they are applied; warp reductions use a fixed butterfly, so results
// repeat bit for bit. CUDA cores in the input's dtype (f32 / f64): the correctness-first
// version; the tensor-core kernels of issue 11 replace it behind the same table entries.
// reference: Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
//            Partitioning", 2023 — Algorithm 1 (forward) and Algorithm 2 (backward).
#include <cmath>
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"
#include "core/error.h"

namespace skein::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kBlockThreads = 32 * kWarpsPerBlock;
constexpr int kPerWarp = 4;                              // rows (or keys) a warp owns
constexpr int kTileRows = kWarpsPerBlock * kPerWarp;     // 16 query rows / keys per block
constexpr int kTile = 32;                                // keys (or queries) per inner tile

// The visibility rule of kernels.h: query i at position off + i, key j at j.
struct Vis {
  bool causal;
  int64_t window, off;
  __device__ bool sees(int64_t i, int64_t j) const {
    const int64_t p = off + i;
    return (!causal || j <= p) && (window <= 0 || p - j < window);
  }
};
__device__ int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }
// Keys [lo, hi) that any of queries [i0, i1) may see.
__device__ void key_range(const Vis& v, int64_t i0, int64_t i1, int64_t Tk, int64_t& lo, int64_t& hi) {
  lo = v.window > 0 ? clamp64(v.off + i0 - v.window + 1, 0, Tk) : 0;
  hi = v.causal ? clamp64(v.off + i1, 0, Tk) : Tk;
  if (hi < lo) hi = lo;
}
// Queries [lo, hi) that may see any of keys [j0, j1).
__device__ void query_range(const Vis& v, int64_t j0, int64_t j1, int64_t Tq, int64_t& lo, int64_t& hi) {
  lo = v.causal ? clamp64(j0 - v.off, 0, Tq) : 0;
  hi = v.window > 0 ? clamp64(j1 - 1 + v.window - v.off, 0, Tq) : Tq;
  if (hi < lo) hi = lo;
}

__device__ inline float ex(float x) { return expf(x); }
__device__ inline double ex(double x) { return exp(x); }
__device__ inline float lg(float x) { return logf(x); }
__device__ inline double lg(double x) { return log(x); }
template <typename T> __device__ T ninf() { return -INFINITY; }

template <typename T>
__device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename T>
__device__ T warp_max(T v) {
  for (int o = 16; o > 0; o /= 2) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Shapes every kernel reads (kernels.h's AttentionArgs without the dtype).
struct Geo {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  double scale;
  Vis vis;
  __device__ int64_t kv_head(int64_t bh) const { return (bh / H) * Hkv + (bh % H) / (H / Hkv); }
};

// One block: query rows [i0, i0 + 16) of head bh (blockIdx.x = tile * BH + bh).
template <typename T>
__global__ void fwd_kernel(Geo g, const T* q, const T* k, const T* v, T* out, T* lse) {
  extern __shared__ unsigned char smem[];
  const int64_t D = g.D, Dv = g.Dv, ldk = D + 1, BH = g.B * g.H;
  T* qs = reinterpret_cast<T*>(smem);     // [16, D]
  T* ks = qs + kTileRows * D;              // [32, D + 1]
  T* vs = ks + kTile * ldk;                // [32, Dv]
  T* acc = vs + kTile * Dv;                // [16, Dv]
  T* ps = acc + kTileRows * Dv;            // [16, 32]
  const int64_t bh = blockIdx.x % BH, i0 = (blockIdx.x / BH) * kTileRows;
  const int64_t nq = min(static_cast<int64_t>(kTileRows), g.Tq - i0), kvh = g.kv_head(bh);
  const T* kh = k + kvh * g.Tk * D;
  const T* vh = v + kvh * g.Tk * Dv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t x = threadIdx.x; x < nq * D; x += blockDim.x) qs[x] = q[(bh * g.Tq + i0) * D + x];
  for (int64_t x = threadIdx.x; x < kTileRows * Dv; x += blockDim.x) acc[x] = T(0);
  T m[kPerWarp], l[kPerWarp];
#pragma unroll
  for (int rr = 0; rr < kPerWarp; ++rr) m[rr] = ninf<T>(), l[rr] = T(0);
  int64_t klo, khi;
  key_range(g.vis, i0, i0 + nq, g.Tk, klo, khi);
  const T scale = static_cast<T>(g.scale);
  for (int64_t j0 = klo; j0 < khi; j0 += kTile) {
    const int64_t nk = min(static_cast<int64_t>(kTile), khi - j0);
    __syncthreads();  // the previous tile is consumed
    for (int64_t x = threadIdx.x; x < nk * D; x += blockDim.x) ks[(x / D) * ldk + x % D] = kh[j0 * D + x];
    for (int64_t x = threadIdx.x; x < nk * Dv; x += blockDim.x) vs[x] = vh[j0 * Dv + x];
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kPerWarp; ++rr) {
      const int r = warp * kPerWarp + rr;
      if (r >= nq) break;
      T s = ninf<T>();
      if (lane < nk && g.vis.sees(i0 + r, j0 + lane)) {
        T d = 0;
        for (int64_t c = 0; c < D; ++c) d += qs[r * D + c] * ks[lane * ldk + c];
        s = d * scale;
      }
      const T m_new = fmax(m[rr], warp_max(s));
      if (m_new == ninf<T>()) continue;  // nothing seen yet, nor in this tile (warp-uniform)
      const T p = s == ninf<T>() ? T(0) : ex(s - m_new);
      const T alpha = m[rr] == ninf<T>() ? T(0) : ex(m[rr] - m_new);
      l[rr] = l[rr] * alpha + warp_sum(p);
      m[rr] = m_new;
      ps[r * kTile + lane] = p;
      __syncwarp();
      for (int64_t c = lane; c < Dv; c += 32) {
        T a = acc[r * Dv + c] * alpha;
        for (int64_t jj = 0; jj < nk; ++jj) a += ps[r * kTile + jj] * vs[jj * Dv + c];
        acc[r * Dv + c] = a;
      }
      __syncwarp();
    }
  }
#pragma unroll
  for (int rr = 0; rr < kPerWarp; ++rr) {
    const int r = warp * kPerWarp + rr;
    if (r >= nq) break;
    const int64_t row = bh * g.Tq + i0 + r;
    const T inv = l[rr] == T(0) ? T(0) : T(1) / l[rr];
    for (int64_t c = lane; c < Dv; c += 32) out[row * Dv + c] = acc[r * Dv + c] * inv;
    if (lane == 0) lse[row] = l[rr] == T(0) ? ninf<T>() : m[rr] + lg(l[rr]);
  }
}

// drow[r] = Σ_c dout[r, c] out[r, c] (double accumulator, one warp per row).
template <typename T>
__global__ void row_dot_kernel(const T* dout, const T* out, T* drow, int64_t rows, int64_t dv) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // whole warps leave together (blockDim is a multiple of 32)
  double s = 0;
  for (int64_t c = lane; c < dv; c += 32) s += static_cast<double>(dout[r * dv + c]) * out[r * dv + c];
  s = warp_sum(s);
  if (lane == 0) drow[r] = static_cast<T>(s);
}

// dq for query rows [i0, i0 + 16) of head bh: dq = scale · Σ_j dS_ij k_j,
// dS = P ⊙ (dO Vᵀ - drow), P = exp(scale · q kᵀ - lse).
template <typename T>
__global__ void dq_kernel(Geo g, const T* q, const T* k, const T* v, const T* lse, const T* dout,
                          const T* drow, T* dq) {
  extern __shared__ unsigned char smem[];
  const int64_t D = g.D, Dv = g.Dv, ldk = D + 1, ldv = Dv + 1, BH = g.B * g.H;
  T* qs = reinterpret_cast<T*>(smem);     // [16, D]
  T* dos = qs + kTileRows * D;             // [16, Dv]
  T* ks = dos + kTileRows * Dv;            // [32, D + 1]
  T* vs = ks + kTile * ldk;                // [32, Dv + 1]
  T* dqa = vs + kTile * ldv;               // [16, D]
  T* dss = dqa + kTileRows * D;            // [16, 32]
  const int64_t bh = blockIdx.x % BH, i0 = (blockIdx.x / BH) * kTileRows;
  const int64_t nq = min(static_cast<int64_t>(kTileRows), g.Tq - i0), kvh = g.kv_head(bh);
  const T* kh = k + kvh * g.Tk * D;
  const T* vh = v + kvh * g.Tk * Dv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t x = threadIdx.x; x < nq * D; x += blockDim.x) qs[x] = q[(bh * g.Tq + i0) * D + x];
  for (int64_t x = threadIdx.x; x < nq * Dv; x += blockDim.x) dos[x] = dout[(bh * g.Tq + i0) * Dv + x];
  for (int64_t x = threadIdx.x; x < kTileRows * D; x += blockDim.x) dqa[x] = T(0);
  T L[kPerWarp], dr[kPerWarp];
#pragma unroll
  for (int rr = 0; rr < kPerWarp; ++rr) {
    const int r = warp * kPerWarp + rr;
    L[rr] = r < nq ? lse[bh * g.Tq + i0 + r] : ninf<T>();
    dr[rr] = r < nq ? drow[bh * g.Tq + i0 + r] : T(0);
  }
  int64_t klo, khi;
  key_range(g.vis, i0, i0 + nq, g.Tk, klo, khi);
  const T scale = static_cast<T>(g.scale);
  for (int64_t j0 = klo; j0 < khi; j0 += kTile) {
    const int64_t nk = min(static_cast<int64_t>(kTile), khi - j0);
    __syncthreads();
    for (int64_t x = threadIdx.x; x < nk * D; x += blockDim.x) ks[(x / D) * ldk + x % D] = kh[j0 * D + x];
    for (int64_t x = threadIdx.x; x < nk * Dv; x += blockDim.x) vs[(x / Dv) * ldv + x % Dv] = vh[j0 * Dv + x];
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kPerWarp; ++rr) {
      const int r = warp * kPerWarp + rr;
      if (r >= nq) break;
      if (L[rr] == ninf<T>()) continue;  // the row sees no key: 0 gradient (warp-uniform)
      T ds = 0;
      if (lane < nk && g.vis.sees(i0 + r, j0 + lane)) {
        T s = 0, dp = 0;
        for (int64_t c = 0; c < D; ++c) s += qs[r * D + c] * ks[lane * ldk + c];
        for (int64_t c = 0; c < Dv; ++c) dp += dos[r * Dv + c] * vs[lane * ldv + c];
        ds = ex(s * scale - L[rr]) * (dp - dr[rr]);
      }
      dss[r * kTile + lane] = ds;
      __syncwarp();
      for (int64_t c = lane; c < D; c += 32) {
        T a = dqa[r * D + c];
        for (int64_t jj = 0; jj < nk; ++jj) a += dss[r * kTile + jj] * ks[jj * ldk + c];
        dqa[r * D + c] = a;
      }
      __syncwarp();
    }
  }
  __syncthreads();
  for (int64_t x = threadIdx.x; x < nq * D; x += blockDim.x) dq[(bh * g.Tq + i0) * D + x] = dqa[x] * scale;
}

// dk, dv (per query head) for keys [j0, j0 + 16) of head bh: dv_j = Σ_i P_ij dO_i,
// dk_j = scale · Σ_i dS_ij q_i, over query tiles of 32 (a lane per query while forming P, dS).
template <typename T>
__global__ void dkv_kernel(Geo g, const T* q, const T* k, const T* v, const T* lse, const T* dout,
                           const T* drow, T* dk, T* dv) {
  extern __shared__ unsigned char smem[];
  const int64_t D = g.D, Dv = g.Dv, ldq = D + 1, ldo = Dv + 1, BH = g.B * g.H;
  T* ks = reinterpret_cast<T*>(smem);     // [16, D]
  T* vs = ks + kTileRows * D;              // [16, Dv]
  T* qs = vs + kTileRows * Dv;             // [32, D + 1]
  T* dos = qs + kTile * ldq;               // [32, Dv + 1]
  T* dka = dos + kTile * ldo;              // [16, D]
  T* dva = dka + kTileRows * D;            // [16, Dv]
  T* pb = dva + kTileRows * Dv;            // [16, 32]
  T* db = pb + kTileRows * kTile;          // [16, 32]
  T* ls = db + kTileRows * kTile;          // [32]
  T* drs = ls + kTile;                     // [32]
  const int64_t bh = blockIdx.x % BH, j0 = (blockIdx.x / BH) * kTileRows;
  const int64_t nk = min(static_cast<int64_t>(kTileRows), g.Tk - j0), kvh = g.kv_head(bh);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t x = threadIdx.x; x < nk * D; x += blockDim.x) ks[x] = k[(kvh * g.Tk + j0) * D + x];
  for (int64_t x = threadIdx.x; x < nk * Dv; x += blockDim.x) vs[x] = v[(kvh * g.Tk + j0) * Dv + x];
  for (int64_t x = threadIdx.x; x < kTileRows * D; x += blockDim.x) dka[x] = T(0);
  for (int64_t x = threadIdx.x; x < kTileRows * Dv; x += blockDim.x) dva[x] = T(0);
  int64_t qlo, qhi;
  query_range(g.vis, j0, j0 + nk, g.Tq, qlo, qhi);
  const T scale = static_cast<T>(g.scale);
  for (int64_t i0 = qlo; i0 < qhi; i0 += kTile) {
    const int64_t nr = min(static_cast<int64_t>(kTile), qhi - i0);
    const int64_t row0 = bh * g.Tq + i0;
    __syncthreads();
    for (int64_t x = threadIdx.x; x < nr * D; x += blockDim.x) qs[(x / D) * ldq + x % D] = q[row0 * D + x];
    for (int64_t x = threadIdx.x; x < nr * Dv; x += blockDim.x) dos[(x / Dv) * ldo + x % Dv] = dout[row0 * Dv + x];
    for (int64_t x = threadIdx.x; x < nr; x += blockDim.x) ls[x] = lse[row0 + x], drs[x] = drow[row0 + x];
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kPerWarp; ++kk) {
      const int key = warp * kPerWarp + kk;
      if (key >= nk) break;
      T p = 0, ds = 0;
      if (lane < nr && ls[lane] != ninf<T>() && g.vis.sees(i0 + lane, j0 + key)) {
        T s = 0, dp = 0;
        for (int64_t c = 0; c < D; ++c) s += qs[lane * ldq + c] * ks[key * D + c];
        for (int64_t c = 0; c < Dv; ++c) dp += dos[lane * ldo + c] * vs[key * Dv + c];
        p = ex(s * scale - ls[lane]);
        ds = p * (dp - drs[lane]);
      }
      pb[key * kTile + lane] = p;
      db[key * kTile + lane] = ds;
      __syncwarp();
      for (int64_t c = lane; c < Dv; c += 32) {
        T a = dva[key * Dv + c];
        for (int64_t r = 0; r < nr; ++r) a += pb[key * kTile + r] * dos[r * ldo + c];
        dva[key * Dv + c] = a;
      }
      for (int64_t c = lane; c < D; c += 32) {
        T a = dka[key * D + c];
        for (int64_t r = 0; r < nr; ++r) a += db[key * kTile + r] * qs[r * ldq + c];
        dka[key * D + c] = a;
      }
      __syncwarp();
    }
  }
  __syncthreads();
  for (int64_t x = threadIdx.x; x < nk * D; x += blockDim.x) dk[(bh * g.Tk + j0) * D + x] = dka[x] * scale;
  for (int64_t x = threadIdx.x; x < nk * Dv; x += blockDim.x) dv[(bh * g.Tk + j0) * Dv + x] = dva[x];
}

// One warp per row: (out, lse) <- merge with (bout, blse) (see kernels.h).
template <typename T>
__global__ void merge_kernel(T* out, T* lse, const T* bout, const T* blse, int64_t rows, int64_t dv) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const T L = lse[r], Lb = blse[r];
  if (Lb == ninf<T>()) return;  // the block adds nothing
  T* o = out + r * dv;
  const T* ob = bout + r * dv;
  T a = 0, b = 1, merged = Lb;  // nothing seen before: take the block
  if (L != ninf<T>()) {
    const T hi = fmax(L, Lb), lo = fmin(L, Lb);
    merged = hi + log1p(ex(lo - hi));
    a = ex(L - merged), b = ex(Lb - merged);
  }
  for (int64_t c = lane; c < dv; c += 32) o[c] = L == ninf<T>() ? ob[c] : a * o[c] + b * ob[c];
  __syncwarp();
  if (lane == 0) lse[r] = merged;
}

Geo geo(const AttentionArgs& a) {
  return Geo{a.B, a.H, a.Hkv, a.Tq, a.Tk, a.D, a.Dv, a.scale, Vis{a.causal, a.window, a.off}};
}

unsigned tiles(int64_t n, int64_t per, int64_t bh, const char* op) {
  const int64_t blocks = (n + per - 1) / per * bh;
  SKEIN_CHECK(blocks < (int64_t{1} << 31), "cuda: ", op, ": ", blocks, " thread blocks exceed the grid limit");
  return static_cast<unsigned>(blocks);
}

// Opts a kernel into `bytes` of dynamic shared memory, with an error naming the op and head dims
// when the GPU has less.
template <typename K>
void shared_memory(K kernel, size_t bytes, const AttentionArgs& a, const char* op) {
  int dev = current_device(), limit = 0;
  check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), op);
  SKEIN_CHECK(bytes <= static_cast<size_t>(limit), "cuda: ", op, ": head dims D = ", a.D, ", Dv = ", a.Dv,
              " in ", dtype_name(a.dtype), " need ", bytes, " bytes of shared memory per block; GPU ", dev,
              " has ", limit);
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

template <typename T> const T* in(const void* p) { return static_cast<const T*>(p); }
template <typename T> T* out(void* p) { return static_cast<T*>(p); }

}  // namespace

void attention_fwd(const AttentionArgs& a, const void* q, const void* k, const void* v, void* o, void* lse) {
  if (a.B * a.H * a.Tq == 0) return;
  SKEIN_DISPATCH_FLOAT(a.dtype, "softmax_attention", [&] {
    using T = scalar_t;
    const size_t bytes = sizeof(T) * (kTileRows * a.D + kTile * (a.D + 1) + kTile * a.Dv + kTileRows * a.Dv +
                                      kTileRows * kTile);
    shared_memory(fwd_kernel<T>, bytes, a, "softmax_attention");
    fwd_kernel<T><<<tiles(a.Tq, kTileRows, a.B * a.H, "softmax_attention"), kBlockThreads, bytes, stream()>>>(
        geo(a), in<T>(q), in<T>(k), in<T>(v), out<T>(o), out<T>(lse));
  });
  check_launch("softmax_attention");
}

size_t attention_bwd_workspace(const AttentionArgs& a) {
  return static_cast<size_t>(a.B * a.H * a.Tq) * dtype_size(a.dtype);  // drow
}

void attention_bwd(const AttentionArgs& a, const void* q, const void* k, const void* v, const void* o,
                   const void* lse, const void* dout, void* dq, void* dk, void* dv, void* workspace) {
  if (a.B * a.H == 0) return;
  SKEIN_DISPATCH_FLOAT(a.dtype, "softmax_attention backward", [&] {
    using T = scalar_t;
    T* drow = out<T>(workspace);
    const int64_t rows = a.B * a.H * a.Tq;
    if (rows > 0) {
      row_dot_kernel<T><<<blocks_for(rows * 32, kBlockThreads), kBlockThreads, 0, stream()>>>(
          in<T>(dout), in<T>(o), drow, rows, a.Dv);
      const size_t bq = sizeof(T) * (kTileRows * a.D + kTileRows * a.Dv + kTile * (a.D + 1) +
                                     kTile * (a.Dv + 1) + kTileRows * a.D + kTileRows * kTile);
      shared_memory(dq_kernel<T>, bq, a, "softmax_attention backward (dq)");
      dq_kernel<T><<<tiles(a.Tq, kTileRows, a.B * a.H, "softmax_attention backward"), kBlockThreads, bq,
                     stream()>>>(geo(a), in<T>(q), in<T>(k), in<T>(v), in<T>(lse), in<T>(dout), drow, out<T>(dq));
    }
    if (a.Tk > 0) {
      const size_t bk = sizeof(T) * (kTileRows * a.D + kTileRows * a.Dv + kTile * (a.D + 1) +
                                     kTile * (a.Dv + 1) + kTileRows * a.D + kTileRows * a.Dv +
                                     2 * kTileRows * kTile + 2 * kTile);
      shared_memory(dkv_kernel<T>, bk, a, "softmax_attention backward (dk, dv)");
      dkv_kernel<T><<<tiles(a.Tk, kTileRows, a.B * a.H, "softmax_attention backward"), kBlockThreads, bk,
                      stream()>>>(geo(a), in<T>(q), in<T>(k), in<T>(v), in<T>(lse), in<T>(dout), drow,
                                  out<T>(dk), out<T>(dv));
    }
  });
  check_launch("softmax_attention backward");
}

void attention_merge(DType dt, void* o, void* lse, const void* bout, const void* blse, int64_t rows, int64_t dv) {
  if (rows == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "attention_merge_", [&] {
    using T = scalar_t;
    merge_kernel<T><<<blocks_for(rows * 32, kBlockThreads), kBlockThreads, 0, stream()>>>(
        out<T>(o), out<T>(lse), in<T>(bout), in<T>(blse), rows, dv);
  });
  check_launch("attention_merge_");
}

}  // namespace skein::cuda
