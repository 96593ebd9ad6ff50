// dtype.h — element types and devices, and the dispatch helpers that turn a runtime
// dtype into a template parameter. bf16 (core/bf16.h) is a storage dtype: tensors hold it,
// the converting copy (Tensor::to) and the bf16 GEMM read it, every other op refuses it by
// name through the dispatch macros below ("<op>: dtype bf16 is not supported ...").
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/bf16.h"
#include "core/error.h"

namespace skein {

enum class DType : uint8_t { f32, f64, i32, i64, bf16 };
enum class Device : uint8_t { cpu, cuda };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::bf16: return 2;
  }
  return 0;
}
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::bf16: return "bf16";
  }
  return "?";
}
inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }  // bf16 = its bits, uint16_t

}  // namespace skein

// Runs the body with `scalar_t` bound to the C++ type of a floating dtype.
#define SKEIN_DISPATCH_FLOAT(dtype, opname, ...)                                        \
  [&] {                                                                                 \
    switch (dtype) {                                                                    \
      case ::skein::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }       \
      case ::skein::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }      \
      default:                                                                          \
        throw ::skein::Error(::skein::detail::concat(opname, ": dtype ",                \
                             ::skein::dtype_name(dtype), " is not supported (need f32 or f64)")); \
    }                                                                                   \
  }()

// Runs the body with `scalar_t` bound to the C++ type of f32, f64, i32 or i64 (the arithmetic
// dtypes; bf16 has none and is refused by name: ops that read bf16 handle it themselves).
#define SKEIN_DISPATCH_ALL(dtype, opname, ...)                                          \
  [&] {                                                                                 \
    switch (dtype) {                                                                    \
      case ::skein::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }       \
      case ::skein::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }      \
      case ::skein::DType::i32: { using scalar_t = int32_t; return __VA_ARGS__(); }     \
      case ::skein::DType::i64: { using scalar_t = int64_t; return __VA_ARGS__(); }     \
      default: break;                                                                   \
    }                                                                                   \
    throw ::skein::Error(::skein::detail::concat(opname, ": dtype ",                    \
                         ::skein::dtype_name(dtype), " is not supported (bf16 is a storage " \
                         "dtype: convert with to(DType::f32) first)"));                 \
  }()
