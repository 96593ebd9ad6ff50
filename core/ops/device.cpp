// device.cpp — Tensor::to(Device): the one op that moves values between host and GPU memory. It
// is differentiable (the gradient travels back to the source device), so a model can hand a
// tensor to a kernel of another device and keep its history.
#include "core/backend.h"
#include "core/ops.h"

namespace skein {

Tensor Tensor::to(Device dev) const {
  SKEIN_CHECK(defined(), "to(", device_name(dev), "): undefined tensor");
  const Device from = device();
  if (dev == from) return *this;
  Tensor src = detach().contiguous();
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  const size_t nbytes = static_cast<size_t>(numel()) * dtype_size(dtype());
  if (nbytes) {
    if (from == Device::cpu) {
      backend(dev).copy(out.raw_data(), src.raw_data(), nbytes, CopyKind::host_to_device);
    } else if (dev == Device::cpu) {
      backend(from).copy(out.raw_data(), src.raw_data(), nbytes, CopyKind::device_to_host);
    } else {
      backend(dev).copy(out.raw_data(), src.raw_data(), nbytes, CopyKind::device_to_device);
    }
  }
  if (!is_floating(dtype())) return out;
  return record("to_device", out, {*this}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

}  // namespace skein
