// basic.h — the small modules: Linear (no bias by default; replicated, column- or
// row-parallel over tensor-parallel ranks), Embedding (vocabulary-parallel), RMSNorm, SwiGLU;
// and tp_shard / tp_join, which cut a full one-process tensor into one tensor-parallel rank's
// shard and put the shards back together. Layers register each parameter with its TpSplit
// whatever tp_size is, so a one-process model's tp_splits() say how to shard it.
// Every sharded parameter is drawn at FULL size from the model's Generator (so the random
// stream is the same as one process's) and the rank keeps its slice: a tensor-parallel model
// holds exactly its shard of the one-process model's parameters.
// reference: Shoeybi et al., "Megatron-LM", 2019, §3 (column / row-parallel linear layers,
// the f / g operators); Megatron-LM VocabParallelEmbedding (vocabulary-parallel embedding).
#pragma once
#include <vector>
#include "layers/module.h"
#include "layers/parallel.h"

namespace skein {

// Rank `rank` of `size`'s block of `full` along split.dim (equal contiguous blocks; full's size
// along dim must be split.full, padded with zero rows up to a multiple of size). A replicated
// split (or size 1) returns `full` itself; otherwise the result owns its storage.
Tensor tp_shard(const Tensor& full, TpSplit split, int rank, int size);
// The inverse: shards (rank order) joined along split.dim, the padding dropped. A replicated
// split returns shards[0].
Tensor tp_join(const std::vector<Tensor>& shards, TpSplit split);
// n rounded up to a multiple of size (the padded vocabulary).
int64_t round_up(int64_t n, int64_t size);

// How a Linear is split over tensor-parallel ranks (Megatron-LM §3):
//  replicated: every rank holds the whole layer;
//  column: the output features are split (weight and bias along dim 0, padded to a multiple
//    of tp_size); the input must be replicated (the caller puts it through par->tp_copy once
//    for all the column layers that read it), the output is this rank's slice;
//  row: the input features are split (weight along dim 1; in % tp_size == 0); the input is
//    this rank's slice, the partial products are summed over ranks (par->tp_sum) and the
//    replicated bias is added once, after the sum.
enum class TpMode { replicated, column, row };

// y = x Wᵀ (+ b). weight: [out, in] (the PyTorch / Hugging Face layout); under tensor
// parallelism this rank's shard: [out / tp, in] (column) or [out, in / tp] (row).
class Linear : public Module {
 public:
  // par: the model's split over ranks (null: one process); must outlive the layer. dtype bf16:
  // the weight is stored bf16 and frozen (drawn in chunks, never whole in f32), the bias f32.
  Linear(int64_t in, int64_t out, Generator& gen, double init_std = 0.02, bool bias = false,
         DType dtype = DType::f32, TpMode mode = TpMode::replicated, const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& x) const;  // x: [..., in (this rank's slice when row)] -> [..., out]
  // The weight as the GEMM of an input of dtype `dt` reads it: a bf16-stored weight
  // (ModelConfig::weight_dtype) converted, one weight at a time.
  Tensor compute_weight(DType dt) const { return weight.dtype() == dt ? weight : weight.to(dt); }
  Tensor weight, bias;
  TpMode mode;

 private:
  const ModelParallel* par_;
};

// Vocabulary-parallel under tensor parallelism: the vocabulary is padded to Vp, a multiple of
// tp_size, and rank r holds rows [r Vp / tp, (r + 1) Vp / tp) (padding rows are zero); ids
// outside the shard give zero rows and the ranks' rows are summed (par->tp_sum).
class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim, Generator& gen, double init_std = 0.02, DType dtype = DType::f32,
            const ModelParallel* par = nullptr);
  Tensor forward(const Tensor& ids) const;  // ids: [...] global ids -> [..., dim]
  Tensor weight;  // [vocab, dim]; this rank's shard [Vp / tp, dim]
  int64_t vocab_size, vocab_start;  // global vocabulary; this shard's first row

 private:
  const ModelParallel* par_;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) const;  // x: [..., dim]
  Tensor weight;  // [dim], init 1
  double eps;
};

// y = W2( silu(x W1ᵀ) * (x W3ᵀ) ); w1, w3: [hidden, d], w2: [d, hidden]. Under tensor
// parallelism w1 and w3 are column-parallel and w2 row-parallel over the same hidden indices
// (hidden % tp_size == 0); x enters through par->tp_copy. The [..., hidden] product is not kept
// for backward (swiglu_down, core/ops.h, forms it again from x W1ᵀ and x W3ᵀ).
class SwiGLU : public Module {
 public:
  SwiGLU(int64_t d, int64_t hidden, Generator& gen, double init_std = 0.02, double out_std = 0.02,
         DType dtype = DType::f32, const ModelParallel* par = nullptr);
  virtual Tensor forward(const Tensor& x) const;  // x: [..., d]
  std::shared_ptr<Linear> w1, w2, w3;  // null in a subclass with its own projections

 protected:
  SwiGLU() = default;  // for LoRASwiGLU (layers/lora.h), which registers w1 / w2 / w3 itself

 private:
  const ModelParallel* par_ = nullptr;
};

}  // namespace skein
