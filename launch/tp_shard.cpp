// tp_shard.cpp — joining and cutting tensor-parallel shards (see tp_shard.h).
#include "launch/tp_shard.h"
#include "layers/basic.h"

namespace skein {

int64_t tp_shard_size(int64_t full, int tp_size) {
  SKEIN_CHECK(tp_size >= 1 && full >= 0, "tp_shard_size: ", full, " elements over ", tp_size, " ranks");
  return (full + tp_size - 1) / tp_size;
}

Shape tp_full_shape(const Shape& shard, const TpSplit& split, int tp_size) {
  if (!split.sharded()) return shard;
  SKEIN_CHECK(split.dim < static_cast<int>(shard.size()), "tp_full_shape: a shard ", shape_str(shard),
              " has no dim ", split.dim);
  Shape out = shard;
  out[split.dim] = split.full > 0 ? split.full : shard[split.dim] * tp_size;
  SKEIN_CHECK(tp_shard_size(out[split.dim], tp_size) == shard[split.dim], "tp_full_shape: a shard ", shape_str(shard),
              " of ", tp_size, " along dim ", split.dim, " does not hold ", out[split.dim], " rows");
  return out;
}

// Both below check what a checkpoint may get wrong (shapes, "no padding" splits), then cut or
// join with the layers' own tp_shard / tp_join (layers/basic.h), which shard the init.
Tensor join_tp_shards(const std::vector<Tensor>& shards, const TpSplit& split) {
  SKEIN_CHECK(!shards.empty(), "join_tp_shards: no shards");
  if (!split.sharded()) return shards[0].clone();
  const int tp_size = static_cast<int>(shards.size());
  const Shape full_shape = tp_full_shape(shards[0].shape(), split, tp_size);
  for (const Tensor& s : shards)
    SKEIN_CHECK(s.shape() == shards[0].shape(), "join_tp_shards: shards ", shape_str(shards[0].shape()), " and ",
                shape_str(s.shape()), " differ");
  return tp_join(shards, {split.dim, full_shape[static_cast<size_t>(split.dim)]});
}

Tensor cut_tp_shard(const Tensor& full, const TpSplit& split, int tp_rank, int tp_size) {
  SKEIN_CHECK(tp_rank >= 0 && tp_rank < tp_size, "cut_tp_shard: tp rank ", tp_rank, " of ", tp_size);
  if (!split.sharded()) return full.clone();
  SKEIN_CHECK(split.dim < full.dim(), "cut_tp_shard: ", shape_str(full.shape()), " has no dim ", split.dim);
  const int64_t rows = full.size(split.dim);
  SKEIN_CHECK(split.full == 0 || split.full == rows, "cut_tp_shard: ", shape_str(full.shape()), " has ", rows,
              " rows along dim ", split.dim, " but the split says ", split.full);
  SKEIN_CHECK(split.full > 0 || tp_shard_size(rows, tp_size) * tp_size == rows, "cut_tp_shard: ", rows,
              " rows along dim ", split.dim, " do not split evenly over ", tp_size,
              " ranks (a padded split needs split.full)");
  Tensor out = tp_shard(full, {split.dim, rows}, tp_rank, tp_size);
  return tp_size == 1 ? out.clone() : out;
}

}  // namespace skein
