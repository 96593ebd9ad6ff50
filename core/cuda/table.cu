// table.cu — the CUDA KernelTable (null when no GPU is visible, so kernels(Device::cuda) can say
// so). Every family of core/kernels/kernels.h has its entry; tests/cuda checks none is missing.
#include "core/cuda/cuda_kernels.h"
#include "core/cuda/runtime.h"

namespace skein::kern {

const KernelTable* cuda_kernel_table() {
  static const KernelTable* t = []() -> const KernelTable* {
    if (cuda::device_count() == 0) return nullptr;
    auto* k = new KernelTable();
    k->device = Device::cuda;
    k->map = cuda::map;
    k->reduce = cuda::reduce;
    k->put_along = cuda::put_along;
    k->cumsum = cuda::cumsum;
    k->gemm = cuda::gemm_batched;
    k->softmax_fwd = cuda::softmax_fwd;
    k->softmax_bwd = cuda::softmax_bwd;
    k->cross_entropy_fwd = cuda::cross_entropy_fwd;
    k->cross_entropy_bwd = cuda::cross_entropy_bwd;
    k->rms_norm_fwd = cuda::rms_norm_fwd;
    k->rms_norm_bwd_workspace = cuda::rms_norm_bwd_workspace;
    k->rms_norm_bwd = cuda::rms_norm_bwd;
    k->rope = cuda::rope;
    k->l2_normalize_fwd = cuda::l2_normalize_fwd;
    k->l2_normalize_bwd = cuda::l2_normalize_bwd;
    k->gather_rows = cuda::gather_rows;
    k->scatter_rows_workspace = cuda::scatter_rows_workspace;
    k->scatter_rows = cuda::scatter_rows;
    k->philox_uniform = cuda::philox_uniform;
    k->philox_normal = cuda::philox_normal;
    k->adamw = cuda::adamw;
    k->sum_squares = cuda::sum_squares;
    return k;
  }();
  return t;
}

}  // namespace skein::kern
