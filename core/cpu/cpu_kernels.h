// cpu_kernels.h — the CPU implementations of the kernel families (core/kernels/kernels.h),
// one file each under core/cpu/ (map.cpp, reduce.cpp, gemm.cpp, rows.cpp,
// norm_rope.cpp, index.cpp, adamw.cpp); core/cpu/table.cpp puts them into the CPU KernelTable.
// Each is declared with the signature of its KernelTable entry (SKEIN_KERNEL_ENTRIES).
#pragma once
#include "core/kernels/kernels.h"

namespace skein::cpu {

using kern::AttentionArgs;
using kern::GemmArgs;
using kern::MapArgs;
using kern::ReduceOp;

SKEIN_KERNEL_ENTRIES(SKEIN_DECLARE_KERNEL)

}  // namespace skein::cpu
