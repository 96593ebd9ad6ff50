// table.cpp — the CPU KernelTable, and kernels(Device): the one lookup every op goes through.
// Lookup rather than self-registration: skein's libraries are static and a linker drops
// registration objects that nothing references.
#include "core/cpu/cpu_kernels.h"
#include "core/error.h"

namespace skein::kern {

#ifdef SKEIN_HAVE_CUDA
const KernelTable* cuda_kernel_table();  // core/cuda/table.cpp; null when no GPU is visible
#endif

int map_arity(MapOp op) {
  if (op == MapOp::fill) return 0;
  if (op == MapOp::where) return 3;
  if (op >= MapOp::add) return 2;
  return 1;
}

const char* map_op_name(MapOp op) {
  static const char* names[] = {
      "fill", "copy", "neg", "exp", "log", "sqrt", "rsqrt", "pow", "tanh", "sigmoid", "silu", "gelu",
      "relu", "elu", "softplus", "log_sigmoid", "add_scalar", "mul_scalar", "dropout", "add", "sub",
      "mul", "div", "axpy", "log backward", "sqrt backward", "rsqrt backward", "pow backward",
      "tanh backward", "sigmoid backward", "silu backward", "gelu backward", "relu backward",
      "elu backward", "softplus backward", "log_sigmoid backward", "where"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(MapOp::where) + 1);
  return names[static_cast<int>(op)];
}

const KernelTable& cpu_kernels() {
  static const KernelTable t = [] {
    KernelTable k;
    k.device = Device::cpu;
#define SKEIN_SET_KERNEL(member, impl) k.member = cpu::impl;
    SKEIN_KERNEL_ENTRIES(SKEIN_SET_KERNEL)
#undef SKEIN_SET_KERNEL
    return k;
  }();
  return t;
}

const KernelTable& kernels(Device d) {
  if (d == Device::cpu) return cpu_kernels();
#ifdef SKEIN_HAVE_CUDA
  if (const KernelTable* t = cuda_kernel_table()) return *t;
  throw Error("device cuda: skein was built with CUDA but no GPU is visible (CUDA_VISIBLE_DEVICES, "
              "driver?)");
#else
  throw Error("device cuda: this skein build has no CUDA backend (CUDA was not found at build time)");
#endif
}

}  // namespace skein::kern
