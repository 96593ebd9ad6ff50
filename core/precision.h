// precision.h — the ONE place that decides which op computes in which dtype
// (train.precision: f32 | bf16-mixed). Ops ask it; nothing else casts.
//
// bf16-mixed, as this policy runs it:
//  - GEMMs (matmul, hence Linear, the fused LM head's three GEMMs, SwiGLU's down projection and
//    every backward GEMM) of f32 operands on a device with a bf16 GEMM read bf16 operands and
//    accumulate and write f32 (kern::GemmArgs with dtype bf16; CPU: core/cpu/gemm_bf16.h; CUDA:
//    cublasGemmStridedBatchedEx on bf16 tensor cores, UNVERIFIED: no GPU has run it yet).
//    Activations are rounded per call; weights (the tensors handed to begin_step) are rounded
//    once per optimizer step into a cache shared by forward, recompute and backward.
//  - Everything else stays f32: norms, softmax and its statistics, the mixers (linear-attention
//    states, softmax attention's scores), the loss and cross-entropy, the optimizer (f32 master
//    weights and AdamW moments), gradients (f32; reduced across ranks in f32, or on the wire in
//    bf16 with parallel.grad_reduce_dtype=bf16: parallel/data_parallel.h). Mixer state math
//    composed from ops (LASP-2's cross-slice terms) calls matmul_f32, outside this policy.
//  - On a CPU with neither AMX nor AVX512-BF16 (or no bf16 GEMM library) bf16 would only add
//    rounding and conversion passes: the GEMMs stay f32 and set() returns a note saying so.
// reference: Micikevicius et al., "Mixed Precision Training", 2018 (f32 master weights);
// Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019.
#pragma once
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>
#include "core/tensor.h"

namespace skein {

enum class Precision { f32, bf16_mixed };
// "f32" | "bf16-mixed"; an error naming `key` otherwise.
Precision parse_precision(const std::string& name, const std::string& key = "train.precision");
const char* precision_name(Precision p);

class PrecisionPolicy {
 public:
  // The process's policy, read by the ops (the trainer sets it; f32 until then).
  static PrecisionPolicy& current();

  // bf16-mixed for GEMMs on `device`. Returns "" or a note: the fallback to f32 where this
  // device has no bf16 GEMM units. `allow_emulation` (tests; or SKEIN_BF16_EMULATE=1) runs bf16
  // GEMMs even then, through the bf16 -> f32 sgemm kernel: the same rounding, no speed.
  std::string set(Precision p, Device device, bool allow_emulation = false);
  Precision requested() const { return requested_; }
  // The mode GEMMs actually run in (f32 when bf16-mixed fell back).
  Precision active() const { return active_; }

  // The dtype a GEMM with `operands` operands on `device` reads: bf16 under an active
  // bf16-mixed for f32 operands on the device set(), else the operands' own dtype.
  DType gemm_dtype(DType operands, Device device) const;

  // The rounded bf16 copy of matrix (or batch of matrices) x, contiguous, same shape: from the
  // weight cache when x lies in a tensor given to begin_step, else converted now.
  Tensor bf16_copy(const Tensor& x);

  // Between begin_step and end_step, views of `weights` are rounded once and cached (the
  // optimizer must not change them in between); end_step drops the cache. No-ops under f32.
  void begin_step(const std::vector<Tensor>& weights);
  void end_step();
  int64_t cache_conversions() const { return conversions_; }  // weights rounded so far (tests)
  int64_t rounding_ns() const { return rounding_ns_; }          // time spent rounding (benchmarks)

  // The step line's words: "f32", "bf16-mixed (GEMMs: onednn (amx_bf16))", ...
  std::string describe() const;

 private:
  using Key = std::tuple<const void*, Shape, Shape>;  // data pointer, shape, strides
  friend class PrecisionScope;
  Precision requested_ = Precision::f32, active_ = Precision::f32;
  Device device_ = Device::cpu;
  bool emulation_ = false;
  std::mutex mu_;
  bool caching_ = false;
  std::set<const void*> weight_storages_;
  std::map<Key, Tensor> cache_;
  int64_t conversions_ = 0;
  int64_t rounding_ns_ = 0;
};

// Sets the process policy for a scope and restores the previous one (a training run, tests).
class PrecisionScope {
 public:
  PrecisionScope(Precision p, Device device = Device::cpu, bool allow_emulation = false);
  ~PrecisionScope();
  const std::string& note() const { return note_; }  // set()'s note
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision prev_;
  Device prev_device_;
  bool prev_emulation_;
  std::string note_;
};

}  // namespace skein
