// synthetic.cpp — MQAR and in-context linear regression generators and metrics (see synthetic.h).
#include "data/synthetic.h"
#include <algorithm>
#include <array>
#include <cmath>
#include "core/ops.h"
#include "core/rng.h"

namespace skein {
namespace {

// Philox words for one (seed, example, task): counter = (block, tag, example), key = seed.
class Stream {
 public:
  Stream(uint64_t seed, int64_t example, uint32_t tag)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)},
        example_(static_cast<uint64_t>(example)), tag_(tag) {}
  uint32_t u32() {
    if (lane_ == 4) {
      block_ = philox4x32({block_index_++, tag_, static_cast<uint32_t>(example_),
                           static_cast<uint32_t>(example_ >> 32)}, key_);
      lane_ = 0;
    }
    return block_[lane_++];
  }
  uint64_t u64() {
    uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(u64() % static_cast<uint64_t>(n)); }
  double unit() { return u32_to_unit(u32()); }  // (0, 1]
  double normal() {  // Box-Muller, both outputs used
    if (has_spare_) { has_spare_ = false; return spare_; }
    double u1 = unit(), u2 = unit();
    double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  std::array<uint32_t, 2> key_;
  uint64_t example_;
  uint32_t tag_;
  uint32_t block_index_ = 0;
  std::array<uint32_t, 4> block_{};
  int lane_ = 4;
  double spare_ = 0;
  bool has_spare_ = false;
};

constexpr uint32_t kMqarTag = 0x4d514152u;  // "MQAR"
constexpr uint32_t kIclTag = 0x49434c52u;   // "ICLR"

void check_mqar(const MqarOptions& o) {
  SKEIN_CHECK(o.seq_len > 0 && o.seq_len % 2 == 0, "mqar: seq_len ", o.seq_len, " must be even and positive");
  SKEIN_CHECK(o.num_kv_pairs >= 1 && 4 * o.num_kv_pairs <= o.seq_len, "mqar: num_kv_pairs ",
              o.num_kv_pairs, " must be in [1, seq_len / 4 = ", o.seq_len / 4, "]");
  SKEIN_CHECK(o.vocab_size >= 4 && o.num_kv_pairs <= o.vocab_size / 2 - 1, "mqar: vocab_size ",
              o.vocab_size, " is too small for ", o.num_kv_pairs,
              " distinct keys in [1, vocab_size/2) and values in [vocab_size/2, vocab_size)");
  SKEIN_CHECK(o.power_a > 0, "mqar: power_a ", o.power_a, " must be positive");
  SKEIN_CHECK(o.min_kv_pairs >= 0 && o.min_kv_pairs <= o.num_kv_pairs, "mqar: min_kv_pairs ", o.min_kv_pairs,
              " must be in [0, num_kv_pairs = ", o.num_kv_pairs, "] (0: no training mixture)");
  SKEIN_CHECK(o.min_seq_len >= 0 && o.min_seq_len % 2 == 0 && (o.min_seq_len == 0 || o.min_kv_pairs > 0),
              "mqar: min_seq_len ", o.min_seq_len, " must be even, >= 0, and needs a mixture (min_kv_pairs > 0)");
  SKEIN_CHECK(o.curriculum_examples >= 0 && (o.curriculum_examples == 0 || o.min_kv_pairs > 0), "mqar: curriculum_examples ",
              o.curriculum_examples, " must be >= 0 and needs a ladder (min_kv_pairs > 0)");
}

// Rung lengths of a checked mixture: seq_len, or min(seq_len, min_seq_len * 2^i) — except the
// last rung, the target the evaluation measures, which is always seq_len.
std::vector<int64_t> len_ladder(const MqarOptions& opt, size_t rungs) {
  std::vector<int64_t> lens;
  for (size_t i = 0; i < rungs; ++i)
    lens.push_back(opt.min_seq_len == 0 || i + 1 == rungs ? opt.seq_len : std::min(opt.seq_len, opt.min_seq_len << i));
  return lens;
}

void check_icl(const IclRegressionOptions& o) {
  SKEIN_CHECK(o.dim >= 1 && o.n_points >= 1, "icl_regression: dim ", o.dim, " and n_points ",
              o.n_points, " must be >= 1");
  SKEIN_CHECK(o.noise >= 0, "icl_regression: noise ", o.noise, " must be >= 0");
}

void check_shard(const char* what, int64_t batch_size, int64_t dp_rank, int64_t dp_size) {
  SKEIN_CHECK(batch_size > 0, what, ": batch_size ", batch_size, " must be positive");
  SKEIN_CHECK(dp_size > 0 && dp_rank >= 0 && dp_rank < dp_size, what, ": dp_rank ", dp_rank,
              " is not in [0, dp_size ", dp_size, ")");
}

// Predictions at the query positions as [B * n] doubles, from [B, 2n], [B, 2n, 1] or [B, n].
std::vector<double> icl_query_predictions(const Tensor& pred, const Tensor& targets, int64_t* B, int64_t* n) {
  SKEIN_CHECK(targets.dim() == 2, "icl_regression: targets must be [B, n], got ", shape_str(targets.shape()));
  *B = targets.size(0);
  *n = targets.size(1);
  const Shape& s = pred.shape();
  bool interleaved = (s == Shape{*B, 2 * *n}) || (s == Shape{*B, 2 * *n, 1});
  const bool plain = s == Shape{*B, *n};
  SKEIN_CHECK(interleaved || plain, "icl_regression: predictions ", shape_str(s),
              " must be [B, 2n], [B, 2n, 1] or [B, n] with targets ", shape_str(targets.shape()));
  std::vector<double> all = pred.to_vector();
  if (!interleaved) return all;
  std::vector<double> q(static_cast<size_t>(*B * *n));
  for (size_t i = 0; i < q.size(); ++i) q[i] = all[2 * i];
  return q;
}

}  // namespace

