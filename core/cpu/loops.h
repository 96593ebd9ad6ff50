// loops.h — the strided elementwise loop every CPU elementwise kernel runs on.
// Operands are described by (base pointer, strides over the output's shape); a stride
// of 0 broadcasts. Dimensions are collapsed where every operand allows it, the
// innermost dimension runs as a tight loop (vectorisable when its strides are 1 or 0)
// and the outer rows are split over the thread pool.
#pragma once
#include <array>
#include <cstdint>
#include "core/tensor.h"
#include "core/threadpool.h"

namespace skein::cpu {

// Broadcast strides of `t` against `out_shape` (0 in broadcast dims), aligned right.
inline Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  Shape st(out_shape.size(), 0);
  size_t lead = out_shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

// Calls row(offsets, n, inner_strides) for each innermost run; offsets[k] is operand k's
// element offset of the run's first element. Operand 0 is conventionally the output.
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
  const int64_t rows = shape_numel(sh) / inner;
  const int64_t nd = static_cast<int64_t>(sh.size()) - 1;
  parallel_for(0, rows, std::max<int64_t>(1, grain_elems / std::max<int64_t>(1, inner)),
               [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (int64_t d = nd - 1; d >= 0; --d) {
        int64_t i = rem % sh[d];
        rem /= sh[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * st[k][d];
      }
      row(off, inner, inner_st);
    }
  });
}

constexpr int64_t kGrain = 32768;  // elements per task: below this, threading costs more than it saves

}  // namespace skein::cpu
