// synthetic.h — synthetic tasks that produce training batches without a corpus:
// multi-query associative recall (MQAR) and in-context linear regression, each as a pure
// batch function of (seed, example index), a resumable BatchSource and its metric.
//
// Both are reproducible: example e of a stream depends only on (seed, e) through Philox, so
// results do not depend on batch size, rank layout or thread count. Use disjoint seeds for
// train and eval streams (zoology draws them from disjoint ranges).
//
// Sharding (both sources): the stream of examples is split into global batches of
// dp_size * batch_size; rank r takes the r-th run of batch_size examples. Cursor.position =
// examples consumed globally (epoch is always 0).
#pragma once
#include <cstdint>
#include <vector>
#include "core/tensor.h"
#include "data/loader.h"

namespace skein {

// ---------------------------------------------------------------- MQAR
// reference: Arora, Eyuboglu et al., "Zoology: Measuring and Improving Recall in Efficient
// Language Models", 2023 (arXiv 2312.04927); generator HazyResearch/zoology
// zoology/data/multiquery_ar.py (num_passes = 1).
//
// Per example (L = seq_len, K = num_kv_pairs, V = vocab_size):
//   keys: K distinct ids from [1, V/2); values: K distinct ids from [V/2, V);
//   inputs[0 : 2K] = k1 v1 k2 v2 ... kK vK;
//   space = (L - 2K) / 2 query slots; K distinct gaps g_j in [0, space) drawn without
//   replacement with p(g) proportional to (g + 1)^(power_a - 1) (favours small gaps);
//   inputs[2K + 2 g_j] = k_j and targets[2K + 2 g_j] = v_j — the model must emit the value at
//   the position where its key is queried; every other target is -100 (ignored);
//   the remaining input positions are 0, or uniform ids in [0, V) if random_non_queries.
struct MqarOptions {
  int64_t vocab_size = 8192;
  int64_t seq_len = 64;      // L: even, >= 4 * num_kv_pairs
  int64_t num_kv_pairs = 4;  // K
  double power_a = 0.01;
  bool random_non_queries = true;  // zoology's default (its Figure 2 configs use false)
  // > 0: a training mixture as Zoology trains (easier settings beside the target one): each
  // example draws its own pair count uniformly from the ladder {m, 2m, 4m, ..., < K} plus K itself
  // (m = min_kv_pairs), its queries filling the rest of the same seq_len. 0: every example has K.
  int64_t min_kv_pairs = 0;
  // > 0 (with a mixture): rung i of the ladder is an example of min(seq_len, min_seq_len * 2^i)
  // tokens, the last rung (the target) of seq_len, as Zoology pairs 4 pairs with 64 tokens, 8
  // with 128, 16 and up with 256: the
  // example fills the first tokens of the row, the rest is 0 without targets (a causal model
  // sees exactly the shorter sequence). 0: every example fills seq_len.
  int64_t min_seq_len = 0;
  // > 0 (with a mixture): a curriculum instead of a mixture — example i (of the global stream)
  // is rung min(i / curriculum_examples, last) of the ladder, so training walks the rungs in
  // order and stays on the last (a resumed run, or any data-parallel split, continues it).
  int64_t curriculum_examples = 0;
};

// The pair counts a mixture draws from ({num_kv_pairs} when min_kv_pairs is 0).
std::vector<int64_t> mqar_kv_ladder(const MqarOptions& opt);
// The example length of each rung of mqar_kv_ladder (seq_len everywhere when min_seq_len is 0).
std::vector<int64_t> mqar_len_ladder(const MqarOptions& opt);

// Examples [first_example, first_example + batch_size) of the stream `seed`.
// inputs, targets: [batch_size, seq_len] i64.
Batch mqar_batch(const MqarOptions& opt, uint64_t seed, int64_t first_example, int64_t batch_size);

// Accuracy over the queried positions (targets != ignore_index): per example, then the mean
// over examples (zoology's compute_metrics). predictions: [B, L] integer ids, or [B, L, V]
// logits (argmax over V). targets: [B, L] i64.
double mqar_accuracy(const Tensor& predictions, const Tensor& targets, int64_t ignore_index = -100);

class MqarSource final : public BatchSource {
 public:
  MqarSource(const MqarOptions& opt, int64_t batch_size, uint64_t seed, int64_t dp_rank = 0,
             int64_t dp_size = 1);
  Batch next() override;
  Cursor cursor() const override { return {0, consumed_}; }
  void set_cursor(const Cursor& c) override;

