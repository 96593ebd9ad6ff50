// tensor.h — the Tensor handle: shared storage + shape, strides, offset, dtype, device,
// and its autograd slot (requires_grad, grad, grad_fn). Views share storage.
// Ops live in core/ops.h; the autograd engine in core/autograd.h.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>
#include "core/dtype.h"
#include "core/error.h"

namespace skein {

using Shape = std::vector<int64_t>;
struct Node;

// A block of memory on one device. Freed back to the caching allocator.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::cpu;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;      // in elements
  int64_t offset = 0; // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;   // accumulated gradient (leaves, or retained)
  std::shared_ptr<Node> grad_fn;      // the node that made this tensor (non-leaves)
  int output_nr = 0;                  // which of grad_fn's outputs this tensor is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // An uninitialised contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& shape() const { return impl_->shape; }
  int64_t size(int64_t dim) const;           // negative dims count from the end
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t numel() const;
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  bool is_contiguous() const;
  bool same_storage(const Tensor& other) const { return impl_->storage == other.impl_->storage; }

  // Host memory, typed: for CPU code. A tensor on a GPU says so (use to(Device::cpu) first).
  template <typename T> T* data() const {
    SKEIN_CHECK(device() == Device::cpu, "data<", dtype_name(dtype_of<T>()), ">: tensor ",
                shape_str(shape()), " is on ", device_name(device()),
                "; host code must copy it with to(Device::cpu) first");
    return data_ptr<T>();
  }
  // The typed pointer on whichever device holds the tensor (for kernel launches).
  template <typename T> T* data_ptr() const {
    SKEIN_CHECK(dtype_of<T>() == dtype(), "data<", dtype_name(dtype_of<T>()), ">: tensor is ",
                dtype_name(dtype()));
    return static_cast<T*>(impl_->storage->data) + impl_->offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * dtype_size(dtype());
  }
  // The single element of a one-element tensor, as double.
  double item() const;   // a device tensor is copied to the host (the host waits for the GPU)
  // Element at a multi-index, as double (tests and debugging; slow).
  double at(const Shape& index) const;
  std::vector<double> to_vector() const;  // all elements in row-major order, as double

  // autograd
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const { return Tensor(impl_->grad); }
  void zero_grad() { impl_->grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // shares storage, no grad history

  // views and copies (differentiable; see core/ops/shape.cpp)
  Tensor view(const Shape& shape) const;      // contiguous input only; -1 infers one dim
  Tensor reshape(const Shape& shape) const;   // a view when possible, else a copy
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  // The same values on another device (differentiable: the gradient travels back). A no-op when
  // the tensor is already there.
  Tensor to(Device device) const;

  std::string str() const;  // "Tensor[2,3] f32" plus values when small

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Contiguous strides of a shape.
Shape contiguous_strides(const Shape& shape);
// Normalises a possibly negative dim against rank `ndim`, naming `op` on error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
int64_t shape_numel(const Shape& shape);

// ---- factories ----
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu);
Tensor arange(int64_t start, int64_t end, DType dtype = DType::i64, Device device = Device::cpu);
Tensor zeros_like(const Tensor& t);  // same shape, dtype and device
Tensor ones_like(const Tensor& t);
Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu);
// A tensor holding these values (row-major), of the given shape.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                   Device device = Device::cpu);
// randn / uniform: see core/rng.h.

}  // namespace skein
