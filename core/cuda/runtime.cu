// runtime.cu — the CUDA runtime of skein (see runtime.h): device, stream, cuBLAS, error flag,
// caching allocator.
#include "core/cuda/runtime.h"
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace skein::cuda {

void check(cudaError_t e, const char* op) {
  SKEIN_CHECK(e == cudaSuccess, "cuda: ", op, ": ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")");
}

void check(cublasStatus_t s, const char* op) {
  SKEIN_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuda: ", op, ": cuBLAS ", cublasGetStatusString(s));
}

namespace {
struct State {
  std::mutex mu;
  int device = 0;
  bool device_set = false;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  bool tf32 = false;
  int* error_flag = nullptr;
  // allocator
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> cached blocks
  AllocatorStats st;
};
State& state() {
  static State* s = new State();  // never destroyed: tensors may outlive static destructors
  return *s;
}

void ensure_device(State& s) {
  if (!s.device_set) {
    check(cudaSetDevice(s.device), "cudaSetDevice");
    s.device_set = true;
  }
}

// Size classes: 512-byte multiples up to 1 MiB, then 2 MiB multiples (large blocks are rarely
// the same size twice; coarse classes let them be reused).
size_t size_class(size_t n) {
  if (n == 0) return 512;
  if (n <= (1u << 20)) return (n + 511) / 512 * 512;
  const size_t two_mb = size_t{2} << 20;
  return (n + two_mb - 1) / two_mb * two_mb;
}

void release_cache_locked(State& s) {
  for (auto& [cls, blocks] : s.free_lists) {
    for (void* p : blocks) {
      cudaFree(p);
      s.st.bytes_reserved -= static_cast<int64_t>(cls);
    }
  }
  s.free_lists.clear();
}
}  // namespace

int device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int current_device() { return state().device; }

void select_device(int index) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  const int n = device_count();
  SKEIN_CHECK(index >= 0 && index < n, "device cuda:", index, ": no such GPU (", n, " visible)");
  SKEIN_CHECK(!s.stream || index == s.device, "device cuda:", index, ": this process already computes on cuda:",
              s.device, " (choose the device before the first tensor is made)");
  s.device = index;
  s.device_set = false;
  ensure_device(s);
}

cudaStream_t stream() {
  State& s = state();
  if (s.stream) return s.stream;
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.stream) {
    ensure_device(s);
    cudaStream_t st = nullptr;
    check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
    s.stream = st;
  }
  return s.stream;
}

