// tp_shard.h — a tensor's tensor-parallel shards by its TpSplit (layers/module.h): the full
// tensor padded with zeros along split.dim to a multiple of tp_size, then cut into tp_size
// equal contiguous blocks, rank r holding block r. Joining concatenates the blocks and drops
// the padding (the vocabulary's extra rows). Replicated tensors (dim -1) are whole on every
// rank. split.full == 0 on a split tensor means "no padding" (the blocks' total).
// Checkpoints re-shard with these (launch/checkpoint.h).
#pragma once
#include <cstdint>
#include <vector>
#include "layers/module.h"

namespace skein {

// The size along split.dim of one of tp_size shards of `full` elements: ceil(full / tp_size).
int64_t tp_shard_size(int64_t full, int tp_size);

// The full tensor's shape given one shard's shape (shard: [..., s, ...] -> [..., full, ...]
// with full = split.full, or s * tp_size when split.full == 0). Replicated: the same shape.
Shape tp_full_shape(const Shape& shard, const TpSplit& split, int tp_size);

// shards: tp_size tensors [..., s, ...] in tp-rank order -> a new [..., full, ...] tensor.
// A replicated split returns a copy of shards[0].
Tensor join_tp_shards(const std::vector<Tensor>& shards, const TpSplit& split);

// full: [..., F, ...] (F = split.full, or any size when split.full == 0) -> a new
// [..., tp_shard_size(F, tp_size), ...] tensor: block tp_rank, rows past F zero.
// A replicated split returns a copy of full.
Tensor cut_tp_shard(const Tensor& full, const TpSplit& split, int tp_rank, int tp_size);

}  // namespace skein
