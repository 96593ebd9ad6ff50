// blend.h — a training source that blends several token files by weight (Megatron-LM's
// BlendedDataset, data.paths: [{path, weight}]).
//
// The blended stream is a sequence of windows; sample i goes to the source k with the largest
// w_k * (i + 1) - n_k (n_k: windows source k has given so far, w_k: normalised weights), so
// after any prefix of n samples every source has given within one window of w_k * n —
// deterministic, and the proportions hold over every stretch, not just on average. reference:
// Shoeybi et al. 2019 (Megatron-LM), megatron/core/datasets/helpers.cpp build_blending_indices.
// Within source k, its n-th window is its own Loader-style stream: epoch n / W_k, a Philox
// permutation per epoch keyed by (seed + k, epoch) (data/loader.h).
//
// Each next() consumes one global batch of dp_size * batch_size samples; rank r takes the r-th
// run of batch_size. The cursor is {0, samples consumed}; set_cursor replays the choice rule
// (O(samples x sources), once), so a resumed run continues the identical stream.
#pragma once
#include <memory>
#include <string>
#include <vector>
#include "data/loader.h"

namespace skein {

struct BlendSource {
  std::string path;
  double weight = 1.0;
};

class BlendedLoader final : public BatchSource {
 public:
  // Every file must hold `split` with at least seq_len + 1 tokens and share one tokenizer;
  // weights must be finite and > 0. Errors name the file.
  BlendedLoader(const std::vector<BlendSource>& sources, const std::string& split, int64_t seq_len,
                int64_t batch_size, int64_t dp_rank = 0, int64_t dp_size = 1, uint64_t seed = 0, bool shuffle = true);
  ~BlendedLoader() override;

  Batch next() override;  // inputs, targets: [batch_size, seq_len] i64
  Cursor cursor() const override { return {0, consumed_}; }
  void set_cursor(const Cursor& c) override;

  // The source of each of the next n samples of the global stream (does not advance).
  std::vector<int> peek_sources(int64_t n) const;
  // Windows each source has given so far (global stream).
  const std::vector<int64_t>& counts() const { return counts_; }
  const std::string& tokenizer_identity() const { return identity_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  struct Source;
  int choose(const std::vector<int64_t>& counts, int64_t i) const;  // the source of sample i
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<double> weights_;  // normalised
  int64_t seq_len_, batch_size_, dp_rank_, dp_size_;
  int64_t consumed_ = 0;
  std::vector<int64_t> counts_;
  std::string identity_;
  int64_t vocab_size_ = 0;
};

}  // namespace skein
