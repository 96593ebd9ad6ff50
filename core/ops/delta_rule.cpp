// delta_rule.cpp — delta_rule (DeltaNet / gated DeltaNet): shape checks, the forward and
// the autograd record. The backward lives in core/ops/delta_rule_backward.cpp.
//
// Algorithm: the RECURRENT form — per (b, h) a sequential loop over t with rank-1 updates
// of the [Dk, Dv] state, parallel over B·H; the forward keeps the state every `chunk` steps
// and the backward recomputes one chunk at a time from those checkpoints (memory
// O(B·H·(T/chunk)·Dk·Dv), never one state per token).
// Why not the chunkwise WY/UT form: it was built (T = (I + strict_tril(diag(β)KKᵀ ⊙ decay))⁻¹,
// W = T(βe^Γ ⊙ K), U = T(β ⊙ V), chunk GEMMs through cpu::gemm), passed the same tests, and
// lost on CPU. B=1, H=8, D=64, T=4096, f32, chunk 64, single-thread CPU time: recurrent
// 16.8 ms plain / 19.8 ms gated vs chunkwise 30.4 / 32.0 ms (chunk 16: 19.1 / 20.4, chunk 32:
// 22.9 / 23.9 — never ahead); 2 threads, wall, loaded 2-core box: 50 vs 71 ms plain, 64 vs
// 96 ms gated. At D = 64 the WY form does ~2-3x the flops of the rank-1 recurrence (its
// intra-chunk C² terms) on 64-wide GEMMs (OpenBLAS picks its AVX2 kernel on this machine,
// the recurrence's row loops are AVX-512), and the backward, not the forward, dominates a
// training step (forward ≈ 1/6 of forward + backward).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>
#include "core/ops.h"
#include "core/ops/composed.h"
#include "core/ops/op_util.h"
#include "core/ops/delta_rule_impl.h"
#include "core/ops/delta_rule_simd.h"
#include "core/threadpool.h"

namespace skein {
namespace {

using delta_rule_impl::Saved;

// Forward of one (b, h): a sequential loop over t with rank-1 updates of the state fin.
// ckpt (nullable): [N, Dk, Dv], receives the state entering every chunk of C steps.
// q, k, v, out: the head's first row, rows qs, ks, vs, os elements apart.
// DV: the compile-time width of the vector kernels (delta_rule_simd.h), 0 = generic.
template <typename T, int DV>
void forward_one(const T* q, int64_t qs, const T* k, int64_t ks, const T* v, int64_t vs, const T* beta,
                 const T* log_alpha, const T* init, T* out, int64_t os, T* fin, T* ckpt, int64_t Tlen,
                 int64_t Dk, int64_t Dv, int64_t C, T s) {
  const int64_t DD = Dk * Dv;
  std::vector<T> u(Dv);
  if (init) std::copy(init, init + DD, fin);
  else std::fill(fin, fin + DD, T(0));
  for (int64_t t = 0; t < Tlen; ++t) {
    if (ckpt && t % C == 0) std::copy(fin, fin + DD, ckpt + (t / C) * DD);
    const T a = log_alpha ? std::exp(log_alpha[t]) : T(1);
    if constexpr (DV > 0)
      delta_rule_simd::step<T, DV>(fin, fin, k + t * ks, v + t * vs, a, beta[t], u.data(), Dk,
                                   q + t * qs, s, out + t * os);
    else
      delta_rule_impl::step<T>(fin, fin, k + t * ks, v + t * vs, a, beta[t], u.data(), Dk, Dv,
                               q + t * qs, s, out + t * os);
  }
}

std::string opt_shape(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "undefined"; }

}  // namespace

// reference: Schlag et al., "Linear Transformers Are Secretly Fast Weight Programmers", 2021;
// Yang et al., "Gated Delta Networks: Improving Mamba2 with Delta Rule", ICLR 2025.
LinearAttentionResult delta_rule(const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& beta, const Tensor& log_alpha,
                                 const Tensor& initial_state, double scale, int64_t chunk) {
  SKEIN_CHECK(q.defined() && k.defined() && v.defined() && beta.defined(),
              "delta_rule: q, k, v and beta must be defined");
  SKEIN_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "delta_rule: q, k, v must be [B, H, T, D], got q ", shape_str(q.shape()), ", k ",
              shape_str(k.shape()), ", v ", shape_str(v.shape()));
  const int64_t B = q.size(0), H = q.size(1), Tlen = q.size(2), Dk = q.size(3), Dv = v.size(3);
  SKEIN_CHECK(k.shape() == q.shape(), "delta_rule: k ", shape_str(k.shape()), " must match q ",
              shape_str(q.shape()));
  SKEIN_CHECK(v.size(0) == B && v.size(1) == H && v.size(2) == Tlen, "delta_rule: v ",
              shape_str(v.shape()), " must be [B, H, T, Dv] with [B, H, T] of q ", shape_str(q.shape()));
  SKEIN_CHECK(beta.shape() == (Shape{B, H, Tlen}), "delta_rule: beta ", shape_str(beta.shape()),
              " must be [B, H, T] = ", shape_str({B, H, Tlen}));
  SKEIN_CHECK(!log_alpha.defined() || log_alpha.shape() == (Shape{B, H, Tlen}), "delta_rule: log_alpha ",
              opt_shape(log_alpha), " must be undefined or [B, H, T] = ", shape_str({B, H, Tlen}));
  SKEIN_CHECK(!initial_state.defined() || initial_state.shape() == (Shape{B, H, Dk, Dv}),
              "delta_rule: initial_state ", opt_shape(initial_state),
              " must be undefined or [B, H, Dk, Dv] = ", shape_str({B, H, Dk, Dv}));
  SKEIN_CHECK(chunk >= 1, "delta_rule: chunk must be >= 1, got ", chunk);
  const DType dt = q.dtype();
  SKEIN_CHECK(is_floating(dt), "delta_rule: q must be floating, got ", dtype_name(dt));
  const std::pair<const char*, const Tensor*> named[] = {{"k", &k}, {"v", &v}, {"beta", &beta},
      {"log_alpha", &log_alpha}, {"initial_state", &initial_state}};
  for (const auto& [name, t] : named)
    SKEIN_CHECK(!t->defined() || t->dtype() == dt, "delta_rule: dtypes differ: q is ", dtype_name(dt),
                ", ", name, " is ", dtype_name(t->dtype()));
  for (const Tensor* t : {&k, &v, &beta, &log_alpha, &initial_state})
    if (t->defined()) ops::common_device("delta_rule", {q, *t});
  if (q.device() != Device::cpu)  // composed of device ops until the fused CUDA kernel lands
    return delta_rule_composed(q, k, v, beta, log_alpha, initial_state, scale, chunk);

