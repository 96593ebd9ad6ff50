// table.cu — the CUDA KernelTable (null when no GPU is visible, so kernels(Device::cuda) can say
// so), filled from SKEIN_KERNEL_ENTRIES; tests/cuda checks none is missing.
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::kern {

const KernelTable* cuda_kernel_table() {
  static const KernelTable* t = []() -> const KernelTable* {
    if (cuda::device_count() == 0) return nullptr;
    auto* k = new KernelTable();
    k->device = Device::cuda;
#define SKEIN_SET_KERNEL(member, impl) k->member = cuda::impl;
    SKEIN_KERNEL_ENTRIES(SKEIN_SET_KERNEL)
#undef SKEIN_SET_KERNEL
    return k;
  }();
  return t;
}

}  // namespace skein::kern
