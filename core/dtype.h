// dtype.h — element types and devices, and the dispatch helpers that turn a runtime
// dtype into a template parameter.
#pragma once
#include <cstddef>
#include <cstdint>
#include "core/error.h"

namespace skein {

enum class DType : uint8_t { f32, f64, i32, i64 };
enum class Device : uint8_t { cpu, cuda };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
  }
  return 0;
}
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}
inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }

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

// Runs the body with `scalar_t` bound to any dtype's C++ type.
#define SKEIN_DISPATCH_ALL(dtype, opname, ...)                                          \
  [&] {                                                                                 \
    switch (dtype) {                                                                    \
      case ::skein::DType::f32: { using scalar_t = float; return __VA_ARGS__(); }       \
      case ::skein::DType::f64: { using scalar_t = double; return __VA_ARGS__(); }      \
      case ::skein::DType::i32: { using scalar_t = int32_t; return __VA_ARGS__(); }     \
      case ::skein::DType::i64: { using scalar_t = int64_t; return __VA_ARGS__(); }     \
    }                                                                                   \
    throw ::skein::Error(opname);                                                       \
  }()
