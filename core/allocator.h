// allocator.h — the caching allocator for CPU buffers. Freed blocks go back to a
// size-class free list and are handed out again, so a training step in steady state
// asks the system for nothing new. Counters say how much is live, the peak, and how
// often the system was asked.
#pragma once
#include <cstddef>
#include <cstdint>

namespace skein {

struct AllocatorStats {
  int64_t bytes_live = 0;       // bytes in blocks handed out and not yet freed (size-class rounded)
  int64_t bytes_peak = 0;       // high-water mark of bytes_live
  int64_t bytes_reserved = 0;   // bytes held from the system (live + cached)
  int64_t system_allocs = 0;    // times a block came from the system (cache miss)
  int64_t cache_hits = 0;       // times a block came from the cache
  int64_t live_blocks = 0;      // blocks handed out and not yet freed
};

// The process's peak resident set size in MiB (getrusage), beside the allocator's own peak.
double peak_rss_mb();

namespace cpu_allocator {
void* allocate(size_t nbytes);          // 64-byte aligned; never null (throws on OOM)
void deallocate(void* p, size_t nbytes);  // nbytes as given to allocate
AllocatorStats stats();
void reset_peak();
void empty_cache();                      // give cached blocks back to the system
}  // namespace cpu_allocator

}  // namespace skein
