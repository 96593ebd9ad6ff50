// flat.h — moving parameters and gradients in and out of flat communication buffers
// (GradReducer's buckets, Zero1AdamW's padded flat vectors). CPU, contiguous buffers.
#pragma once
#include <cstdint>
#include <vector>
#include "optim/optimizer.h"
#include "parallel/communicator.h"

namespace skein {

// buf[offset : offset + numel(param)] = param's gradient (zeros when it has none).
// param: [...], buf: [n] of param's dtype.
void pack_grad(const Tensor& param, const Tensor& buf, int64_t offset);
// param's gradient = scale * buf[offset : offset + numel(param)], written into the existing
// gradient when it is a contiguous tensor of the right shape (leaf gradients are private
// copies, see accumulate_grad), else into a fresh one.
void unpack_grad(const Tensor& param, const Tensor& buf, int64_t offset, double scale);
// buf[offset : offset + numel(t)] = t (t contiguous), or the reverse.
void pack_values(const Tensor& t, const Tensor& buf, int64_t offset);
void unpack_values(const Tensor& t, const Tensor& buf, int64_t offset);
// Throws unless reduce_dtype is f32, or bf16 with every parameter f32. `who` names the caller.
void check_reduce_dtype(DType reduce_dtype, const NamedParams& params, const char* who);
// An i64 [params.size()] tensor: 1 where the parameter has a gradient, else 0.
Tensor grad_presence(const NamedParams& params);
// Collective: throws on every rank (so none is left waiting) unless every rank of comm
// passed the same number of parameters with the same total size. `who` names the caller.
void check_same_layout(Communicator& comm, const NamedParams& params, const char* who);

}  // namespace skein