cublasHandle_t cublas() {
  State& s = state();
  if (s.cublas) return s.cublas;
  cudaStream_t st = stream();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.cublas) {
    cublasHandle_t h = nullptr;
    check(cublasCreate(&h), "cublasCreate");
    check(cublasSetStream(h, st), "cublasSetStream");
    check(cublasSetMathMode(h, s.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    s.cublas = h;
  }
  return s.cublas;
}

void set_tf32(bool on) {
  State& s = state();
  s.tf32 = on;
  if (s.cublas) check(cublasSetMathMode(s.cublas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                      "cublasSetMathMode");
}
bool tf32() { return state().tf32; }

int* error_flag() {
  State& s = state();
  if (s.error_flag) return s.error_flag;
  cudaStream_t st = stream();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.error_flag) {
    int* p = nullptr;
    check(cudaMalloc(&p, sizeof(int)), "cudaMalloc (error flag)");
    check(cudaMemsetAsync(p, 0, sizeof(int), st), "cudaMemset (error flag)");
    s.error_flag = p;
  }
  return s.error_flag;
}

void raise_device_errors() {
  State& s = state();
  if (!s.stream) return;
  check(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
  if (!s.error_flag) return;
  int code = 0;
  check(cudaMemcpy(&code, s.error_flag, sizeof(int), cudaMemcpyDeviceToHost), "cudaMemcpy (error flag)");
  if (code == kNoError) return;
  check(cudaMemset(s.error_flag, 0, sizeof(int)), "cudaMemset (error flag)");
  switch (code) {
    case kTargetOutOfRange: throw Error("cross_entropy (cuda): a target is outside the vocabulary");
    case kIdOutOfRange: throw Error("embedding (cuda): an id is outside the table");
    case kIndexOutOfRange: throw Error("scatter_rows (cuda): an index is outside the output rows");
    default: throw Error(detail::concat("cuda: a kernel raised error code ", code));
  }
}

namespace {
struct Staging {
  void* host = nullptr;
  size_t bytes = 0;
  cudaEvent_t done = nullptr;  // recorded after the copy that last read this buffer
};
constexpr int kStagingBuffers = 4;
}  // namespace

void copy_to_device(void* dst, const void* src, size_t nbytes) {
  static Staging ring[kStagingBuffers];
  static int next = 0;
  static std::mutex mu;
  cudaStream_t st = stream();
  std::lock_guard<std::mutex> lock(mu);
  Staging& b = ring[next];
  next = (next + 1) % kStagingBuffers;
  if (b.done) check(cudaEventSynchronize(b.done), "copy host -> cuda (staging wait)");
  if (b.bytes < nbytes) {
    if (b.host) check(cudaFreeHost(b.host), "cudaFreeHost");
    b.host = nullptr;
    check(cudaHostAlloc(&b.host, nbytes, cudaHostAllocDefault), "cudaHostAlloc (staging)");
    b.bytes = nbytes;
  }
  if (!b.done) check(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming), "cudaEventCreate");
  std::memcpy(b.host, src, nbytes);
  check(cudaMemcpyAsync(dst, b.host, nbytes, cudaMemcpyHostToDevice, st), "copy host -> cuda");
  check(cudaEventRecord(b.done, st), "cudaEventRecord");
}

void* allocate(size_t nbytes) {
  State& s = state();
  const size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(s.mu);
  ensure_device(s);
  void* p = nullptr;
  auto it = s.free_lists.find(cls);
  if (it != s.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++s.st.cache_hits;
  } else {
    cudaError_t e = cudaMalloc(&p, cls);
    if (e != cudaSuccess) {  // give the cache back and try once more
      cudaGetLastError();
      if (s.stream) cudaStreamSynchronize(s.stream);
      release_cache_locked(s);
      e = cudaMalloc(&p, cls);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw Error(detail::concat("cuda: out of memory on cuda:", s.device, ": asked for ", nbytes,
                                 " bytes (", static_cast<double>(nbytes) / (1 << 20), " MiB) with ",
                                 static_cast<double>(free_b) / (1 << 20), " MiB free of ",
                                 static_cast<double>(total_b) / (1 << 20), " MiB; skein holds ",
                                 static_cast<double>(s.st.bytes_live) / (1 << 20), " MiB live (",
                                 cudaGetErrorString(e), ")"));
    }
    ++s.st.system_allocs;
    s.st.bytes_reserved += static_cast<int64_t>(cls);
  }
  s.st.bytes_live += static_cast<int64_t>(cls);
  s.st.bytes_peak = std::max(s.st.bytes_peak, s.st.bytes_live);
  ++s.st.live_blocks;
  return p;
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  State& s = state();
  const size_t cls = size_class(nbytes);
  try {
    std::lock_guard<std::mutex> lock(s.mu);
    s.free_lists[cls].push_back(p);
    s.st.bytes_live -= static_cast<int64_t>(cls);
    --s.st.live_blocks;
  } catch (...) {  // a failed push (host out of memory): hand the block straight back
    cudaFree(p);
  }
}

AllocatorStats allocator_stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.st;
}

void reset_peak() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.st.bytes_peak = s.st.bytes_live;
}

void empty_cache() {
  State& s = state();
  if (s.stream) cudaStreamSynchronize(s.stream);
  std::lock_guard<std::mutex> lock(s.mu);
  release_cache_locked(s);
}

}  // namespace skein::cuda
