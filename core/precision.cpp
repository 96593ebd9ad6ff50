// precision.cpp — the precision policy (see precision.h): mode, the GEMM dtype rule, and the
// per-step bf16 weight cache.
#include "core/precision.h"
#include <cstdlib>
#include "core/cpu/gemm_bf16.h"

namespace skein {

Precision parse_precision(const std::string& name, const std::string& key) {
  if (name == "f32") return Precision::f32;
  if (name == "bf16-mixed") return Precision::bf16_mixed;
  throw Error(detail::concat(key, ": '", name, "' is not a precision (f32 | bf16-mixed)"));
}

const char* precision_name(Precision p) { return p == Precision::f32 ? "f32" : "bf16-mixed"; }

PrecisionPolicy& PrecisionPolicy::current() {
  static PrecisionPolicy policy;
  return policy;
}

std::string PrecisionPolicy::set(Precision p, Device device, bool allow_emulation) {
  std::lock_guard<std::mutex> lk(mu_);
  requested_ = p;
  device_ = device;
  emulation_ = allow_emulation;
  cache_.clear();
  caching_ = false;
  active_ = Precision::f32;
  if (p == Precision::f32) return "";
  if (device != Device::cpu) {
    return detail::concat("note: train.precision bf16-mixed: no bf16 GEMM on ", device_name(device),
                          " yet; the GEMMs run in f32");
  }
  const char* env = std::getenv("SKEIN_BF16_EMULATE");
  if (allow_emulation || (env && std::string(env) == "1") ||
      cpu::bf16_gemm_kernel() != cpu::Bf16Kernel::sgemm_fallback) {
    active_ = Precision::bf16_mixed;
    return "";
  }
  const cpu::Bf16Features f = cpu::bf16_features();
  return (f.amx_bf16 || f.avx512_bf16)
             ? "note: train.precision bf16-mixed: this build has no bf16 GEMM library (oneDNN or OpenBLAS with "
               "sbgemm); the GEMMs run in f32"
             : "note: train.precision bf16-mixed: this CPU has neither AMX nor AVX512-BF16; the GEMMs run in f32 "
               "(bf16 would only add rounding)";
}

DType PrecisionPolicy::gemm_dtype(DType operands, Device device) const {
  if (active_ == Precision::bf16_mixed && operands == DType::f32 && device == device_) return DType::bf16;
  return operands;
}

Tensor PrecisionPolicy::bf16_copy(const Tensor& x) {
  std::unique_lock<std::mutex> lk(mu_);
  const bool weight = caching_ && weight_storages_.count(x.impl()->storage.get());
  Key key{x.raw_data(), x.shape(), x.strides()};
  if (weight) {
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  lk.unlock();
  Tensor b = x.detach().to(DType::bf16);  // contiguous, round-to-nearest-even
  if (!weight) return b;
  lk.lock();
  ++conversions_;
  return cache_.emplace(std::move(key), b).first->second;
}

void PrecisionPolicy::begin_step(const std::vector<Tensor>& weights) {
  std::lock_guard<std::mutex> lk(mu_);
  cache_.clear();
  weight_storages_.clear();
  caching_ = active_ == Precision::bf16_mixed;
  if (!caching_) return;
  for (const Tensor& w : weights) weight_storages_.insert(w.impl()->storage.get());
}

void PrecisionPolicy::end_step() {
  std::lock_guard<std::mutex> lk(mu_);
  cache_.clear();
  weight_storages_.clear();
  caching_ = false;
}

std::string PrecisionPolicy::describe() const {
  if (requested_ == Precision::f32) return "f32";
  if (active_ == Precision::f32) return "bf16-mixed requested, GEMMs in f32 (no bf16 GEMM here)";
  return detail::concat("bf16-mixed (GEMMs: ", cpu::bf16_gemm_kernel_name(), ")");
}

PrecisionScope::PrecisionScope(Precision p, Device device, bool allow_emulation) {
  PrecisionPolicy& pol = PrecisionPolicy::current();
  prev_ = pol.requested_;
  prev_device_ = pol.device_;
  prev_emulation_ = pol.emulation_;
  pol.set(p, device, allow_emulation);
}

PrecisionScope::~PrecisionScope() { PrecisionPolicy::current().set(prev_, prev_device_, prev_emulation_); }

}  // namespace skein
