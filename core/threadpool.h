// threadpool.h — the one thread pool of the process, and parallel_for over it.
// Size: set_num_threads(n), else the SKEIN_NUM_THREADS env var, else the core count.
// OpenBLAS is told the same count: BLAS calls run from the caller while the pool's
// workers sleep, so busy threads never exceed the pool size.
#pragma once
#include <cstdint>
#include <functional>

namespace skein {

void set_num_threads(int n);   // resizes the pool and the BLAS thread count
int num_threads();

// Calls fn(lo, hi) over disjoint ranges covering [begin, end). Ranges hold at least
// `grain` items (except the last); runs inline when one range would do or when called
// from inside a pool task.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace skein
