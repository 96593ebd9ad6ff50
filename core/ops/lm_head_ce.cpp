// lm_head_ce.cpp — the LM head and mean cross-entropy, fused and chunked over rows
// (core/ops.h): the [N, V] logits exist one chunk of rows at a time, and so does their
// gradient. With grad, each chunk's softmax - onehot is turned into its share of dh and dW
// right away (two GEMMs), so backward is one scaling by the incoming gradient: the FLOPs are
// those of the unfused head (3 GEMMs) and the memory is dh [N, D] + dW [V, D] instead of
// 2 x [N, V]. The rows carry softmax - onehot UNSCALED, and 1 / count joins the incoming
// gradient in backward: under bf16-mixed those rows are rounded to bf16 for the two GEMMs, and
// rounding is scale-invariant only for powers of two, so a per-rank 1 / n_r folded in before
// the rounding would make each rank round differently from one process on the whole batch
// (data / sequence parallelism; parallel/data_parallel.h's loss normalisation).
// reference: Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training", 2024
// (fused linear cross-entropy); Wijmans et al., "Cut Your Losses in Large-Vocabulary
// Language Models", 2024.
#include <algorithm>
#include <cmath>
#include "core/cpu/loops.h"
#include "core/ops.h"
#include "core/ops/op_util.h"
#include "core/threadpool.h"

namespace skein {
namespace {

// Rows of logits per chunk when the caller gives none: ~4M entries (16 MB in f32), at least 64.
int64_t default_chunk_rows(int64_t V) { return std::max<int64_t>(64, (int64_t{1} << 22) / std::max<int64_t>(1, V)); }

// One chunk of rows, in place: lse per row into `lse`; with grad, the row becomes
// softmax - onehot (zero for ignored rows). x: [n, V] contiguous.
template <typename T>
void chunk_rows(T* x, int64_t n, int64_t V, const int64_t* t, int64_t ignore_index, bool grad, double* lse) {
  parallel_for(0, n, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, V)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T* row = x + r * V;
      const T m = cpu::max_lanes(row, V);
      const double s = cpu::sum_exp(row, m, V);
      const T l = static_cast<T>(std::log(s)) + m;  // as cross_entropy rounds it
      lse[r] = static_cast<double>(l) - (t[r] == ignore_index ? 0.0 : static_cast<double>(row[t[r]]));
      if (!grad) continue;
      if (t[r] == ignore_index) { std::fill(row, row + V, T(0)); continue; }
      for (int64_t i = 0; i < V; ++i) row[i] = cpu::exp_of(row[i] - l);
      row[t[r]] -= T(1);
    }
  });
}

}  // namespace

Tensor lm_head_cross_entropy(const Tensor& h, const Tensor& weight, const Tensor& targets, int64_t ignore_index,
                             int64_t chunk_rows_arg) {
  const char* op = "lm_head_cross_entropy";
  SKEIN_CHECK(h.dim() == 2, op, ": h must be [N, D], got ", shape_str(h.shape()));
  SKEIN_CHECK(weight.dim() == 2 && weight.size(1) == h.size(1), op, ": weight ", shape_str(weight.shape()),
              " must be [V, D] with D = ", h.size(1), " (h is ", shape_str(h.shape()), ")");
  SKEIN_CHECK(h.dtype() == weight.dtype() && is_floating(h.dtype()), op, ": h and weight must share a floating "
              "dtype, got ", dtype_name(h.dtype()), " and ", dtype_name(weight.dtype()));
  SKEIN_CHECK(targets.dim() == 1 && targets.size(0) == h.size(0), op, ": targets ", shape_str(targets.shape()),
              " do not match h ", shape_str(h.shape()));
  SKEIN_CHECK(!is_floating(targets.dtype()), op, ": targets must be i32 or i64, got ", dtype_name(targets.dtype()));
  SKEIN_CHECK(chunk_rows_arg >= 0, op, ": chunk_rows must be >= 0, got ", chunk_rows_arg);
  if (ops::common_device(op, {h, weight, targets}) != Device::cpu)  // the fused kernel is CPU-only so far:
    return cross_entropy(matmul(h, weight.transpose(0, 1)), targets, ignore_index);  // the same loss, unfused
  const int64_t N = h.size(0), D = h.size(1), V = weight.size(0);
  Tensor t = targets.to(DType::i64).contiguous();
  const int64_t* pt = t.data<int64_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (pt[i] == ignore_index) continue;
    SKEIN_CHECK(pt[i] >= 0 && pt[i] < V, op, ": target ", pt[i], " at row ", i, " is outside the vocabulary [0, ",
                V, ")");
    ++count;
  }
  const bool grad = any_requires_grad({h, weight});
  const double inv_count = count ? 1.0 / static_cast<double>(count) : 0.0;
  const int64_t rows = chunk_rows_arg > 0 ? chunk_rows_arg : default_chunk_rows(V);
  Tensor hd = h.detach(), wd = weight.detach();
  Tensor dh = grad ? Tensor::empty({N, D}, h.dtype()) : Tensor();
  Tensor dw = grad ? zeros({V, D}, h.dtype()) : Tensor();
  std::vector<double> row_loss(static_cast<size_t>(N));
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    NoGradGuard no_grad;
    const int64_t n = std::min(rows, N - r0);
    const Tensor hc = ops::gemm_operand(hd.narrow(0, r0, n));  // bf16-mixed: rounded once, for logits and dW
    Tensor x = ops::matmul_data(hc, wd.transpose(0, 1)).contiguous();  // [n, V]: this chunk's logits
    SKEIN_DISPATCH_FLOAT(x.dtype(), op, [&] {
      chunk_rows(x.data<scalar_t>(), n, V, pt + r0, ignore_index, grad, row_loss.data() + r0);
    });
    if (!grad) continue;
    Tensor dh_c = dh.narrow(0, r0, n);
    const Tensor xg = ops::gemm_operand(x);          // bf16-mixed: rounded once for both GEMMs
    copy_(dh_c, ops::matmul_data(xg, wd));                // [n, V] x [V, D]
    add_(dw, ops::matmul_data(xg.transpose(0, 1), hc));  // [V, n] x [n, D]
  }
  double total = 0;  // in row order, as cross_entropy sums
  for (int64_t r = 0; r < N; ++r)
    if (pt[r] != ignore_index) total += row_loss[static_cast<size_t>(r)];
  Tensor loss = full({}, count ? total / static_cast<double>(count) : 0.0, h.dtype());
  if (!grad) return loss;
  return record(op, loss, {h, weight}, [dh, dw, inv_count](const Tensor& g) {
    const double s = g.item() * inv_count;  // d(mean) / d(row) = 1 / count, times the incoming gradient
    return std::vector<Tensor>{mul(dh, s), mul(dw, s)};
  });
}

}  // namespace skein