 private:
  MqarOptions opt_;
  int64_t batch_size_, dp_rank_, dp_size_;
  uint64_t seed_;
  int64_t consumed_ = 0;
};

// ---------------------------------------------------------------- in-context regression
// reference: Garg et al., "What Can Transformers Learn In-Context? A Case Study of Simple
// Function Classes", NeurIPS 2022 (arXiv 2208.01066) — interleaved x / y tokens; von Oswald
// et al., "Transformers Learn In-Context by Gradient Descent", ICML 2023 (arXiv 2212.07677) —
// the y carried in an extra channel.
//
// Per sequence: w ~ N(0, I/dim), x_i ~ N(0, I_dim), y_i = w·x_i + noise * eps_i, eps ~ N(0, 1),
// i = 0..n_points-1. The sequence has 2 * n_points tokens of dim + 1 channels:
//   token 2i     = [x_i, 0]        (the query for y_i)
//   token 2i + 1 = [0, ..., 0, y_i] (the answer, visible to later positions)
// A causal model reads token 2i and must predict y_i from x_i and the pairs before it.
// How to train on it: the model consumes these vectors through a read-in linear layer
// (dim + 1 -> d_model) in place of the token embedding and emits one scalar per position
// through a read-out linear layer (d_model -> 1); the loss is the squared error at the even
// positions (icl_regression_loss). Baselines: predicting 0 gives MSE E[y^2] = 1 + noise^2;
// least squares on k >= dim noise-free points gives 0.
struct IclRegressionOptions {
  int64_t dim = 8;
  int64_t n_points = 32;
  double noise = 0.0;  // standard deviation of the additive noise on y
  // Curriculum (Garg et al. §3): only the first active_dim coordinates of x and w are drawn,
  // the others are 0 (the tokens keep dim + 1 channels); w ~ N(0, I/active_dim) so that
  // E[y^2] stays 1. 0: all dim coordinates.
  int64_t active_dim = 0;
};

// Garg et al.'s curriculum: training starts at start_dim coordinates and start_points points
// and adds dim_step / points_step every `interval` steps, up to the task's dim / n_points.
// reference: Garg et al. 2022 §3 "Curriculum" (5 -> 20 dims +1, 11 -> 41 points +2, every 2000 steps).
struct IclCurriculum {
  int64_t start_dim = 2, start_points = 8, dim_step = 1, points_step = 2;
  int64_t interval_examples = 0;  // global examples per stage (steps * global batch); 0: off
};

struct IclBatch {
  Tensor inputs;   // [B, 2 * n_points, dim + 1]
  Tensor targets;  // [B, n_points]: y_i
  Tensor w;        // [B, dim]: the task vector of each sequence
};

IclBatch icl_regression_batch(const IclRegressionOptions& opt, uint64_t seed, int64_t first_example,
                              int64_t batch_size, DType dtype = DType::f32);

// Mean squared error over all query positions. predictions: [B, 2n] or [B, 2n, 1] (one scalar
// per position; the even positions are used) or [B, n]. targets: [B, n].
double icl_regression_mse(const Tensor& predictions, const Tensor& targets);
// The same, per point index i (averaged over the batch): the in-context learning curve.
std::vector<double> icl_regression_mse_per_point(const Tensor& predictions, const Tensor& targets);
// Differentiable mean squared error (built from autograd ops), same shapes; a scalar tensor.
Tensor icl_regression_loss(const Tensor& predictions, const Tensor& targets);

// The classical in-context estimators of Garg et al. (§3 and Figure 2), run on the same
// sequences (data/synthetic_baselines.cpp): at point i each sees pairs 0..i-1 and predicts
// y_i (0 at i = 0). least_squares: the minimum-norm least-squares fit (LAPACK dgelss);
// nearest_3: the mean y of the 3 nearest earlier x; averaging: w = (1/i) Σ_j y_j x_j.
enum class IclBaseline { least_squares, nearest_3, averaging };
const char* icl_baseline_name(IclBaseline b);  // "least_squares", "nearest_3", "averaging"
// inputs: [B, 2n, dim + 1] (the interleaved tokens), targets: [B, n] -> predictions [B, n] (f64).
Tensor icl_baseline_predictions(const Tensor& inputs, const Tensor& targets, IclBaseline b);

class IclRegressionSource final : public BatchSource {
 public:
  IclRegressionSource(const IclRegressionOptions& opt, int64_t batch_size, uint64_t seed,
                      int64_t dp_rank = 0, int64_t dp_size = 1, DType dtype = DType::f32,
                      const IclCurriculum& curriculum = {});
  // inputs [B, 2n, dim+1], targets [B, n]; with a curriculum n and the active dims are the
  // stage's (stage = examples consumed / interval_examples, so a resumed run continues it).
  Batch next() override;
  // The options of the batch that next() returns now.
  IclRegressionOptions current() const;
  Cursor cursor() const override { return {0, consumed_}; }
  void set_cursor(const Cursor& c) override;

 private:
  IclRegressionOptions opt_;
  int64_t batch_size_, dp_rank_, dp_size_;
  uint64_t seed_;
  DType dtype_;
  IclCurriculum curriculum_;
  int64_t consumed_ = 0;
};

}  // namespace skein
