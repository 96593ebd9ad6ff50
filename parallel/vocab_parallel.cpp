// vocab_parallel.cpp — vocab_parallel_cross_entropy (parallel/vocab_parallel.h). Per row r
// with this rank's valid columns z (padding excluded), m = max over ranks of max z,
// S = Σ over ranks of Σ exp(z − m), loss_r = log S + m − z[target]; sums in double.
#include "parallel/vocab_parallel.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include "core/autograd.h"
#include "core/ops.h"
#include "core/threadpool.h"

namespace skein {

Tensor vocab_parallel_cross_entropy(Communicator& tp, const Tensor& logits, const Tensor& targets,
                                    int64_t vocab_start, int64_t vocab_size, int64_t ignore_index) {
  const char* op = "vocab_parallel_cross_entropy";
  SKEIN_CHECK(logits.dim() == 2, op, ": logits must be [N, V_shard], got ", shape_str(logits.shape()));
  SKEIN_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets ",
              shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()));
  SKEIN_CHECK(!is_floating(targets.dtype()), op, ": targets must be i32 or i64, got ", dtype_name(targets.dtype()));
  SKEIN_CHECK(vocab_start >= 0, op, ": vocab_start must be >= 0, got ", vocab_start);
  const int64_t N = logits.size(0), V = logits.size(1);
  // This shard's non-padding columns (none on a shard made only of padding).
  const int64_t valid = std::clamp<int64_t>(vocab_size - vocab_start, 0, V);
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, V));
  Tensor x = logits.detach().contiguous();
  Tensor t = targets.to(DType::i64).contiguous();
  const int64_t* pt = t.data<int64_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (pt[i] == ignore_index) continue;
    SKEIN_CHECK(pt[i] >= 0 && pt[i] < vocab_size, op, ": target ", pt[i], " at row ", i,
                " is outside the vocabulary [0, ", vocab_size, ")");
    ++count;
  }
  // (1) the row max over every rank's valid columns
  Tensor row_max = full({N}, -std::numeric_limits<double>::infinity(), DType::f64);
  double* pm = row_max.data<double>();
  SKEIN_DISPATCH_FLOAT(x.dtype(), op, [&] {
    const scalar_t* px = x.data<scalar_t>();
    parallel_for(0, N, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r)
        for (int64_t j = 0; j < valid; ++j) pm[r] = std::max(pm[r], static_cast<double>(px[r * V + j]));
    });
  });
  tp.all_reduce(row_max, ReduceOp::max);
  // (2) Σ exp(z − m) over the valid columns and the target's logit (0 where another rank holds it)
  Tensor sums = zeros({2, N}, DType::f64);
  double *ps = sums.data<double>(), *pz = ps + N;
  SKEIN_DISPATCH_FLOAT(x.dtype(), op, [&] {
    const scalar_t* px = x.data<scalar_t>();
    parallel_for(0, N, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        for (int64_t j = 0; j < valid; ++j) ps[r] += std::exp(static_cast<double>(px[r * V + j]) - pm[r]);
        const int64_t local = pt[r] - vocab_start;
        if (pt[r] != ignore_index && local >= 0 && local < valid) pz[r] = static_cast<double>(px[r * V + local]);
      }
    });
  });
  tp.all_reduce(sums);
  Tensor lse = Tensor::empty({N}, DType::f64);  // log Σ exp over the whole vocabulary
  double total = 0.0;
  for (int64_t r = 0; r < N; ++r) {
    lse.data<double>()[r] = std::log(ps[r]) + pm[r];
    if (pt[r] != ignore_index) total += lse.data<double>()[r] - pz[r];
  }
  Tensor loss = scalar(count ? total / static_cast<double>(count) : 0.0, logits.dtype());
  return record("vocab_parallel_cross_entropy", loss, {logits},
                [x, t, lse, count, ignore_index, vocab_start, valid, grain, N, V](const Tensor& g) {
    Tensor dx = zeros({N, V}, x.dtype());  // padding columns and ignored rows stay 0
    if (count == 0) return std::vector<Tensor>{dx};
    const double scale = g.item() / static_cast<double>(count);
    SKEIN_DISPATCH_FLOAT(x.dtype(), "vocab_parallel_cross_entropy backward", [&] {
      const scalar_t* px = x.data<scalar_t>();
      const int64_t* pt = t.data<int64_t>();
      const double* pl = lse.data<double>();
      scalar_t* pd = dx.data<scalar_t>();
      parallel_for(0, N, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {  // (softmax − onehot) · g / count
          if (pt[r] == ignore_index) continue;
          for (int64_t j = 0; j < valid; ++j)
            pd[r * V + j] = static_cast<scalar_t>(std::exp(static_cast<double>(px[r * V + j]) - pl[r]) * scale);
          const int64_t local = pt[r] - vocab_start;
          if (local >= 0 && local < valid) pd[r * V + local] -= static_cast<scalar_t>(scale);
        }
      });
    });
    return std::vector<Tensor>{dx};
  });
}

}  // namespace skein
