// blend.cpp — weighted blending of token files (see blend.h).
#include "data/blend.h"
#include <cmath>
#include "core/error.h"
#include "data/token_file.h"

namespace skein {

// One file of the blend: its split, and a Loader over it for the per-epoch window order.
struct BlendedLoader::Source {
  TokenFile file;
  TokenSplit split;
  Loader order;  // used for epoch_order() only
  int64_t windows;
  int64_t cached_epoch = -1;
  std::vector<int64_t> cached_order;

  Source(TokenFile f, const std::string& name, int64_t seq_len, uint64_t seed, bool shuffle)
      : file(std::move(f)), split(file.split(name)), order(file, name, seq_len, 1, 0, 1, seed, shuffle),
        windows(order.num_windows()) {}
  // The n-th window of this source's own stream.
  int64_t window(int64_t n) {
    const int64_t epoch = n / windows;
    if (epoch != cached_epoch) {
      cached_order = order.epoch_order(epoch);
      cached_epoch = epoch;
    }
    return cached_order[static_cast<size_t>(n % windows)];
  }
};

BlendedLoader::BlendedLoader(const std::vector<BlendSource>& sources, const std::string& split, int64_t seq_len,
                             int64_t batch_size, int64_t dp_rank, int64_t dp_size, uint64_t seed, bool shuffle)
    : seq_len_(seq_len), batch_size_(batch_size), dp_rank_(dp_rank), dp_size_(dp_size) {
  SKEIN_CHECK(!sources.empty(), "BlendedLoader: no token files (data.paths is empty)");
  SKEIN_CHECK(batch_size > 0 && seq_len > 0, "BlendedLoader: batch_size ", batch_size, " and seq_len ", seq_len,
              " must be positive");
  SKEIN_CHECK(dp_size > 0 && dp_rank >= 0 && dp_rank < dp_size, "BlendedLoader: dp_rank ", dp_rank,
              " is not in [0, dp_size ", dp_size, ")");
  double total = 0;
  for (size_t k = 0; k < sources.size(); ++k) {
    const BlendSource& s = sources[k];
    SKEIN_CHECK(std::isfinite(s.weight) && s.weight > 0, "data.paths[", k, "].weight: ", s.weight, " for ", s.path,
                " must be finite and > 0");
    TokenFile f = TokenFile::open(s.path);
    if (k == 0) {
      identity_ = f.tokenizer_identity();
    } else {
      SKEIN_CHECK(f.tokenizer_identity() == identity_, "data.paths[", k, "]: ", s.path,
                  " was tokenised with another tokenizer than ", sources[0].path, " (", f.tokenizer_kind(),
                  "); a blend needs one tokenizer");
    }
    vocab_size_ = std::max(vocab_size_, f.vocab_size());
    sources_.push_back(std::make_unique<Source>(std::move(f), split, seq_len, seed + k, shuffle));
    weights_.push_back(s.weight);
    total += s.weight;
  }
  for (double& w : weights_) w /= total;
  counts_.assign(sources_.size(), 0);
}

BlendedLoader::~BlendedLoader() = default;

int BlendedLoader::choose(const std::vector<int64_t>& counts, int64_t i) const {
  int best = 0;
  double best_err = -1e300;
  for (size_t k = 0; k < weights_.size(); ++k) {
    const double err = weights_[k] * static_cast<double>(i + 1) - static_cast<double>(counts[k]);
    if (err > best_err) best_err = err, best = static_cast<int>(k);
  }
  return best;
}

std::vector<int> BlendedLoader::peek_sources(int64_t n) const {
  std::vector<int64_t> counts = counts_;
  std::vector<int> out;
  for (int64_t i = consumed_; i < consumed_ + n; ++i) {
    out.push_back(choose(counts, i));
    ++counts[static_cast<size_t>(out.back())];
  }
  return out;
}

void BlendedLoader::set_cursor(const Cursor& c) {
  SKEIN_CHECK(c.epoch == 0 && c.position >= 0, "BlendedLoader: cursor {epoch ", c.epoch, ", position ", c.position,
              "} is not one of a blend ({0, samples consumed}); was the checkpoint saved with one data.path?");
  counts_.assign(sources_.size(), 0);
  for (int64_t i = 0; i < c.position; ++i) ++counts_[static_cast<size_t>(choose(counts_, i))];
  consumed_ = c.position;
}

Batch BlendedLoader::next() {
  const int64_t B = batch_size_, T = seq_len_;
  Batch b{Tensor::empty({B, T}, DType::i64), Tensor::empty({B, T}, DType::i64)};
  int64_t* in = b.inputs.data<int64_t>();
  int64_t* tg = b.targets.data<int64_t>();
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  // Walk the whole global batch (every rank keeps the same counts); keep this rank's run.
  for (int64_t j = 0; j < dp_size_ * B; ++j) {
    const int k = choose(counts_, consumed_ + j);
    const int64_t n = counts_[static_cast<size_t>(k)]++;
    const int64_t row = j - dp_rank_ * B;
    if (row < 0 || row >= B) continue;
    Source& s = *sources_[static_cast<size_t>(k)];
    s.split.read(s.window(n) * T, T + 1, window.data());
    std::copy(window.begin(), window.end() - 1, in + row * T);
    std::copy(window.begin() + 1, window.end(), tg + row * T);
  }
  consumed_ += dp_size_ * B;
  return b;
}

}  // namespace skein
