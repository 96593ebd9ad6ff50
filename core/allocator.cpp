// allocator.cpp — size-class caching allocator (see allocator.h).
// Size classes: multiples of 64 bytes, 4 classes per power of two above 256 (≤ 25% slack).
#include "core/allocator.h"
#include <sys/resource.h>
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>
#include "core/error.h"

namespace skein {
double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}
}  // namespace skein

namespace skein::cpu_allocator {
namespace {

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> blocks
  AllocatorStats st;
};
Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destructors
  return *c;
}

size_t size_class(size_t n) {
  if (n <= 64) return 64;
  size_t p = 64;
  while (p * 2 < n) p *= 2;       // p < n <= 2p
  size_t step = std::max<size_t>(64, p / 4);  // multiples of 64, as aligned_alloc requires
  return (n + step - 1) / step * step;
}

}  // namespace

void* allocate(size_t nbytes) {
  size_t cls = size_class(nbytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  void* p = nullptr;
  auto it = c.free_lists.find(cls);
  if (it != c.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    c.st.cache_hits++;
  } else {
    p = std::aligned_alloc(64, cls);
    if (!p) throw Error(detail::concat("cpu allocator: out of memory allocating ", cls, " bytes (",
                                       c.st.bytes_reserved, " bytes already reserved)"));
    c.st.system_allocs++;
    c.st.bytes_reserved += static_cast<int64_t>(cls);
  }
  c.st.bytes_live += static_cast<int64_t>(cls);
  c.st.live_blocks++;
  if (c.st.bytes_live > c.st.bytes_peak) c.st.bytes_peak = c.st.bytes_live;
  return p;
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t cls = size_class(nbytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  try {  // never throws (it runs in Storage's destructor): a block the cache cannot list goes back
    c.free_lists[cls].push_back(p);
  } catch (...) {
    std::free(p);
    c.st.bytes_reserved -= static_cast<int64_t>(cls);
  }
  c.st.bytes_live -= static_cast<int64_t>(cls);
  c.st.live_blocks--;
  SKEIN_ASSERT(c.st.bytes_live >= 0 && c.st.live_blocks >= 0, "allocator counters went negative");
}

AllocatorStats stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().st;
}

void reset_peak() {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().st.bytes_peak = cache().st.bytes_live;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [cls, blocks] : c.free_lists) {
    for (void* p : blocks) std::free(p);
    c.st.bytes_reserved -= static_cast<int64_t>(cls * blocks.size());
    blocks.clear();
  }
}

}  // namespace skein::cpu_allocator
