// tensor.cpp — Storage, the Tensor handle's accessors and the factories.
#include "core/tensor.h"
#include <cstring>
#include <sstream>
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"

namespace skein {

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  data = backend(d).allocate(n);
}
Storage::~Storage() { backend(device).deallocate(data, nbytes); }

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  SKEIN_CHECK(dim >= -ndim && dim < ndim, op, ": dim ", dim, " is out of range for a tensor of ",
              ndim, " dims");
  return dim < 0 ? dim + ndim : dim;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) SKEIN_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (size_t i = impl_->shape.size(); i-- > 0;) {
    if (impl_->shape[i] != 1 && impl_->strides[i] != s) return false;
    s *= impl_->shape[i];
  }
  return true;
}

double Tensor::at(const Shape& index) const {
  SKEIN_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: index ", shape_str(index),
              " for a tensor of shape ", shape_str(shape()));
  if (device() != Device::cpu) return to(Device::cpu).at(index);
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    SKEIN_CHECK(index[i] >= 0 && index[i] < shape()[i], "at: index ", shape_str(index),
                " out of range for shape ", shape_str(shape()));
    off += index[i] * strides()[i];
  }
  if (dtype() == DType::bf16) return bf16_to_f32(static_cast<const bf16*>(impl_->storage->data)[impl_->offset + off]);
  return SKEIN_DISPATCH_ALL(dtype(), "at", [&] {
    return static_cast<double>(static_cast<const scalar_t*>(impl_->storage->data)[impl_->offset + off]);
  });
}

double Tensor::item() const {
  SKEIN_CHECK(numel() == 1, "item: tensor has ", numel(), " elements, shape ", shape_str(shape()));
  return at(Shape(dim(), 0));
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = contiguous().to(Device::cpu);
  std::vector<double> v(c.numel());
  if (dtype() == DType::bf16) {
    const bf16* p = c.data<bf16>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_to_f32(p[i]);
    return v;
  }
  SKEIN_DISPATCH_ALL(dtype(), "to_vector", [&] {
    const scalar_t* p = c.data<scalar_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
  });
  return v;
}

Tensor& Tensor::requires_grad_(bool on) {
  SKEIN_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can require "
              "grad, this one is ", dtype_name(dtype()));
  SKEIN_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad");
  impl_->requires_grad = on;
  return *this;
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  run_backward(*this, grad_output, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->offset = impl_->offset;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << " " << dtype_name(dtype());
  if (device() != Device::cpu) os << " " << device_name(device());
  if (numel() <= 16) {
    os << " {";
    auto v = to_vector();
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << "}";
  }
  return os.str();
}

// ---- factories ----
Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor arange(int64_t start, int64_t end, DType dtype, Device device) {
  SKEIN_CHECK(end >= start, "arange: end ", end, " < start ", start);
  if (device != Device::cpu) return arange(start, end, dtype).to(device);
  Tensor t = Tensor::empty({end - start}, dtype);
  SKEIN_DISPATCH_ALL(dtype, "arange", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < end - start; ++i) p[i] = static_cast<scalar_t>(start + i);
  });
  return t;
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  SKEIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
              values.size(), " values for shape ", shape_str(shape));
  if (device != Device::cpu) return from_vector(values, shape, dtype).to(device);
  Tensor t = Tensor::empty(shape, dtype);
  if (dtype == DType::bf16) {  // through f32, as copy does
    bf16* p = t.data<bf16>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = f32_to_bf16(static_cast<float>(values[i]));
    return t;
  }
  SKEIN_DISPATCH_ALL(dtype, "from_vector", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<scalar_t>(values[i]);
  });
  return t;
}

}  // namespace skein
