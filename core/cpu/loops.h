// loops.h — the strided elementwise loop every CPU elementwise kernel runs on, and the
// vectorisable building blocks of the CPU kernels (exp on floats, lane-wise reductions).
// Operands are described by (base pointer, strides over the output's shape); a stride
// of 0 broadcasts. Dimensions are collapsed where every operand allows it, the
// innermost dimension runs as a tight loop (vectorisable when its strides are 1 or 0),
// long runs are cut into fixed pieces, and rows x pieces are split over the thread pool.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include "core/tensor.h"
#include "core/threadpool.h"

namespace skein::cpu {

constexpr int64_t kGrain = 32768;  // elements per task: below this, threading costs more than it saves
// Runs longer than this are cut into pieces of exactly this many elements (the last one
// shorter). Fixed, so which elements share a piece never depends on the thread count;
// a multiple of 64 elements, so pieces keep the run's alignment.
constexpr int64_t kPiece = 16384;

// Calls row(offsets, n, inner_strides) for each piece of each innermost run; offsets[k] is
// operand k's element offset of the piece's first element. Operand 0 is conventionally
// the output. A contiguous tensor is one long run: its pieces are what the pool splits.
template <size_t N, typename Row>
void for_each_row(const Shape& shape, std::array<Shape, N> strides, int64_t grain_elems, Row row) {
  if (shape_numel(shape) == 0) return;
  // Collapse adjacent dims that are contiguous with each other for every operand.
  Shape sh;
  std::array<Shape, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sh.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sh.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sh.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  if (sh.empty()) {  // a single element
    sh.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  const int64_t inner = sh.back();
  std::array<int64_t, N> inner_st;
  for (size_t k = 0; k < N; ++k) inner_st[k] = st[k].back();
  const int64_t piece = std::min(inner, kPiece);
  const int64_t pieces = (inner + piece - 1) / piece;
  const int64_t rows = shape_numel(sh) / inner;
  const int64_t nd = static_cast<int64_t>(sh.size()) - 1;
  parallel_for(0, rows * pieces, std::max<int64_t>(1, grain_elems / piece), [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t r = task / pieces, p = task % pieces;
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (int64_t d = nd - 1; d >= 0; --d) {
        int64_t i = rem % sh[d];
        rem /= sh[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * st[k][d];
      }
      for (size_t k = 0; k < N; ++k) off[k] += p * piece * inner_st[k];
      row(off, std::min(piece, inner - p * piece), inner_st);
    }
  });
}

// ---- vectorisable math ----------------------------------------------------------------
// exp on floats without branches or libm calls, so that loops calling it vectorise
// (16 lanes with AVX-512). Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a
// degree-6 polynomial for e^r, scaled by 2^n in two halves so that denormal results
// survive. Within 2 ulp of std::exp wherever the result is normal; exp(x) = inf above
// ln(FLT_MAX), 0 below -104, nan for nan.
// reference: S. L. Moshier, Cephes Mathematical Library, expf.c (coefficients).
inline float exp_f32(float x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = std::fma(x, 1.44269504088896341f, kMagic);
  const float n = t - kMagic;
  float r = std::fma(n, -0.693359375f, x);  // ln2 = 0.693359375 - 2.12194440e-4, hi part exact
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r + 1.0f);
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kMagic);
  const int32_t n1 = ni >> 1, n2 = ni - n1;  // 2^n = 2^n1 * 2^n2, each a normal float
  float y = p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
  y = x > 88.72283935546875f ? std::numeric_limits<float>::infinity() : y;  // also +inf
  y = x < -104.0f ? 0.0f : y;                                                // also -inf
  return y;
}

// exp_f32 for float; std::exp for double (the f64 path stays libm's, for gradchecks).
template <typename T> inline T exp_of(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_f32(x);
  else return std::exp(x);
}

// Reductions over [0, n) into kLanes independent accumulators, so that the loop
// vectorises; the lanes are combined in a fixed tree, so the result depends on n and the
// data only (never on threads). sum_lanes<Acc>(n, term) = sum of term(i), in Acc.
constexpr int kLanes = 16;

template <typename Acc, typename Term>
inline Acc sum_lanes(int64_t n, Term term) {
  Acc acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1  // kept rolled: GCC 12 then vectorises the lanes (see max_lanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  }
  for (int j = 0; i + j < n; ++j) acc[j] += term(i + j);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

// Sum over [0, n) of exp(x[i] - shift), in double (softmax denominators, log-sum-exp).
// exp goes through a small buffer: inside sum_lanes GCC 12 would not vectorise it.
template <typename T>
inline double sum_exp(const T* x, T shift, int64_t n) {
  constexpr int64_t kBuf = 256;
  T buf[kBuf];
  double s = 0;
  for (int64_t b = 0; b < n; b += kBuf) {
    const int64_t m = std::min(kBuf, n - b);
    for (int64_t i = 0; i < m; ++i) buf[i] = exp_of(x[b + i] - shift);
    s += sum_lanes<double>(m, [&](int64_t i) { return buf[i]; });
  }
  return s;
}

// Largest element of x[0, n); nan elements are skipped (as std::max(m, x) does); -inf
// when n == 0 or every element is nan.
template <typename T>
inline T max_lanes(const T* x, int64_t n) {
  T acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 1  // unrolled, GCC 12 leaves the lanes scalar; rolled, one vmaxps
    for (int j = 0; j < kLanes; ++j) acc[j] = acc[j] < x[i + j] ? x[i + j] : acc[j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] = acc[j] < x[i + j] ? x[i + j] : acc[j];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = acc[j] < acc[j + w] ? acc[j + w] : acc[j];
  return acc[0];
}

}  // namespace skein::cpu