// ---------------------------------------------------------------- MQAR

std::vector<int64_t> mqar_kv_ladder(const MqarOptions& opt) {
  check_mqar(opt);
  std::vector<int64_t> ladder;
  if (opt.min_kv_pairs > 0)
    for (int64_t k = opt.min_kv_pairs; k < opt.num_kv_pairs; k *= 2) ladder.push_back(k);
  ladder.push_back(opt.num_kv_pairs);
  const std::vector<int64_t> lens = len_ladder(opt, ladder.size());
  for (size_t i = 0; i < ladder.size(); ++i)
    SKEIN_CHECK(4 * ladder[i] <= lens[i], "mqar: the mixture's rung of ", ladder[i], " pairs has ", lens[i],
                " tokens (min_seq_len ", opt.min_seq_len, " * 2^", i, "); it needs >= 4 * pairs = ", 4 * ladder[i]);
  return ladder;
}

std::vector<int64_t> mqar_len_ladder(const MqarOptions& opt) { return len_ladder(opt, mqar_kv_ladder(opt).size()); }

Batch mqar_batch(const MqarOptions& opt, uint64_t seed, int64_t first_example, int64_t batch_size) {
  check_mqar(opt);
  SKEIN_CHECK(batch_size > 0 && first_example >= 0, "mqar: batch_size ", batch_size,
              " must be positive and first_example ", first_example, " >= 0");
  const std::vector<int64_t> ladder = mqar_kv_ladder(opt), lens = mqar_len_ladder(opt);
  const int64_t V = opt.vocab_size, half = V / 2;
  // gap weights for the widest query space (the fewest pairs); an example uses a prefix
  int64_t widest = 0;
  for (size_t i = 0; i < ladder.size(); ++i) widest = std::max(widest, (lens[i] - 2 * ladder[i]) / 2);
  std::vector<double> gap_weight(static_cast<size_t>(widest));
  for (int64_t g = 0; g < widest; ++g) gap_weight[static_cast<size_t>(g)] = std::pow(double(g + 1), opt.power_a - 1);

  const int64_t row = opt.seq_len;
  Batch b{full({batch_size, row}, 0, DType::i64), full({batch_size, row}, -100, DType::i64)};
  std::vector<uint8_t> used(static_cast<size_t>(V), 0);
  std::vector<int64_t> keys(static_cast<size_t>(opt.num_kv_pairs)), values(static_cast<size_t>(opt.num_kv_pairs));
  for (int64_t e = 0; e < batch_size; ++e) {
    Stream rng(seed, first_example + e, kMqarTag);
    // a mixture draws the example's pair count first; without one the stream is as it always was
    const size_t last = ladder.size() - 1;
    const size_t rung = ladder.size() == 1             ? 0
                        : opt.curriculum_examples > 0 ? std::min<size_t>(last, static_cast<size_t>((first_example + e) / opt.curriculum_examples))
                                                      : static_cast<size_t>(rng.below(static_cast<int64_t>(ladder.size())));
    const int64_t K = ladder[rung], L = lens[rung];  // the example: K pairs in the row's first L tokens
    const int64_t space = (L - 2 * K) / 2;  // >= K since 4K <= L
    int64_t* in = b.inputs.data<int64_t>() + e * row;
    int64_t* tg = b.targets.data<int64_t>() + e * row;
    // K distinct keys in [1, V/2), K distinct values in [V/2, V) (rejection; K < V/4 typically).
    for (int64_t j = 0; j < K; ++j) {
      int64_t id;
      do { id = 1 + rng.below(half - 1); } while (used[static_cast<size_t>(id)]);
      used[static_cast<size_t>(id)] = 1;
      keys[static_cast<size_t>(j)] = id;
    }
    for (int64_t j = 0; j < K; ++j) {
      int64_t id;
      do { id = half + rng.below(V - half); } while (used[static_cast<size_t>(id)]);
      used[static_cast<size_t>(id)] = 1;
      values[static_cast<size_t>(j)] = id;
    }
    for (int64_t j = 0; j < K; ++j) {
      used[static_cast<size_t>(keys[static_cast<size_t>(j)])] = 0;
      used[static_cast<size_t>(values[static_cast<size_t>(j)])] = 0;
      in[2 * j] = keys[static_cast<size_t>(j)];
      in[2 * j + 1] = values[static_cast<size_t>(j)];
    }
    // K distinct gaps, successive weighted draws without replacement (numpy's choice(p=...)).
    std::vector<double> w(gap_weight.begin(), gap_weight.begin() + space);
    double total = 0;
    for (double x : w) total += x;
    for (int64_t j = 0; j < K; ++j) {
      double u = rng.unit() * total, acc = 0;
      int64_t pick = -1;
      for (int64_t g = 0; g < space; ++g) {
        if (w[static_cast<size_t>(g)] == 0) continue;
        pick = g;  // the last available one absorbs rounding
        acc += w[static_cast<size_t>(g)];
        if (acc >= u) break;
      }
      SKEIN_ASSERT(pick >= 0, "mqar: no gap left");
      total -= w[static_cast<size_t>(pick)];
      w[static_cast<size_t>(pick)] = 0;
      const int64_t pos = 2 * K + 2 * pick;
      in[pos] = keys[static_cast<size_t>(j)];
      tg[pos] = values[static_cast<size_t>(j)];
    }
    if (opt.random_non_queries)
      for (int64_t p = 2 * K; p < L; ++p)
        if (in[p] == 0) in[p] = rng.below(V);
  }
  return b;
}

