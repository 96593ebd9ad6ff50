// index.cu — the CUDA kernels that move rows by index and the Philox draws.
// scatter_rows (embedding's backward) is deterministic without float atomics: the (id, position)
// pairs are sorted by id with CUB's stable radix sort, then one thread per (run of equal ids,
// column) adds the run's rows in position order — the CPU's order.
#include <cub/device/device_radix_sort.cuh>
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::cuda {
namespace {

template <typename T>
__global__ void gather_kernel(const T* w, const int64_t* ids, T* out, int64_t n, int64_t D, int64_t V, int* flag) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n * D) return;
  const int64_t r = j / D, c = j % D;
  int64_t id = ids[r];
  if (id < 0 || id >= V) {
    if (c == 0) atomicExch(flag, kIdOutOfRange);
    out[j] = T(0);
    return;
  }
  out[j] = w[id * D + c];
}

__global__ void iota_kernel(int64_t* p, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = i;
}

template <typename T>
__global__ void scatter_runs_kernel(const T* src, const int64_t* keys, const int64_t* pos, T* out, int64_t n,
                                    int64_t D, int64_t n_rows, int* flag) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n * D) return;
  const int64_t i = j / D, c = j % D;
  const int64_t key = keys[i];
  if (i > 0 && keys[i - 1] == key) return;  // not the start of a run
  if (key < 0 || key >= n_rows) {
    if (c == 0) atomicExch(flag, kIndexOutOfRange);
    return;
  }
  T acc = 0;
  for (int64_t k = i; k < n && keys[k] == key; ++k) acc += src[pos[k] * D + c];
  out[key * D + c] = acc;
}

__device__ __forceinline__ uint4 philox(uint64_t seed, uint64_t index) {
  unsigned c0 = static_cast<unsigned>(index), c1 = static_cast<unsigned>(index >> 32), c2 = 0, c3 = 0;
  unsigned k0 = static_cast<unsigned>(seed), k1 = static_cast<unsigned>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
    const unsigned n0 = static_cast<unsigned>(p1 >> 32) ^ c1 ^ k0, n1 = static_cast<unsigned>(p1);
    const unsigned n2 = static_cast<unsigned>(p0 >> 32) ^ c3 ^ k1, n3 = static_cast<unsigned>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return make_uint4(c0, c1, c2, c3);
}

__device__ __forceinline__ unsigned word(const uint4& w, int lane) {
  return lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
}

template <typename T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t base, double low, double high) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b * 4 >= n) return;
  const uint4 w = philox(seed, base + static_cast<uint64_t>(b));
  for (int j = 0; j < 4 && b * 4 + j < n; ++j)
    out[b * 4 + j] = static_cast<T>(low + (high - low) * (static_cast<double>(word(w, j)) * (1.0 / 4294967296.0)));
}

template <typename T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t base) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b * 4 >= n) return;
  const uint4 w = philox(seed, base + static_cast<uint64_t>(b));
  for (int j = 0; j < 4 && b * 4 + j < n; ++j) {
    const int pair = j / 2;
    const double u1 = (static_cast<double>(word(w, 2 * pair)) + 1.0) * (1.0 / 4294967296.0);
    const double u2 = (static_cast<double>(word(w, 2 * pair + 1)) + 1.0) * (1.0 / 4294967296.0);
    const double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
    out[b * 4 + j] = static_cast<T>(j % 2 == 0 ? r * cos(a) : r * sin(a));
  }
}

size_t cub_temp_bytes(int64_t n) {
  size_t bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                        static_cast<int64_t*>(nullptr), static_cast<const int64_t*>(nullptr),
                                        static_cast<int64_t*>(nullptr), n),
        "scatter_rows (cub sort size)");
  return bytes;
}

size_t align(size_t b) { return (b + 255) / 256 * 256; }

}  // namespace

void gather_rows(DType dt, const void* w, const int64_t* ids, void* out, int64_t n, int64_t D, int64_t V) {
  if (n * D == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "embedding", [&] {
    gather_kernel<scalar_t><<<blocks_for(n * D), kThreads, 0, stream()>>>(
        static_cast<const scalar_t*>(w), ids, static_cast<scalar_t*>(out), n, D, V, error_flag());
  });
  check_launch("embedding");
}

size_t scatter_rows_workspace(int64_t n, int64_t) {
  if (n == 0) return 0;
  return 3 * align(static_cast<size_t>(n) * sizeof(int64_t)) + align(cub_temp_bytes(n));
}

void scatter_rows(DType dt, const void* src, const int64_t* ids, void* out, void* workspace, int64_t n, int64_t D,
                  int64_t n_rows) {
  cudaStream_t s = stream();
  check(cudaMemsetAsync(out, 0, static_cast<size_t>(n_rows * D) * dtype_size(dt), s), "scatter_rows (zero)");
  if (n == 0 || D == 0) return;
  char* ws = static_cast<char*>(workspace);
  const size_t part = align(static_cast<size_t>(n) * sizeof(int64_t));
  auto* keys_out = reinterpret_cast<int64_t*>(ws);
  auto* pos_in = reinterpret_cast<int64_t*>(ws + part);
  auto* pos_out = reinterpret_cast<int64_t*>(ws + 2 * part);
  void* temp = ws + 3 * part;
  size_t temp_bytes = cub_temp_bytes(n);
  iota_kernel<<<blocks_for(n), kThreads, 0, s>>>(pos_in, n);
  check_launch("scatter_rows (positions)");
  check(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, keys_out, pos_in, pos_out, n, 0, 64, s),
        "scatter_rows (cub sort)");
  SKEIN_DISPATCH_FLOAT(dt, "scatter_rows", [&] {
    scatter_runs_kernel<scalar_t><<<blocks_for(n * D), kThreads, 0, s>>>(
        static_cast<const scalar_t*>(src), keys_out, pos_out, static_cast<scalar_t*>(out), n, D, n_rows, error_flag());
  });
  check_launch("scatter_rows");
}

void philox_uniform(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base, double low, double high) {
  if (n == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "uniform", [&] {
    uniform_kernel<scalar_t><<<blocks_for((n + 3) / 4), kThreads, 0, stream()>>>(static_cast<scalar_t*>(out), n, seed,
                                                                                base, low, high);
  });
  check_launch("uniform");
}

void philox_normal(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base) {
  if (n == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "randn", [&] {
    normal_kernel<scalar_t><<<blocks_for((n + 3) / 4), kThreads, 0, stream()>>>(static_cast<scalar_t*>(out), n, seed, base);
  });
  check_launch("randn");
}

}  // namespace skein::cuda
