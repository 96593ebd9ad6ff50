// threadpool.h — the one thread pool of the process, and parallel_for over it.
// Size: set_num_threads(n), else the SKEIN_NUM_THREADS env var, else the core count.
// OpenBLAS is told the same count: BLAS calls run from the caller while the pool's
// workers sleep, so busy threads never exceed the pool size.
#pragma once
#include <cstdint>
#include <functional>

namespace skein {

void set_num_threads(int n);   // resizes the pool and the BLAS thread count

// OpenBLAS's idle worker threads spin-yield for ~2^28 cycles after every GEMM, taking the
// cores skein's pool needs for the kernels between GEMMs (7% of a benchmark step). The
// timeout is read from OPENBLAS_THREAD_TIMEOUT only when OpenBLAS loads, so a program's
// main() calls this first: when the variable is unset it sets it (2^4 cycles) and
// re-executes the program once (same pid, same arguments). A user's setting is kept.
void ensure_blas_thread_timeout(char** argv);
int num_threads();

// Calls fn(lo, hi) over disjoint ranges covering [begin, end). Ranges hold at least
// `grain` items (except the last); runs inline when one range would do or when called
// from inside a pool task.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace skein
