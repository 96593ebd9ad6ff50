// cuda_kernels.h — the CUDA implementations of the kernel families (core/kernels/kernels.h),
// one .cu file per family under core/cuda/ (map, reduce, gemm, rows, index,
// adamw); core/cuda/table.cu puts them into the CUDA KernelTable.
// Each is declared with the signature of its KernelTable entry (SKEIN_KERNEL_ENTRIES).
#pragma once
#include "core/kernels/kernels.h"

namespace skein::cuda {

using kern::AttentionArgs;
using kern::GemmArgs;
using kern::MapArgs;
using kern::ReduceOp;

SKEIN_KERNEL_ENTRIES(SKEIN_DECLARE_KERNEL)

}  // namespace skein::cuda
