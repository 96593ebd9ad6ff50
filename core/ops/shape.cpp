// shape.cpp — views (view, reshape, permute, transpose, narrow, expand), copies
// (contiguous, clone, to) and joining/splitting (cat, stack, split), with their backward.
#include <numeric>
#include "core/ops.h"

namespace skein {
namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Shape infer_shape(Shape shape, int64_t numel, const Shape& from, const char* op) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SKEIN_CHECK(infer < 0, op, ": more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      SKEIN_CHECK(shape[i] >= 0, op, ": negative size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    SKEIN_CHECK(known > 0 && numel % known == 0, op, ": cannot view ", shape_str(from), " as ",
                shape_str(shape));
    shape[infer] = numel / known;
  }
  SKEIN_CHECK(shape_numel(shape) == numel, op, ": cannot view ", shape_str(from), " (", numel,
              " elements) as ", shape_str(shape));
  return shape;
}

}  // namespace

Tensor Tensor::view(const Shape& shape_in) const {
  Shape new_shape = infer_shape(shape_in, numel(), shape(), "view");
  SKEIN_CHECK(is_contiguous(), "view: tensor ", shape_str(shape()),
              " is not contiguous; use reshape (which copies)");
  Tensor out = make_view(*this, new_shape, contiguous_strides(new_shape), offset());
  Shape in_shape = shape();
  return record("view", out, {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::permute(const Shape& dims_in) const {
  SKEIN_CHECK(static_cast<int64_t>(dims_in.size()) == dim(), "permute: ", shape_str(dims_in),
              " for a tensor of shape ", shape_str(shape()));
  Shape dims(dims_in.size()), shape(dims_in.size()), strides(dims_in.size()), inverse(dims_in.size());
  std::vector<bool> used(dims_in.size(), false);
  for (size_t i = 0; i < dims_in.size(); ++i) {
    int64_t d = wrap_dim(dims_in[i], dim(), "permute");
    SKEIN_CHECK(!used[d], "permute: dim ", d, " repeated in ", shape_str(dims_in));
    used[d] = true;
    dims[i] = d;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
    inverse[d] = static_cast<int64_t>(i);
  }
  Tensor out = make_view(*this, shape, strides, offset());
  return record("permute", out, {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  Shape perm(dim());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[wrap_dim(d0, dim(), "transpose")], perm[wrap_dim(d1, dim(), "transpose")]);
  return permute(perm);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  SKEIN_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow: [", start, ", ",
              start + length, ") is outside dim ", d, " of shape ", shape_str(shape()));
  Shape shape = this->shape();
  shape[d] = length;
  Tensor out = make_view(*this, shape, strides(), offset() + start * strides()[d]);
  Shape in_shape = this->shape();
  return record("narrow", out, {*this}, [in_shape, d, start, length](const Tensor& g) {
    Tensor gin = zeros(in_shape, g.dtype(), g.device());
    Tensor slot = gin.narrow(d, start, length);
    copy_(slot, g);
    return std::vector<Tensor>{gin};
  });
}

Tensor Tensor::expand(const Shape& shape) const {
  SKEIN_CHECK(static_cast<int64_t>(shape.size()) >= dim(), "expand: cannot expand ",
              shape_str(this->shape()), " to fewer dims ", shape_str(shape));
  size_t lead = shape.size() - this->shape().size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < this->shape().size(); ++i) {
    int64_t have = this->shape()[i], want = shape[lead + i];
    SKEIN_CHECK(have == want || have == 1, "expand: cannot expand ", shape_str(this->shape()),
                " to ", shape_str(shape), " (dim ", lead + i, ": ", have, " vs ", want, ")");
    strides[lead + i] = have == want ? this->strides()[i] : 0;
  }
  Tensor out = make_view(*this, shape, strides, offset());
  // The gradient keeps the expanded shape: accumulate_grad sums the broadcast dims away.
  return record("expand", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  copy_(out, *this);
  return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), dt, device());
  copy_(out, *this);
  if (!is_floating(dt) || !is_floating(dtype())) return out;
  DType from = dtype();
  return record("to", out, {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  SKEIN_CHECK(!ts.empty(), "cat: no tensors");
  const Tensor& first = ts[0];
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    SKEIN_CHECK(t.defined(), "cat: tensor ", i, " is undefined");
    SKEIN_CHECK(t.device() == first.device(), "cat: tensors on different devices: tensor 0 ",
                shape_str(first.shape()), " on ", device_name(first.device()), " and tensor ", i, " ",
                shape_str(t.shape()), " on ", device_name(t.device()));
    bool same = t.dim() == first.dim() && t.dtype() == first.dtype();
    for (int64_t d = 0; same && d < t.dim(); ++d) same = d == dim || t.shape()[d] == first.shape()[d];
    SKEIN_CHECK(same, "cat: tensor ", i, " ", shape_str(t.shape()), " ", dtype_name(t.dtype()),
                " does not match tensor 0 ", shape_str(first.shape()), " ", dtype_name(first.dtype()),
                " outside dim ", dim);
    shape[dim] += t.shape()[dim];
  }
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  Shape sizes;
  int64_t off = 0;
  for (const Tensor& t : ts) {
    Tensor slot = out.narrow(dim, off, t.shape()[dim]);
    copy_(slot, t);
    sizes.push_back(t.shape()[dim]);
    off += t.shape()[dim];
  }
  return record("cat", out, ts, [sizes, dim](const Tensor& g) { return split(g, sizes, dim); });
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  SKEIN_CHECK(!ts.empty(), "stack: no tensors");
  dim = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (const Tensor& t : ts) {
    Shape s = t.shape();
    s.insert(s.begin() + dim, 1);
    parts.push_back(t.reshape(s));
  }
  return cat(parts, dim);
}

std::vector<Tensor> split(const Tensor& t, const Shape& sizes, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "split");
  int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  SKEIN_CHECK(total == t.shape()[dim], "split: sizes ", shape_str(sizes), " sum to ", total,
              " but dim ", dim, " of ", shape_str(t.shape()), " is ", t.shape()[dim]);
  // The pieces are views of t; ONE node: its backward writes every piece's gradient into one
  // buffer (zeros only where a piece received none), where per-piece narrows would each
  // zero-fill a full-size gradient and the engine would add them up.
  std::vector<Tensor> out;
  int64_t off = 0;
  {
    NoGradGuard views_only;
    for (int64_t s : sizes) {
      out.push_back(t.narrow(dim, off, s));
      off += s;
    }
  }
  Shape in_shape = t.shape();
  return record_multi("split", std::move(out), {t}, [in_shape, sizes, dim](const std::vector<Tensor>& gs) {
    const Tensor* any = nullptr;
    bool all = true;
    for (const Tensor& g : gs) {
      if (g.defined()) any = any ? any : &g;
      all = all && g.defined();
    }
    if (!any) return std::vector<Tensor>{Tensor()};
    Tensor gin = all ? Tensor::empty(in_shape, any->dtype(), any->device())
                     : zeros(in_shape, any->dtype(), any->device());
    int64_t at = 0;
    for (size_t i = 0; i < gs.size(); ++i) {
      if (gs[i].defined()) {
        Tensor slot = gin.narrow(dim, at, sizes[i]);
        copy_(slot, gs[i]);
      }
      at += sizes[i];
    }
    return std::vector<Tensor>{gin};
  });
}

std::vector<Tensor> split(const Tensor& t, int64_t size, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "split");
  SKEIN_CHECK(size > 0, "split: piece size must be positive, got ", size);
  Shape sizes;
  for (int64_t off = 0; off < t.shape()[dim]; off += size) sizes.push_back(std::min(size, t.shape()[dim] - off));
  return split(t, sizes, dim);
}

}  // namespace skein
