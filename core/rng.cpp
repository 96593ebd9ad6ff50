// rng.cpp — Philox-4x32-10 and the tensor draws built on it (see rng.h).
#include "core/rng.h"
#include <cmath>
#include "core/threadpool.h"

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

namespace {

std::array<uint32_t, 4> block(uint64_t seed, uint64_t index) {
  return philox4x32({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0, 0},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

// Fills t with f(words of block, lane) where element i uses block base + i/4, lane i%4.
template <typename F>
Tensor draw(const Shape& shape, Generator& gen, DType dtype, const char* op, F f) {
  Tensor t = Tensor::empty(shape, dtype);
  int64_t n = t.numel();
  uint64_t base = gen.advance(static_cast<uint64_t>((n + 3) / 4));
  uint64_t seed = gen.seed();
  SKEIN_DISPATCH_FLOAT(dtype, op, [&] {
    scalar_t* p = t.data<scalar_t>();
    parallel_for(0, (n + 3) / 4, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        auto w = block(seed, base + static_cast<uint64_t>(b));
        for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j)
          p[b * 4 + j] = static_cast<scalar_t>(f(w, static_cast<int>(j)));
      }
    });
  });
  return t;
}

}  // namespace

Tensor randn(const Shape& shape, Generator& gen, DType dtype) {
  // Box-Muller on word pairs (0,1) and (2,3): lanes 0/1 from the first pair, 2/3 the second.
  return draw(shape, gen, dtype, "randn", [](const std::array<uint32_t, 4>& w, int lane) {
    int pair = lane / 2;
    double u1 = u32_to_unit(w[2 * pair]), u2 = u32_to_unit(w[2 * pair + 1]);
    double r = std::sqrt(-2.0 * std::log(u1));
    double a = 6.283185307179586 * u2;
    return lane % 2 == 0 ? r * std::cos(a) : r * std::sin(a);
  });
}

Tensor uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  SKEIN_CHECK(high > low, "uniform: need high > low, got [", low, ", ", high, ")");
  return draw(shape, gen, dtype, "uniform", [&](const std::array<uint32_t, 4>& w, int lane) {
    return low + (high - low) * (static_cast<double>(w[lane]) * (1.0 / 4294967296.0));
  });
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