double mqar_accuracy(const Tensor& predictions, const Tensor& targets, int64_t ignore_index) {
  SKEIN_CHECK(targets.dim() == 2 && targets.dtype() == DType::i64, "mqar_accuracy: targets must be [B, L] i64, got ",
              shape_str(targets.shape()), " ", dtype_name(targets.dtype()));
  const int64_t B = targets.size(0), L = targets.size(1);
  std::vector<int64_t> pred(static_cast<size_t>(B * L));
  if (is_floating(predictions.dtype())) {
    SKEIN_CHECK(predictions.dim() == 3 && predictions.size(0) == B && predictions.size(1) == L,
                "mqar_accuracy: logits ", shape_str(predictions.shape()), " must be [B, L, V] with targets ",
                shape_str(targets.shape()));
    const int64_t V = predictions.size(2);
    Tensor c = predictions.contiguous();
    SKEIN_DISPATCH_FLOAT(c.dtype(), "mqar_accuracy", [&] {
      const scalar_t* p = c.data<scalar_t>();
      for (int64_t r = 0; r < B * L; ++r)
        pred[static_cast<size_t>(r)] = std::max_element(p + r * V, p + (r + 1) * V) - (p + r * V);
    });
  } else {
    SKEIN_CHECK(predictions.shape() == targets.shape(), "mqar_accuracy: predicted ids ",
                shape_str(predictions.shape()), " must match targets ", shape_str(targets.shape()));
    std::vector<double> v = predictions.to_vector();
    for (size_t i = 0; i < v.size(); ++i) pred[i] = static_cast<int64_t>(v[i]);
  }
  Tensor t = targets.contiguous();
  const int64_t* tg = t.data<int64_t>();
  double sum = 0;
  int64_t examples = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t hit = 0, count = 0;
    for (int64_t i = b * L; i < (b + 1) * L; ++i) {
      if (tg[i] == ignore_index) continue;
      ++count;
      hit += pred[static_cast<size_t>(i)] == tg[i];
    }
    if (count == 0) continue;
    sum += static_cast<double>(hit) / static_cast<double>(count);
    ++examples;
  }
  SKEIN_CHECK(examples > 0, "mqar_accuracy: no target position differs from ignore_index ", ignore_index);
  return sum / static_cast<double>(examples);
}

