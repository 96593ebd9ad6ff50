// model_batch.h — the tiny HybridLM and the global batch the data-parallel and ZeRO tests
// share: 4 sequences of 12 tokens whose ignored targets (-100) are spread unevenly (0, 5,
// 11 and 12 of 12 per sequence), so ranks hold very different token counts.
#pragma once
#include "core/ops.h"
#include "layers/model.h"

namespace skein::test {

inline ModelConfig tiny_model(DType dt) {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.layer_pattern = "LS";
  c.mlp_hidden = 32;
  c.chunk_size = 8;
  c.dtype = dt;
  return c;
}

constexpr int64_t kBatch = 4, kSeq = 12;

struct Batch2 {
  Tensor ids, targets;  // [kBatch, kSeq] i64
};

// The global batch of a step; `step` varies the tokens.
inline Batch2 global_batch(int step) {
  const int64_t ignored[kBatch] = {0, 5, 11, 12};
  std::vector<double> ids, tgt;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSeq; ++t) {
      ids.push_back(static_cast<double>((b * 31 + t * 7 + step * 5 + 3) % 32));
      tgt.push_back(t < ignored[b] ? -100.0 : static_cast<double>((b * 13 + t * 5 + step * 3 + 1) % 32));
    }
  return {from_vector(ids, {kBatch, kSeq}, DType::i64), from_vector(tgt, {kBatch, kSeq}, DType::i64)};
}

// Rank r's rows of the global batch (kBatch / p sequences; p divides kBatch).
inline Batch2 local_batch(const Batch2& g, int rank, int size) {
  const int64_t n = kBatch / size;
  return {g.ids.narrow(0, rank * n, n).contiguous(), g.targets.narrow(0, rank * n, n).contiguous()};
}

}  // namespace skein::test
