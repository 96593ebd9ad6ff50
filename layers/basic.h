// basic.h — the small modules: Linear (no bias by default), Embedding, RMSNorm, SwiGLU.
#pragma once
#include "layers/module.h"

namespace skein {

// y = x Wᵀ (+ b). weight: [out, in] (the PyTorch / Hugging Face layout).
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Generator& gen, double init_std = 0.02, bool bias = false,
         DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;  // x: [..., in] -> [..., out]
  Tensor weight, bias;
};

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim, Generator& gen, double init_std = 0.02, DType dtype = DType::f32);
  Tensor forward(const Tensor& ids) const;  // ids: [...] -> [..., dim]
  Tensor weight;  // [vocab, dim]
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;  // x: [..., dim]
  Tensor weight;  // [dim], init 1
  double eps;
};

// y = W2( silu(x W1ᵀ) * (x W3ᵀ) ); w1, w3: [hidden, d], w2: [d, hidden].
class SwiGLU : public Module {
 public:
  SwiGLU(int64_t d, int64_t hidden, Generator& gen, double init_std = 0.02, double out_std = 0.02,
         DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;  // x: [..., d]
  std::shared_ptr<Linear> w1, w2, w3;
};

}  // namespace skein
