// loader.h — the training data loader over one split of a token file: fixed windows of
// seq_len + 1 tokens packed across document boundaries, a seeded per-epoch shuffle, sharding
// over data-parallel ranks, and a cursor for exact resume.
//
// Windows: window w is tokens [w*T, w*T + T + 1) of the split (T = seq_len), so there are
// floor((N - 1) / T) of them; inputs = window[0:T], targets = window[1:T+1]. Documents are
// packed: a window may span several documents (they are separated by eos_id).
//
// Order: epoch e visits the windows in a permutation drawn from Philox keyed by (seed, e)
// (the identity when shuffle is off). The global stream is epoch 0's permutation, then epoch
// 1's, and so on. Each call to next() on every rank consumes one global batch of
// dp_size * batch_size windows from the stream; rank r takes the r-th run of batch_size.
// Windows past a multiple of dp_size * batch_size are WRAPPED, not dropped: the last batch of
// an epoch continues with the first windows of the next epoch's permutation, so every window
// is seen exactly once per epoch and nothing is lost.
//
// Cursor: {epoch, position} = the next stream position (position indexes the epoch's
// permutation). It is the same on every rank, so rank 0 can checkpoint it, and a run may
// resume with a different dp_size or batch_size and still continue the same stream.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "core/tensor.h"
#include "data/token_file.h"

namespace skein {

// Token tasks: inputs, targets [B, T] i64 (target -100 = ignored). The in-context regression
// task (data/synthetic.h) uses inputs [B, 2n, dim+1] and targets [B, n], floating.
struct Batch {
  Tensor inputs;
  Tensor targets;
};

struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;  // next window within the epoch's order, in [0, num_windows)
  bool operator==(const Cursor&) const = default;
};

// Anything that yields training batches and can resume: the Loader and the synthetic tasks.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  virtual Cursor cursor() const = 0;
  virtual void set_cursor(const Cursor& c) = 0;
};

class Loader final : public BatchSource {
 public:
  Loader(const TokenFile& file, const std::string& split, int64_t seq_len, int64_t batch_size,
         int64_t dp_rank = 0, int64_t dp_size = 1, uint64_t seed = 0, bool shuffle = true);

  Batch next() override;  // inputs, targets: [batch_size, seq_len] i64

  Cursor cursor() const override { return cursor_; }
  void set_cursor(const Cursor& c) override;

  int64_t num_windows() const { return num_windows_; }
  // The windows of epoch `epoch` in visiting order (a permutation of [0, num_windows)).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Global batches per epoch (fractional when the last one wraps into the next epoch).
  double batches_per_epoch() const;
  int64_t seq_len() const { return seq_len_; }
  int64_t batch_size() const { return batch_size_; }

 private:
  const std::vector<int64_t>& order(int64_t epoch);  // cached permutation
  TokenSplit split_;
  std::string file_path_;
  int64_t seq_len_, batch_size_, dp_rank_, dp_size_;
  uint64_t seed_;
  bool shuffle_;
  int64_t num_windows_ = 0;
  Cursor cursor_;
  int64_t cached_epoch_[2] = {-1, -1};
  std::vector<int64_t> cached_order_[2];
};

}  // namespace skein
