// index.cpp — the CPU kernels that move rows by index (embedding's gather and its
// deterministic scatter-add) and the Philox draws (uniform, normal) that both devices share.
#include <algorithm>
#include <cmath>
#include "core/cpu/cpu_kernels.h"
#include "core/rng.h"
#include "core/threadpool.h"

namespace skein::cpu {

void gather_rows(DType dt, const void* w, const int64_t* pi, void* out, int64_t n, int64_t D, int64_t V) {
  for (int64_t i = 0; i < n; ++i)
    SKEIN_CHECK(pi[i] >= 0 && pi[i] < V, "embedding: id ", pi[i], " at position ", i,
                " is outside the table's ", V, " rows");
  SKEIN_DISPATCH_FLOAT(dt, "embedding", [&] {
    const auto* pw = static_cast<const scalar_t*>(w);
    auto* po = static_cast<scalar_t*>(out);
    parallel_for(0, n, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, D)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) std::copy(pw + pi[r] * D, pw + pi[r] * D + D, po + r * D);
    });
  });
}

size_t scatter_rows_workspace(int64_t, int64_t) { return 0; }

void scatter_rows(DType dt, const void* src, const int64_t* pi, void* out, void*, int64_t n,
                  int64_t D, int64_t n_rows) {
  for (int64_t i = 0; i < n; ++i)
    SKEIN_CHECK(pi[i] >= 0 && pi[i] < n_rows, "scatter_rows: index ", pi[i], " at ", i,
                " is outside [0, ", n_rows, ")");
  SKEIN_DISPATCH_FLOAT(dt, "scatter_rows", [&] {
    const auto* ps = static_cast<const scalar_t*>(src);
    auto* po = static_cast<scalar_t*>(out);
    std::fill(po, po + n_rows * D, scalar_t(0));
    // Split over columns so that no two threads add into the same element; rows in order.
    parallel_for(0, D, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t r = 0; r < n; ++r) {
        scalar_t* dst = po + pi[r] * D;
        const scalar_t* s = ps + r * D;
        for (int64_t c = lo; c < hi; ++c) dst[c] += s[c];
      }
    });
  });
}

namespace {
std::array<uint32_t, 4> block(uint64_t seed, uint64_t index) {
  return philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

template <typename F>
void draw(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base, const char* op, F f) {
  SKEIN_DISPATCH_FLOAT(dt, op, [&] {
    auto* p = static_cast<scalar_t*>(out);
    parallel_for(0, (n + 3) / 4, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        auto w = block(seed, base + static_cast<uint64_t>(b));
        for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j)
          p[b * 4 + j] = static_cast<scalar_t>(f(w, static_cast<int>(j)));
      }
    });
  });
}
}  // namespace

void philox_uniform(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base, double low, double high) {
  draw(dt, out, n, seed, base, "uniform", [&](const std::array<uint32_t, 4>& w, int lane) {
    return low + (high - low) * (static_cast<double>(w[lane]) * (1.0 / 4294967296.0));
  });
}

void philox_normal(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base) {
  // Box-Muller on word pairs (0,1) and (2,3): lanes 0/1 from the first pair, 2/3 the second.
  draw(dt, out, n, seed, base, "randn", [](const std::array<uint32_t, 4>& w, int lane) {
    int pair = lane / 2;
    double u1 = u32_to_unit(w[2 * pair]), u2 = u32_to_unit(w[2 * pair + 1]);
    double r = std::sqrt(-2.0 * std::log(u1));
    double a = 6.283185307179586 * u2;
    return lane % 2 == 0 ? r * std::cos(a) : r * std::sin(a);
  });
}

}  // namespace skein::cpu
