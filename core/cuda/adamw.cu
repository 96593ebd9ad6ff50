// adamw.cu — the CUDA AdamW kernel: one thread per element, the CPU kernel's operations in the
// same order with explicit fmas (core/cpu/adamw.cpp), so both devices round alike.
// reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::cuda {
namespace {

template <typename T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, T b1, T c1, T b2, T c2, T eps, T step_size,
                             T bc2_sqrt, T decay_mul) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const T gi = g[i];
  const T mi = fma(b1, m[i], c1 * gi);         // b1 m + (1 - b1) g
  const T vi = fma(b2, v[i], (c2 * gi) * gi);  // b2 v + (1 - b2) g²
  m[i] = mi;
  v[i] = vi;
  const T denom = sqrt(vi) / bc2_sqrt + eps;
  const T update = (step_size * mi) / denom;
  p[i] = fma(p[i], decay_mul, -update);        // (1 - lr wd) p - update
}

}  // namespace

void adamw(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double b1, double b2, double eps,
           double step_size, double bc2_sqrt, double decay_mul) {
  if (n == 0) return;
  SKEIN_DISPATCH_FLOAT(dt, "AdamW.step", [&] {
    using T = scalar_t;
    adamw_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(
        static_cast<T*>(p), static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), n, T(b1), T(1.0 - b1),
        T(b2), T(1.0 - b2), T(eps), T(step_size), T(bc2_sqrt), T(decay_mul));
  });
  check_launch("AdamW.step");
}

}  // namespace skein::cuda
