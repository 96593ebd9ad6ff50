// gradcheck.h — finite-difference gradient checking in f64 for the test suites.
// The scalar probed is L = Σ f(inputs) ⊙ W with a fixed random W, so every output
// element's gradient path is weighted differently (a plain sum hides many mistakes).
#pragma once
#include <gtest/gtest.h>
#include <cmath>
#include <functional>
#include <vector>
#include "core/ops.h"

namespace skein::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Element offset (in elements, from the storage start) of flat index i of t.
inline int64_t element_offset(const Tensor& t, int64_t i) {
  int64_t off = t.offset();
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (i % t.shape()[d]) * t.strides()[d];
    i /= t.shape()[d];
  }
  return off;
}

// Checks d(Σ f(x) ⊙ W)/dx for every input (all f64 leaves, possibly non-contiguous views)
// against central differences: |analytic - numeric| ≤ rtol · max(|numeric|, 1).
inline void expect_gradcheck(const Fn& f, std::vector<Tensor> inputs, double rtol = 1e-6,
                             double eps = 1e-6) {
  for (Tensor& x : inputs) {
    ASSERT_EQ(x.dtype(), DType::f64);
    if (!x.requires_grad()) x.requires_grad_();
    x.zero_grad();
  }
  Tensor y = f(inputs);
  Tensor w = randn(y.shape(), 977, DType::f64);
  auto probe = [&]() {
    NoGradGuard ng;
    return sum(mul(f(inputs), w)).item();
  };
  sum(mul(y, w)).backward();
  double max_grad = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    ASSERT_TRUE(x.grad().defined()) << "input " << k << " got no gradient";
    ASSERT_EQ(x.grad().shape(), x.shape()) << "input " << k;
    std::vector<double> analytic = x.grad().to_vector();
    double* base = static_cast<double*>(x.impl()->storage->data);
    for (int64_t i = 0; i < x.numel(); ++i) {
      double& v = base[element_offset(x, i)];
      const double saved = v;
      v = saved + eps;
      const double up = probe();
      v = saved - eps;
      const double down = probe();
      v = saved;
      const double numeric = (up - down) / (2 * eps);
      max_grad = std::max(max_grad, std::fabs(numeric));
      EXPECT_NEAR(analytic[i], numeric, rtol * std::max(std::fabs(numeric), 1.0))
          << "input " << k << " element " << i << " of shape " << shape_str(x.shape());
    }
  }
  EXPECT_GT(max_grad, 1e-3) << "the probed function has (near) zero gradient: the check proves nothing";
}

inline Tensor rand64(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return uniform(shape, seed, lo, hi, DType::f64);
}

}  // namespace skein::testing
