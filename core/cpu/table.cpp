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
    k.map = cpu::map;
    k.reduce = cpu::reduce;
    k.put_along = cpu::put_along;
    k.cumsum = cpu::cumsum;
    k.gemm = cpu::gemm_batched;
    k.softmax_fwd = cpu::softmax_fwd;
    k.softmax_bwd = cpu::softmax_bwd;
    k.cross_entropy_fwd = cpu::cross_entropy_fwd;
    k.cross_entropy_bwd = cpu::cross_entropy_bwd;
    k.rms_norm_fwd = cpu::rms_norm_fwd;
    k.rms_norm_bwd_workspace = cpu::rms_norm_bwd_workspace;
    k.rms_norm_bwd = cpu::rms_norm_bwd;
    k.rope = cpu::rope;
    k.l2_normalize_fwd = cpu::l2_normalize_fwd;
    k.l2_normalize_bwd = cpu::l2_normalize_bwd;
    k.gather_rows = cpu::gather_rows;
    k.scatter_rows_workspace = cpu::scatter_rows_workspace;
    k.scatter_rows = cpu::scatter_rows;
    k.philox_uniform = cpu::philox_uniform;
    k.philox_normal = cpu::philox_normal;
    k.adamw = cpu::adamw;
    k.sum_squares = cpu::sum_squares;
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
