// basic.cpp — Linear, Embedding, RMSNorm, SwiGLU.
#include "layers/basic.h"

namespace skein {

Linear::Linear(int64_t in, int64_t out, Generator& gen, double init_std, bool with_bias, DType dtype) {
  weight = register_parameter("weight", init_normal({out, in}, init_std, gen, dtype));
  if (with_bias) bias = register_parameter("bias", zeros({out}, dtype));
}

Tensor Linear::forward(const Tensor& x) const {
  SKEIN_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "Linear: input ", shape_str(x.shape()),
              " does not end in the layer's in-features ", weight.shape()[1]);
  Tensor y = matmul(x, weight.transpose(0, 1));  // the transpose reaches BLAS as a flag
  return bias.defined() ? add(y, bias) : y;
}

Embedding::Embedding(int64_t vocab, int64_t dim, Generator& gen, double init_std, DType dtype) {
  weight = register_parameter("weight", init_normal({vocab, dim}, init_std, gen, dtype));
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = register_parameter("weight", ones({dim}, dtype));
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

SwiGLU::SwiGLU(int64_t d, int64_t hidden, Generator& gen, double init_std, double out_std, DType dtype) {
  w1 = register_module("w1", std::make_shared<Linear>(d, hidden, gen, init_std, false, dtype));
  w3 = register_module("w3", std::make_shared<Linear>(d, hidden, gen, init_std, false, dtype));
  w2 = register_module("w2", std::make_shared<Linear>(hidden, d, gen, out_std, false, dtype));
}

Tensor SwiGLU::forward(const Tensor& x) const { return w2->forward(mul(silu(w1->forward(x)), w3->forward(x))); }

}  // namespace skein
