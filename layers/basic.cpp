// basic.cpp — tp_shard / tp_join, Linear, Embedding, RMSNorm, SwiGLU.
#include "layers/basic.h"
#include <algorithm>
#include "core/autograd.h"

namespace skein {

int64_t round_up(int64_t n, int64_t size) { return (n + size - 1) / size * size; }

Tensor tp_shard(const Tensor& full, TpSplit split, int rank, int size) {
  if (!split.sharded()) return full;
  SKEIN_CHECK(size >= 1 && rank >= 0 && rank < size, "tp_shard: rank ", rank, " is not in [0, ", size, ")");
  SKEIN_CHECK(split.dim < full.dim() && full.size(split.dim) == split.full, "tp_shard: tensor ",
              shape_str(full.shape()), " does not have ", split.full, " entries along dim ", split.dim);
  if (size == 1) return full;
  const int64_t per = round_up(split.full, size) / size, start = rank * per;
  const int64_t have = std::clamp<int64_t>(split.full - start, 0, per);
  Shape shape = full.shape();
  shape[static_cast<size_t>(split.dim)] = per;
  Tensor out = zeros(shape, full.dtype(), full.device());  // the padding rows stay zero
  if (have > 0) {
    NoGradGuard no_grad;
    Tensor dst = out.narrow(split.dim, 0, have);
    copy_(dst, full.detach().narrow(split.dim, start, have));
  }
  return out;
}

Tensor tp_join(const std::vector<Tensor>& shards, TpSplit split) {
  SKEIN_CHECK(!shards.empty(), "tp_join: no shards");
  if (!split.sharded()) return shards[0];
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (const Tensor& s : shards) parts.push_back(s.detach());
  Tensor joined = cat(parts, split.dim);
  SKEIN_CHECK(joined.size(split.dim) >= split.full, "tp_join: ", shards.size(), " shards hold ",
              joined.size(split.dim), " entries along dim ", split.dim, ", fewer than the full ", split.full);
  return joined.narrow(split.dim, 0, split.full).contiguous();
}

Linear::Linear(int64_t in, int64_t out, Generator& gen, double init_std, bool with_bias, DType dtype,
               TpMode mode_, const ModelParallel* par)
    : mode(mode_), par_(par ? par : &single_process_parallel()) {
  const int rank = par_->tp_rank(), size = par_->tp_size();
  TpSplit weight_split, bias_split;
  if (mode == TpMode::column) weight_split = bias_split = {0, out};
  if (mode == TpMode::row) {
    SKEIN_CHECK(in % size == 0, "Linear: row-parallel in-features (", in, ") must be divisible by tp_size (",
                size, ")");
    weight_split = {1, in};
  }
  weight = register_parameter("weight", tp_shard(init_normal({out, in}, init_std, gen, dtype), weight_split, rank, size),
                              weight_split);
  if (dtype == DType::bf16) weight.requires_grad_(false);  // bf16 storage is frozen
  const DType bias_dtype = dtype == DType::bf16 ? DType::f32 : dtype;
  if (with_bias) bias = register_parameter("bias", tp_shard(zeros({out}, bias_dtype), bias_split, rank, size), bias_split);
}

Tensor Linear::forward(const Tensor& x) const {
  SKEIN_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "Linear: input ", shape_str(x.shape()),
              " does not end in the layer's in-features ", weight.shape()[1]);
  Tensor y = matmul(x, compute_weight(x.dtype()).transpose(0, 1));  // the transpose reaches BLAS as a flag
  if (mode == TpMode::row) y = par_->tp_sum(y);
  return bias.defined() ? add(y, bias) : y;
}

Embedding::Embedding(int64_t vocab, int64_t dim, Generator& gen, double init_std, DType dtype,
                     const ModelParallel* par)
    : vocab_size(vocab), par_(par ? par : &single_process_parallel()) {
  const TpSplit split{0, vocab};
  weight = register_parameter(
      "weight", tp_shard(init_normal({vocab, dim}, init_std, gen, dtype), split, par_->tp_rank(), par_->tp_size()),
      split);
  vocab_start = par_->tp_rank() * weight.size(0);
}

Tensor Embedding::forward(const Tensor& ids) const {
  if (par_->tp_size() == 1) return embedding(weight, ids);
  SKEIN_CHECK(!is_floating(ids.dtype()), "Embedding: ids must be i32 or i64, got ", dtype_name(ids.dtype()));
  // Ids in this rank's rows map to local rows; the others to row 0, zeroed by `keep`.
  Tensor idx = ids.to(DType::i64).contiguous().to(Device::cpu);  // the host decides which rows are local
  const int64_t n = idx.numel(), rows = weight.size(0);
  const int64_t* pi = idx.data<int64_t>();
  std::vector<double> local(static_cast<size_t>(n)), keep(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    SKEIN_CHECK(pi[i] >= 0 && pi[i] < vocab_size, "Embedding: id ", pi[i], " at position ", i,
                " is outside the vocabulary [0, ", vocab_size, ")");
    const bool mine = pi[i] >= vocab_start && pi[i] < vocab_start + rows;
    local[static_cast<size_t>(i)] = mine ? static_cast<double>(pi[i] - vocab_start) : 0.0;
    keep[static_cast<size_t>(i)] = mine ? 1.0 : 0.0;
  }
  Shape keep_shape = ids.shape();
  keep_shape.push_back(1);
  Tensor rows_out = embedding(weight, from_vector(local, ids.shape(), DType::i64, weight.device()));
  return par_->tp_sum(mul(rows_out, from_vector(keep, keep_shape, weight.dtype(), weight.device())));
}

RMSNorm::RMSNorm(int64_t dim, double eps_, DType dtype) : eps(eps_) {
  weight = register_parameter("weight", ones({dim}, dtype));
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

SwiGLU::SwiGLU(int64_t d, int64_t hidden, Generator& gen, double init_std, double out_std, DType dtype,
               const ModelParallel* par)
    : par_(par ? par : &single_process_parallel()) {
  SKEIN_CHECK(hidden % par_->tp_size() == 0, "SwiGLU: hidden size (model.mlp_hidden ", hidden,
              ") must be divisible by tp_size (", par_->tp_size(), ")");
  w1 = register_module("w1", std::make_shared<Linear>(d, hidden, gen, init_std, false, dtype, TpMode::column, par_));
  w3 = register_module("w3", std::make_shared<Linear>(d, hidden, gen, init_std, false, dtype, TpMode::column, par_));
  w2 = register_module("w2", std::make_shared<Linear>(hidden, d, gen, out_std, false, dtype, TpMode::row, par_));
}

Tensor SwiGLU::forward(const Tensor& x) const {
  Tensor xc = par_->tp_copy(x);  // Megatron f: the input gradient is summed over tp ranks
  // w2's GEMM fused with silu(a) * b, whose [..., hidden] result is not kept for backward.
  Tensor a = w1->forward(xc);
  Tensor y = swiglu_down(a, w3->forward(xc), w2->compute_weight(a.dtype()));
  if (w2->mode == TpMode::row) y = par_->tp_sum(y);
  return w2->bias.defined() ? add(y, w2->bias) : y;
}

}  // namespace skein
