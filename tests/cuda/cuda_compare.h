// cuda_compare.h — the CUDA-vs-CPU referee of tests/cuda: runs one differentiable function on
// CPU leaves and on CUDA copies of the same random inputs, weights the output with the same
// random W (so every output element's gradient path differs), and compares outputs and every
// input gradient by L2-relative error. Tests skip (GTEST_SKIP) where no GPU is visible.
#pragma once
#include <gtest/gtest.h>
#include <cmath>
#include <functional>
#include <vector>
#include "core/backend.h"
#include "core/kernels/kernels.h"
#include "core/ops.h"

namespace skein::cudatest {

#define SKEIN_REQUIRE_GPU() \
  if (!::skein::cuda_available()) GTEST_SKIP() << "no GPU visible (CUDA tests run on the GPU machine)"

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// f64: 1e-12, f32: 1e-5 (the tolerances), L2-relative.
inline double tolerance(DType dt) { return dt == DType::f64 ? 1e-12 : 1e-5; }

inline double rel_l2(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += x[i] * x[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

// A fresh leaf on `device` holding the values of t (a view keeps its strides: `view` re-applies
// the same view to the moved base, so strided / broadcast inputs reach the kernels as such).
struct Input {
  Tensor base;                                   // contiguous values (CPU)
  std::function<Tensor(const Tensor&)> view;     // applied after the move (identity by default)
  bool grad = true;
};

inline void compare(const char* what, const Fn& f, const std::vector<Input>& inputs, double tol_scale = 1.0) {
  std::vector<Tensor> out_grads[2];
  Tensor outs[2];
  for (int d = 0; d < 2; ++d) {
    const Device dev = d == 0 ? Device::cpu : Device::cuda;
    std::vector<Tensor> leaves, args;
    for (const Input& in : inputs) {
      Tensor leaf = in.base.to(dev).detach();
      if (in.grad && is_floating(leaf.dtype())) leaf.requires_grad_();
      leaves.push_back(leaf);
      args.push_back(in.view ? in.view(leaf) : leaf);
    }
    Tensor y = f(args);
    ASSERT_EQ(y.device(), dev) << what << ": output on the wrong device";
    outs[d] = y.detach().to(Device::cpu);
    bool any = false;
    for (const Tensor& l : leaves) any = any || l.requires_grad();
    if (any && is_floating(y.dtype())) {
      Tensor w = randn(y.shape(), 99, y.dtype()).to(dev);
      sum(mul(y, w)).backward();
    }
    for (const Tensor& l : leaves) out_grads[d].push_back(l.requires_grad() && l.grad().defined() ? l.grad().to(Device::cpu) : Tensor());
  }
  const double tol = tolerance(outs[0].dtype()) * tol_scale;
  EXPECT_EQ(outs[0].shape(), outs[1].shape()) << what;
  EXPECT_LE(rel_l2(outs[0], outs[1]), tol) << what << ": output differs (" << dtype_name(outs[0].dtype()) << ")";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &gc = out_grads[0][i], &gg = out_grads[1][i];
    EXPECT_EQ(gc.defined(), gg.defined()) << what << ": gradient " << i << " defined on one device only";
    if (gc.defined() && gg.defined()) {
      EXPECT_LE(rel_l2(gc, gg), tol) << what << ": gradient of input " << i << " differs";
    }
  }
}

inline Input plain(const Shape& s, uint64_t seed, DType dt) { return {randn(s, seed, dt), nullptr, true}; }
inline Input positive(const Shape& s, uint64_t seed, DType dt) { return {add(exp(randn(s, seed, dt)), 0.1), nullptr, true}; }
inline Input transposed(const Shape& s, uint64_t seed, DType dt) {  // s is the view's shape (last two swapped)
  Shape b = s;
  std::swap(b[b.size() - 1], b[b.size() - 2]);
  return {randn(b, seed, dt), [](const Tensor& t) { return t.transpose(-1, -2); }, true};
}
inline Input sliced(const Shape& s, uint64_t seed, DType dt) {  // narrow of a wider tensor along the last dim
  Shape b = s;
  b.back() += 3;
  const int64_t n = s.back();
  return {randn(b, seed, dt), [n](const Tensor& t) { return t.narrow(-1, 2, n); }, true};
}
inline Input broadcast(const Shape& s, uint64_t seed, DType dt) {  // [1, ..., last] expanded to s
  Shape b(s.size(), 1);
  b.back() = s.back();
  return {randn(b, seed, dt), [s](const Tensor& t) { return t.expand(s); }, true};
}
inline Input ids(const Shape& s, int64_t hi, uint64_t seed) {
  Tensor u = uniform(s, seed, 0.0, static_cast<double>(hi), DType::f64);
  std::vector<double> v = u.to_vector();
  for (double& x : v) x = std::floor(x);
  return {from_vector(v, s, DType::i64), nullptr, false};
}

inline const std::vector<DType>& float_types() {
  static const std::vector<DType> t{DType::f64, DType::f32};
  return t;
}

}  // namespace skein::cudatest
