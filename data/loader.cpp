// loader.cpp — windows, per-epoch Philox shuffle, dp sharding and cursor (see loader.h).
#include "data/loader.h"
#include <algorithm>
#include <array>
#include <numeric>
#include "core/rng.h"

namespace skein {
namespace {

// Fisher-Yates over [0, n) with swap indices from Philox (counter = (step, epoch), key = seed).
// reference: Salmon et al. 2011 (Philox); Knuth TAOCP vol. 2, Algorithm P.
std::vector<int64_t> shuffled(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const auto e = static_cast<uint64_t>(epoch);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto u = static_cast<uint64_t>(i);
    auto w = philox4x32({static_cast<uint32_t>(u), static_cast<uint32_t>(u >> 32),
                         static_cast<uint32_t>(e), static_cast<uint32_t>(e >> 32) ^ 0x5eed10adu},
                        key);
    uint64_t r = (static_cast<uint64_t>(w[0]) << 32) | w[1];
    // 64-bit draw modulo i+1: bias below (i+1) / 2^64, negligible for any real corpus.
    auto j = static_cast<int64_t>(r % (u + 1));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

}  // namespace

Loader::Loader(const TokenFile& file, const std::string& split, int64_t seq_len, int64_t batch_size,
               int64_t dp_rank, int64_t dp_size, uint64_t seed, bool shuffle)
    : split_(file.split(split)), file_path_(file.path()), seq_len_(seq_len), batch_size_(batch_size),
      dp_rank_(dp_rank), dp_size_(dp_size), seed_(seed), shuffle_(shuffle) {
  SKEIN_CHECK(seq_len > 0, "Loader: seq_len ", seq_len, " must be positive (file '", file_path_, "')");
  SKEIN_CHECK(batch_size > 0, "Loader: batch_size ", batch_size, " must be positive (file '",
              file_path_, "')");
  SKEIN_CHECK(dp_size > 0 && dp_rank >= 0 && dp_rank < dp_size, "Loader: dp_rank ", dp_rank,
              " is not in [0, dp_size ", dp_size, ")");
  const int64_t n = split_.size();
  SKEIN_CHECK(n >= seq_len + 1, "Loader: split '", split, "' of '", file_path_, "' has ", n,
              " tokens, fewer than seq_len + 1 = ", seq_len + 1,
              " needed for one window; lower seq_len or use more data");
  num_windows_ = (n - 1) / seq_len;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  SKEIN_CHECK(epoch >= 0, "Loader: epoch ", epoch, " must be >= 0");
  if (!shuffle_) {
    std::vector<int64_t> p(static_cast<size_t>(num_windows_));
    std::iota(p.begin(), p.end(), int64_t{0});
    return p;
  }
  return shuffled(num_windows_, seed_, epoch);
}

const std::vector<int64_t>& Loader::order(int64_t epoch) {
  for (int k = 0; k < 2; ++k)
    if (cached_epoch_[k] == epoch) return cached_order_[k];
  // Replace the older epoch (a batch spans at most two consecutive epochs at a time).
  int k = cached_epoch_[0] < cached_epoch_[1] ? 0 : 1;
  cached_order_[k] = epoch_order(epoch);
  cached_epoch_[k] = epoch;
  return cached_order_[k];
}

double Loader::batches_per_epoch() const {
  return static_cast<double>(num_windows_) / static_cast<double>(dp_size_ * batch_size_);
}

void Loader::set_cursor(const Cursor& c) {
  SKEIN_CHECK(c.epoch >= 0 && c.position >= 0 && c.position < num_windows_, "Loader: cursor {epoch ",
              c.epoch, ", position ", c.position, "} is invalid for split '", split_.name(), "' of '",
              file_path_, "' with ", num_windows_, " windows of seq_len ", seq_len_);
  cursor_ = c;
}

Batch Loader::next() {
  const int64_t B = batch_size_, T = seq_len_;
  Batch b{Tensor::empty({B, T}, DType::i64), Tensor::empty({B, T}, DType::i64)};
  int64_t* in = b.inputs.data<int64_t>();
  int64_t* tg = b.targets.data<int64_t>();
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  // This rank's first stream position: skip the earlier ranks' rows of the global batch.
  int64_t epoch = cursor_.epoch, pos = cursor_.position + dp_rank_ * B;
  epoch += pos / num_windows_;
  pos %= num_windows_;
  for (int64_t row = 0; row < B; ++row) {
    int64_t w = order(epoch)[static_cast<size_t>(pos)];
    split_.read(w * T, T + 1, window.data());
    std::copy(window.begin(), window.end() - 1, in + row * T);
    std::copy(window.begin() + 1, window.end(), tg + row * T);
    if (++pos == num_windows_) { pos = 0; ++epoch; }
  }
  // Advance the shared cursor by the whole global batch.
  int64_t next = cursor_.position + dp_size_ * B;
  cursor_.epoch += next / num_windows_;
  cursor_.position = next % num_windows_;
  return b;
}

}  // namespace skein