MqarSource::MqarSource(const MqarOptions& opt, int64_t batch_size, uint64_t seed, int64_t dp_rank,
                       int64_t dp_size)
    : opt_(opt), batch_size_(batch_size), dp_rank_(dp_rank), dp_size_(dp_size), seed_(seed) {
  check_mqar(opt);
  check_shard("MqarSource", batch_size, dp_rank, dp_size);
}

Batch MqarSource::next() {
  Batch b = mqar_batch(opt_, seed_, consumed_ + dp_rank_ * batch_size_, batch_size_);
  consumed_ += dp_size_ * batch_size_;
  return b;
}

void MqarSource::set_cursor(const Cursor& c) {
  SKEIN_CHECK(c.epoch == 0 && c.position >= 0, "MqarSource: cursor {epoch ", c.epoch, ", position ",
              c.position, "} is invalid (epoch must be 0, position >= 0)");
  consumed_ = c.position;
}

// ---------------------------------------------------------------- in-context regression

IclBatch icl_regression_batch(const IclRegressionOptions& opt, uint64_t seed, int64_t first_example,
                              int64_t batch_size, DType dtype) {
  check_icl(opt);
  SKEIN_CHECK(batch_size > 0 && first_example >= 0, "icl_regression: batch_size ", batch_size,
              " must be positive and first_example ", first_example, " >= 0");
  SKEIN_CHECK(is_floating(dtype), "icl_regression: dtype ", dtype_name(dtype), " must be f32 or f64");
  const int64_t d = opt.dim, n = opt.n_points, C = d + 1;
  const int64_t active = opt.active_dim > 0 ? opt.active_dim : d;  // coordinates drawn (curriculum)
  std::vector<double> in(static_cast<size_t>(batch_size * 2 * n * C), 0.0);
  std::vector<double> y(static_cast<size_t>(batch_size * n)), w(static_cast<size_t>(batch_size * d), 0.0);
  const double w_scale = 1.0 / std::sqrt(static_cast<double>(active));
  for (int64_t e = 0; e < batch_size; ++e) {
    Stream rng(seed, first_example + e, kIclTag);
    double* we = w.data() + e * d;
    for (int64_t k = 0; k < active; ++k) we[k] = rng.normal() * w_scale;
    for (int64_t i = 0; i < n; ++i) {
      double* xt = in.data() + ((e * 2 * n) + 2 * i) * C;  // token 2i = [x_i, 0]
      double dot = 0;
      for (int64_t k = 0; k < active; ++k) {
        xt[k] = rng.normal();
        dot += we[k] * xt[k];
      }
      double yi = dot + opt.noise * rng.normal();  // eps drawn even when noise = 0
      y[static_cast<size_t>(e * n + i)] = yi;
      xt[C + d] = yi;  // token 2i + 1 = [0, ..., 0, y_i]
    }
  }
  return {from_vector(in, {batch_size, 2 * n, C}, dtype), from_vector(y, {batch_size, n}, dtype),
          from_vector(w, {batch_size, d}, dtype)};
}

