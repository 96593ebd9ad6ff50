// cpu_kernels.h — the CPU implementations of the kernel families (core/kernels/kernels.h), one
// file each under core/cpu/; core/cpu/table.cpp puts them into the CPU KernelTable.
#pragma once
#include "core/kernels/kernels.h"

namespace skein::cpu {

using kern::GemmArgs;
using kern::MapArgs;
using kern::ReduceOp;

// map.cpp
void map(const MapArgs& a);
// reduce.cpp
void reduce(ReduceOp op, DType dt, const void* x, void* out, int64_t* argmax, int64_t outer,
            int64_t R, int64_t inner);
void put_along(DType dt, const void* g, const int64_t* idx, void* gin, int64_t outer, int64_t R,
               int64_t inner);
void cumsum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner, bool reverse);
void sum_squares(DType dt, const void* x, double* out, int64_t n);
// gemm.cpp
void gemm_batched(const GemmArgs& a);
// rows.cpp
void softmax_fwd(DType dt, const void* x, void* y, int64_t rows, int64_t n, bool log);
void softmax_bwd(DType dt, const void* g, const void* y, void* dx, int64_t rows, int64_t n, bool log);
void cross_entropy_fwd(DType dt, const void* x, const int64_t* t, void* lse, void* loss,
                       int64_t* count, int64_t N, int64_t V, int64_t ignore_index);
void cross_entropy_bwd(DType dt, const void* x, const int64_t* t, const void* lse, const void* g,
                       const int64_t* count, void* dx, int64_t N, int64_t V, int64_t ignore_index);
void l2_normalize_fwd(DType dt, const void* x, void* y, void* norm, int64_t rows, int64_t D, double eps);
void l2_normalize_bwd(DType dt, const void* g, const void* y, const void* norm, void* dx,
                      int64_t rows, int64_t D);
// norm_rope.cpp
void rms_norm_fwd(DType dt, const void* x, const void* gain, void* y, void* rstd, int64_t rows,
                  int64_t D, double eps);
size_t rms_norm_bwd_workspace(DType dt, int64_t rows, int64_t D);
void rms_norm_bwd(DType dt, const void* x, const void* gain, const void* rstd, const void* dy,
                  void* dx, void* dgain, void* workspace, int64_t rows, int64_t D);
void rope(DType dt, const void* x, void* y, int64_t rows, int64_t T, int64_t D, double theta,
          int64_t pos_offset, double sign);
// index.cpp
void gather_rows(DType dt, const void* w, const int64_t* ids, void* out, int64_t n, int64_t D, int64_t V);
size_t scatter_rows_workspace(int64_t n, int64_t n_rows);
void scatter_rows(DType dt, const void* src, const int64_t* ids, void* out, void* workspace,
                  int64_t n, int64_t D, int64_t n_rows);
void philox_uniform(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base_block, double low,
                    double high);
void philox_normal(DType dt, void* out, int64_t n, uint64_t seed, uint64_t base_block);
// adamw.cpp
void adamw(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double b1, double b2,
           double eps, double step_size, double bc2_sqrt, double decay_mul);

}  // namespace skein::cpu
