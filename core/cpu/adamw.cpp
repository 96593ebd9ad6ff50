// adamw.cpp — the CPU AdamW kernel: one pass reading p, g, m, v and writing p, m, v.
// reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
#include <cmath>
#include <type_traits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "core/cpu/cpu_kernels.h"
#include "core/cpu/loops.h"
#include "core/threadpool.h"

namespace skein::cpu {
namespace {

// One thread's slice: p, g, m, v: [n] contiguous, distinct buffers; c1 = 1 - b1, c2 = 1 - b2.
template <typename T>
void adamw_range(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n,
                 T b1, T c1, T b2, T c2, T eps, T step_size, T bc2_sqrt, T decay_mul) {
  // Every multiply-add is an explicit fma, in both loops: left to itself the compiler
  // contracts a * b + c into an fma or not as it likes (-ffp-contract=fast), which would
  // make the two loops round differently.
  int64_t i = 0;
#if defined(__AVX512F__)
  // The same operations in the same order as the scalar loop below (bit-identical results).
  // Hand-written because GCC will not vectorise std::sqrt while it may set errno (-fmath-errno).
  if constexpr (std::is_same_v<T, float>) {
    const __m512 vb1 = _mm512_set1_ps(b1), vc1 = _mm512_set1_ps(c1), vb2 = _mm512_set1_ps(b2);
    const __m512 vc2 = _mm512_set1_ps(c2), veps = _mm512_set1_ps(eps), vstep = _mm512_set1_ps(step_size);
    const __m512 vbc2 = _mm512_set1_ps(bc2_sqrt), vdecay = _mm512_set1_ps(decay_mul);
    // The masked form: plain _mm512_sqrt_ps trips GCC 12's -Wmaybe-uninitialized (GCC bug 105593).
    auto sqrt16 = [](__m512 x) { return _mm512_mask_sqrt_ps(x, __mmask16(0xFFFF), x); };
    for (; i + 16 <= n; i += 16) {
      const __m512 gi = _mm512_loadu_ps(g + i);
      const __m512 mi = _mm512_fmadd_ps(vb1, _mm512_loadu_ps(m + i), _mm512_mul_ps(vc1, gi));
      const __m512 vi = _mm512_fmadd_ps(vb2, _mm512_loadu_ps(v + i), _mm512_mul_ps(_mm512_mul_ps(vc2, gi), gi));
      _mm512_storeu_ps(m + i, mi);
      _mm512_storeu_ps(v + i, vi);
      const __m512 denom = _mm512_add_ps(_mm512_div_ps(sqrt16(vi), vbc2), veps);
      const __m512 update = _mm512_div_ps(_mm512_mul_ps(vstep, mi), denom);
      _mm512_storeu_ps(p + i, _mm512_fmsub_ps(_mm512_loadu_ps(p + i), vdecay, update));
    }
  }
#endif
  for (; i < n; ++i) {
    const T gi = g[i];
    const T mi = std::fma(b1, m[i], c1 * gi);         // b1 m + (1 - b1) g
    const T vi = std::fma(b2, v[i], (c2 * gi) * gi);  // b2 v + (1 - b2) g²
    m[i] = mi;
    v[i] = vi;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    const T update = (step_size * mi) / denom;
    p[i] = std::fma(p[i], decay_mul, -update);        // (1 - lr wd) p - update
  }
}

// p, g, m, v: [n] contiguous. The scalars are computed in double and applied in T.
template <typename T>
void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, double b1, double b2, double eps,
                  double step_size, double bc2_sqrt, double decay_mul) {
  parallel_for(0, n, cpu::kGrain, [=](int64_t lo, int64_t hi) {
    adamw_range<T>(p + lo, g + lo, m + lo, v + lo, hi - lo, T(b1), T(1.0 - b1), T(b2), T(1.0 - b2),
                   T(eps), T(step_size), T(bc2_sqrt), T(decay_mul));
  });
}

}  // namespace

void adamw(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double b1, double b2,
           double eps, double step_size, double bc2_sqrt, double decay_mul) {
  SKEIN_DISPATCH_FLOAT(dt, "AdamW.step", [&] {
    adamw_kernel<scalar_t>(static_cast<scalar_t*>(p), static_cast<const scalar_t*>(g),
                           static_cast<scalar_t*>(m), static_cast<scalar_t*>(v), n, b1, b2, eps,
                           step_size, bc2_sqrt, decay_mul);
  });
}

}  // namespace skein::cpu