double icl_regression_mse(const Tensor& predictions, const Tensor& targets) {
  int64_t B, n;
  std::vector<double> q = icl_query_predictions(predictions, targets, &B, &n);
  std::vector<double> y = targets.to_vector();
  double s = 0;
  for (size_t i = 0; i < q.size(); ++i) s += (q[i] - y[i]) * (q[i] - y[i]);
  return s / static_cast<double>(B * n);
}

std::vector<double> icl_regression_mse_per_point(const Tensor& predictions, const Tensor& targets) {
  int64_t B, n;
  std::vector<double> q = icl_query_predictions(predictions, targets, &B, &n);
  std::vector<double> y = targets.to_vector(), out(static_cast<size_t>(n), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i) {
      double r = q[static_cast<size_t>(b * n + i)] - y[static_cast<size_t>(b * n + i)];
      out[static_cast<size_t>(i)] += r * r / static_cast<double>(B);
    }
  return out;
}

Tensor icl_regression_loss(const Tensor& predictions, const Tensor& targets) {
  int64_t B, n;
  icl_query_predictions(predictions, targets, &B, &n);  // shape checks
  Tensor q = predictions;
  if (predictions.numel() == 2 * B * n) q = predictions.reshape({B, n, 2}).narrow(2, 0, 1).reshape({B, n});
  Tensor r = sub(q, targets.to(predictions.dtype()));
  return mean(mul(r, r));
}

IclRegressionSource::IclRegressionSource(const IclRegressionOptions& opt, int64_t batch_size,
                                         uint64_t seed, int64_t dp_rank, int64_t dp_size, DType dtype,
                                         const IclCurriculum& curriculum)
    : opt_(opt), batch_size_(batch_size), dp_rank_(dp_rank), dp_size_(dp_size), seed_(seed), dtype_(dtype),
      curriculum_(curriculum) {
  check_icl(opt);
  check_shard("IclRegressionSource", batch_size, dp_rank, dp_size);
  const IclCurriculum& c = curriculum_;
  SKEIN_CHECK(c.interval_examples >= 0 && c.start_dim >= 1 && c.start_points >= 1 && c.dim_step >= 0 &&
                  c.points_step >= 0,
              "IclRegressionSource: curriculum start dim ", c.start_dim, " / points ", c.start_points, ", steps ",
              c.dim_step, " / ", c.points_step, " and interval ", c.interval_examples, " must be positive");
}

IclRegressionOptions IclRegressionSource::current() const {
  IclRegressionOptions o = opt_;
  if (curriculum_.interval_examples <= 0) return o;
  const int64_t stage = consumed_ / curriculum_.interval_examples;
  o.active_dim = std::min(opt_.dim, curriculum_.start_dim + stage * curriculum_.dim_step);
  o.n_points = std::min(opt_.n_points, curriculum_.start_points + stage * curriculum_.points_step);
  return o;
}

Batch IclRegressionSource::next() {
  IclBatch b = icl_regression_batch(current(), seed_, consumed_ + dp_rank_ * batch_size_, batch_size_, dtype_);
  consumed_ += dp_size_ * batch_size_;
  return {b.inputs, b.targets};
}

void IclRegressionSource::set_cursor(const Cursor& c) {
  SKEIN_CHECK(c.epoch == 0 && c.position >= 0, "IclRegressionSource: cursor {epoch ", c.epoch,
              ", position ", c.position, "} is invalid (epoch must be 0, position >= 0)");
  consumed_ = c.position;
}

}  // namespace skein
