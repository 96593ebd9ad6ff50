// bf16.h — bfloat16 as raw bits (the upper half of an IEEE f32) and its conversions: the one
// place every bf16 user (the Tensor dtype, the converting copy kernels of every device, the bf16
// GEMM, checkpoints, safetensors) takes them from. Host and device (CUDA) inline functions.
// reference: Intel, "BFLOAT16 — Hardware Numerics Definition", 2018 (round-to-nearest-even).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SKEIN_BF16_HD __host__ __device__
#else
#define SKEIN_BF16_HD
#endif

namespace skein {

// bf16's storage type: its bits. No arithmetic is defined on it; widen to f32 first.
using bf16 = uint16_t;

SKEIN_BF16_HD inline uint32_t bf16_f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}

// Round-to-nearest-even; NaN stays NaN (quiet, sign kept), ±inf and ±0 are exact; finite values
// past the largest bf16 round to ±inf; f32 subnormals round like any other value.
SKEIN_BF16_HD inline bf16 f32_to_bf16(float x) {
  const uint32_t u = bf16_f32_bits(x);
  // Add 0x7fff plus the lowest kept bit; a carry into the exponent is right (it reaches inf
  // past the largest finite bf16). A NaN keeps its upper half, made quiet. (A select, not a
  // branch, so loops over arrays vectorise.)
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x0040u;
  return static_cast<bf16>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// Exact.
SKEIN_BF16_HD inline float bf16_to_f32(bf16 x) {
  const uint32_t u = static_cast<uint32_t>(x) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// Contiguous runs (vectorise: the NaN test is a select).
void f32_to_bf16(const float* in, bf16* out, int64_t n);
void bf16_to_f32(const bf16* in, float* out, int64_t n);

}  // namespace skein
