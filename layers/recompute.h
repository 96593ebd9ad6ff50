// recompute.h — checkpoint_rows: activation recomputation for a function that acts on each
// row (token) independently (the pre-norm MLP half of a block), run in chunks of rows both
// in forward and in the backward re-run, so that its [rows, hidden] intermediates exist for
// one chunk at a time. (The whole-function form is checkpoint() in core/ops.h.)
// reference: Luo et al., "Mini-Sequence Transformer: Optimizing Intermediate Memory for Long
// Sequences Training", 2024 (chunked MLP over the sequence).
#pragma once
#include <functional>
#include "core/ops.h"

namespace skein {

// fn: [n, D] -> [n, D'] row by row (row i of the output depends on row i of the input only,
// and fn's parameters). x: [..., D] -> [..., D']. Only x is kept for backward; backward
// re-runs fn with grad on each chunk of `rows` rows and back-propagates the chunk's part of
// the incoming gradient, so the parameters' gradients are sums over chunks (equal to the
// plain ones up to summation order). fn must make the same collectives on every rank (the
// number of chunks is the same wherever the row count is). Without grad, fn runs in chunks.
// value_unused (the re-run inside an enclosing checkpoint, whose output only carries the
// graph): with grad, fn is not run in forward and the result's values are left unset; fn must
// then map D to D (the same width).
Tensor checkpoint_rows(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, int64_t rows,
                       bool value_unused = false);

}  // namespace skein