  using delta_rule_impl::rows_of;
  using delta_rule_impl::rows_readable;
  Saved sv;  // q, k, v read in place (a head-split view of [B, T, H, D] is not copied)
  sv.q = rows_readable(q.detach());
  sv.k = rows_readable(k.detach());
  sv.v = rows_readable(v.detach());
  sv.beta = beta.detach().contiguous();
  if (log_alpha.defined()) sv.log_alpha = log_alpha.detach().contiguous();
  sv.scale = scale;
  sv.chunk = chunk;
  Tensor init = initial_state.defined() ? initial_state.detach().contiguous() : Tensor();
  const bool need_grad = any_requires_grad({q, k, v, beta, log_alpha, initial_state});
  const int64_t N = (Tlen + chunk - 1) / chunk;
  Tensor out = delta_rule_impl::empty_rows_like(sv.q, Dv);  // in q's layout
  Tensor fin = Tensor::empty({B, H, Dk, Dv}, dt);
  if (need_grad) sv.checkpoints = Tensor::empty({B, H, N, Dk, Dv}, dt);
  SKEIN_DISPATCH_FLOAT(dt, "delta_rule", [&] {
    const scalar_t* la = log_alpha.defined() ? sv.log_alpha.data<scalar_t>() : nullptr;
    const scalar_t* pin = init.defined() ? init.data<scalar_t>() : nullptr;
    scalar_t* pck = need_grad ? sv.checkpoints.data<scalar_t>() : nullptr;
    const auto rq = rows_of<scalar_t>(sv.q), rk = rows_of<scalar_t>(sv.k), rv = rows_of<scalar_t>(sv.v),
               ro = rows_of<scalar_t>(out);
    delta_rule_simd::with_row_width(Dv, [&](auto W) {
      parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t bh = lo; bh < hi; ++bh) {
          const int64_t b = bh / H, h = bh % H;
          forward_one<scalar_t, decltype(W)::value>(
              rq.head(b, h), rq.st, rk.head(b, h), rk.st, rv.head(b, h), rv.st,
              sv.beta.data<scalar_t>() + bh * Tlen, la ? la + bh * Tlen : nullptr,
              pin ? pin + bh * Dk * Dv : nullptr, ro.head(b, h), ro.st, fin.data<scalar_t>() + bh * Dk * Dv,
              pck ? pck + bh * N * Dk * Dv : nullptr, Tlen, Dk, Dv, chunk, static_cast<scalar_t>(scale));
        }
      });
    });
  });
  if (!need_grad) return {out, fin};
  const bool has_la = log_alpha.defined(), has_init = initial_state.defined();
  auto outs = record_multi(
      "delta_rule", {out, fin}, {q, k, v, beta, log_alpha, initial_state},
      [sv, has_la, has_init](const std::vector<Tensor>& g) {
        delta_rule_impl::Grads d = delta_rule_impl::backward(sv, g[0], g[1]);
        return std::vector<Tensor>{d.q, d.k, d.v, d.beta, has_la ? d.log_alpha : Tensor(),
                                   has_init ? d.initial_state : Tensor()};
      });
  return {outs[0], outs[1]};
}

}  // namespace skein
