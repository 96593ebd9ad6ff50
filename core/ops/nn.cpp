// nn.cpp — softmax, log_softmax, cross_entropy, embedding, dropout. Row-wise ops work on the
// last dim (other dims are moved there by views); each has a fused backward. The kernels are the
// row-fused and index families of the inputs' device.
#include "core/ops.h"
#include "core/ops/op_util.h"

namespace skein {
namespace {

// Moves `dim` to the end (a view), applies a last-dim op, and moves it back.
template <typename F>
Tensor along_last(const Tensor& a, int64_t dim, const char* op, F f) {
  dim = wrap_dim(dim, a.dim(), op);
  if (dim == a.dim() - 1) return f(a);
  return f(a.transpose(dim, -1)).transpose(dim, -1);
}

Tensor softmax_last(const Tensor& a, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  SKEIN_CHECK(a.defined() && a.dim() >= 1, op, ": need at least 1 dim");
  SKEIN_CHECK(is_floating(a.dtype()), op, ": dtype ", dtype_name(a.dtype()), " is not supported (need f32 or f64)");
  Tensor x = ops::contiguous_data(a);
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  const int64_t n = a.shape().back(), rows = n ? a.numel() / n : 0;
  kern::kernels(a.device()).softmax_fwd(a.dtype(), x.raw_data(), y.raw_data(), rows, n, log);
  return record(op, y, {a}, [y, n, rows, log](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    ops::kernels_for("softmax backward", {g, y}).softmax_bwd(g.dtype(), g.raw_data(), y.raw_data(),
                                                             dx.raw_data(), rows, n, log);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) {
  return along_last(a, dim, "softmax", [](const Tensor& t) { return softmax_last(t, false); });
}

Tensor log_softmax(const Tensor& a, int64_t dim) {
  return along_last(a, dim, "log_softmax", [](const Tensor& t) { return softmax_last(t, true); });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const Device dev = ops::common_device("cross_entropy", {logits, targets});
  SKEIN_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, V], got ", shape_str(logits.shape()));
  SKEIN_CHECK(targets.dim() == 1 && targets.shape()[0] == logits.shape()[0], "cross_entropy: targets ",
              shape_str(targets.shape()), " do not match logits ", shape_str(logits.shape()));
  SKEIN_CHECK(!is_floating(targets.dtype()), "cross_entropy: targets must be i32 or i64, got ",
              dtype_name(targets.dtype()));
  SKEIN_CHECK(is_floating(logits.dtype()), "cross_entropy: logits must be f32 or f64, got ",
              dtype_name(logits.dtype()));
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  Tensor x = ops::contiguous_data(logits);
  Tensor t = targets.to(DType::i64).contiguous();
  Tensor lse = Tensor::empty({N}, logits.dtype(), dev);
  Tensor loss = Tensor::empty({}, logits.dtype(), dev);
  Tensor count = Tensor::empty({}, DType::i64, dev);  // rows that count, on the device
  kern::kernels(dev).cross_entropy_fwd(logits.dtype(), x.raw_data(), t.data_ptr<int64_t>(), lse.raw_data(),
                                       loss.raw_data(), count.data_ptr<int64_t>(), N, V, ignore_index);
  return record("cross_entropy", loss, {logits}, [x, t, lse, count, ignore_index, N, V](const Tensor& g_in) {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty({N, V}, x.dtype(), x.device());
    ops::kernels_for("cross_entropy backward", {g, x}).cross_entropy_bwd(
        x.dtype(), x.raw_data(), t.data_ptr<int64_t>(), lse.raw_data(), g.raw_data(),
        count.data_ptr<int64_t>(), dx.raw_data(), N, V, ignore_index);
    return std::vector<Tensor>{dx};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const Device dev = ops::common_device("embedding", {weight, ids});
  SKEIN_CHECK(weight.dim() == 2, "embedding: weight must be [V, D], got ", shape_str(weight.shape()));
  SKEIN_CHECK(!is_floating(ids.dtype()), "embedding: ids must be i32 or i64, got ", dtype_name(ids.dtype()));
  SKEIN_CHECK(is_floating(weight.dtype()), "embedding: weight must be f32 or f64, got ", dtype_name(weight.dtype()));
  const int64_t V = weight.shape()[0], D = weight.shape()[1];
  Tensor idx = ids.to(DType::i64).contiguous();
  const int64_t n = idx.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor w = ops::contiguous_data(weight);
  Tensor out = Tensor::empty(out_shape, weight.dtype(), dev);
  kern::kernels(dev).gather_rows(weight.dtype(), w.raw_data(), idx.data_ptr<int64_t>(), out.raw_data(), n, D, V);
  return record("embedding", out, {weight}, [idx, V, D](const Tensor& g) {
    return std::vector<Tensor>{scatter_rows(g.reshape({-1, D}), idx.reshape({-1}), V)};
  });
}

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  SKEIN_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  SKEIN_CHECK(is_floating(x.dtype()), "dropout: x must be f32 or f64, got ", dtype_name(x.dtype()));
  // mask = (u >= p) / (1 - p), u uniform from gen: the same Philox numbers on every device.
  const int64_t n = x.numel();
  const uint64_t base = gen.advance(static_cast<uint64_t>((n + 3) / 4));
  Tensor u = Tensor::empty(x.shape(), x.dtype(), x.device());
  const auto& k = kern::kernels(x.device());
  k.philox_uniform(x.dtype(), u.raw_data(), n, gen.seed(), base, 0.0, 1.0);
  Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::launch_map(kern::MapOp::dropout_mask, mask, {u}, p, 1.0 / (1.0 - p));
  return mul(x, mask);
}

}  // namespace skein
