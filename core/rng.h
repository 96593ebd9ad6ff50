// rng.h — counter-based random numbers (Philox-4x32-10). Element i of a draw depends only
// on (seed, offset + i), so results do not depend on the thread count or on how the work
// is split, and a generator's whole state is two integers (checkpointable).
// reference: Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011.
#pragma once
#include <array>
#include <cstdint>
#include "core/tensor.h"

namespace skein {

// One Philox-4x32-10 block: 4 random 32-bit words from a 128-bit counter and 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // Philox blocks consumed so far
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n blocks and returns the first block index.
  uint64_t advance(uint64_t n_blocks) { uint64_t o = offset_; offset_ += n_blocks; return o; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// Standard normal / uniform [low, high) tensors (f32 or f64).
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::f32);
Tensor uniform(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0,
               DType dtype = DType::f32);
// Convenience: a fresh generator from a seed.
Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::f32);
Tensor uniform(const Shape& shape, uint64_t seed, double low = 0.0, double high = 1.0,
               DType dtype = DType::f32);

// Uniform in (0, 1] from a 32-bit word (never 0, so log() is safe).
inline double u32_to_unit(uint32_t x) { return (static_cast<double>(x) + 1.0) * (1.0 / 4294967296.0); }

}  // namespace skein
