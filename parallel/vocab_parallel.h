// vocab_parallel.h — the vocabulary-parallel cross-entropy: the logits of one batch are split
// by vocabulary columns over the tp ranks and never gathered. Two all-reduces of [N] rows
// (the row max; then the row sum of exp and the target logit, packed in one f64 buffer), and
// no communication backward: d logits = (softmax − onehot(target)) · g / count on this rank's
// columns, the onehot only on the rank that holds the target.
// reference: Megatron-LM megatron/core/tensor_parallel/cross_entropy.py
// (_VocabParallelCrossEntropy); ../shared/research/parallel_distill.md §2.7.
#pragma once
#include <cstdint>
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace skein {

// Mean cross-entropy over the targets != ignore_index (0 when none), the same scalar on every
// rank of `tp` (a collective: every rank calls it in the same order with the same targets).
// logits: [N, V_shard] (f32 / f64) = columns [vocab_start, vocab_start + V_shard) of the padded
// vocabulary; columns >= vocab_size are padding, take no probability and get zero gradient.
// targets: [N] global ids (i32 / i64) in [0, vocab_size) or ignore_index.
// The backward needs no communication, so a rank may skip it without hanging the others.
Tensor vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets,
                                    int64_t vocab_start, int64_t vocab_size, int64_t ignore_index = -100);

}  // namespace skein
