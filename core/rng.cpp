// rng.cpp — Philox-4x32-10 and the tensor draws built on it (see rng.h).
#include "core/rng.h"
#include <cmath>
#include "core/kernels/kernels.h"

namespace skein {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(M0) * c[0];
    uint64_t p1 = static_cast<uint64_t>(M1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += W0;
    k[1] += W1;
  }
  return c;
}

// The draws run on the CPU kernel table (core/cpu/index.cpp), the same numbers the CUDA table's
// Philox kernel gives for the same (seed, block).
Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  SKEIN_CHECK(is_floating(dtype), "randn: dtype ", dtype_name(dtype), " is not supported (need f32 or f64)");
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  const uint64_t base = gen.advance(static_cast<uint64_t>((n + 3) / 4));
  kern::cpu_kernels().philox_normal(dtype, t.raw_data(), n, gen.seed(), base);
  return t;
}

Tensor uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  SKEIN_CHECK(high > low, "uniform: need high > low, got [", low, ", ", high, ")");
  SKEIN_CHECK(is_floating(dtype), "uniform: dtype ", dtype_name(dtype), " is not supported (need f32 or f64)");
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  const uint64_t base = gen.advance(static_cast<uint64_t>((n + 3) / 4));
  kern::cpu_kernels().philox_uniform(dtype, t.raw_data(), n, gen.seed(), base, low, high);
  return t;
}

Tensor randn(const Shape& shape, uint64_t seed, DType dtype) {
  Generator g(seed);
  return randn(shape, g, dtype);
}
Tensor uniform(const Shape& shape, uint64_t seed, double low, double high, DType dtype) {
  Generator g(seed);
  return uniform(shape, g, low, high, dtype);
}

}  // namespace skein
