"""PyTorch's bf16 (and f32) matmul GFLOP/s on the shapes of tests/bench/bench_bf16_gemm.cpp.

The peer of skein's bf16 GEMM (docs/PERF.md, "bf16 GEMM"): same shapes, same threads, best
of --reps timed calls after one warm-up. Usage: python3 tests/bench/torch_bf16_matmul.py
[--threads 2] [--reps 5]
"""
import argparse
import time

import torch

SHAPES = [  # what, M, N, K, transpose a, transpose b (as bench_bf16_gemm.cpp)
    ("q/k/v/o proj fwd", 4096, 512, 512, False, True),
    ("mlp up fwd (w1, w3)", 4096, 1408, 512, False, True),
    ("mlp down fwd (w2)", 4096, 512, 1408, False, True),
    ("lm head fwd", 4096, 8192, 512, False, True),
    ("mlp up dW (x^T dy)", 1408, 512, 4096, True, False),
    ("lm head dX (dy W)", 4096, 512, 8192, False, False),
    ("sgemm peak shape", 4096, 1536, 512, False, False),
]


def best(reps, f):
    f()
    t = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, threads {a.threads}, mkldnn bf16 "
          f"{torch.backends.mkldnn.is_available()}")
    print(f"{'shape':22s} {'M':>6s} {'N':>6s} {'K':>6s} {'torch f32':>12s} {'torch bf16':>12s}   (GFLOP/s)")
    g = torch.Generator().manual_seed(1)
    for what, m, n, k, ta, tb in SHAPES:
        A = torch.randn(k, m, generator=g).t() if ta else torch.randn(m, k, generator=g)
        B = torch.randn(n, k, generator=g).t() if tb else torch.randn(k, n, generator=g)
        Ab, Bb = A.to(torch.bfloat16), B.to(torch.bfloat16)
        flop = 2.0 * m * n * k
        t32 = best(a.reps, lambda: torch.matmul(A, B))
        t16 = best(a.reps, lambda: torch.matmul(Ab, Bb))
        print(f"{what:22s} {m:6d} {n:6d} {k:6d} {flop / t32 / 1e9:12.1f} {flop / t16 / 1e9:12.1f}")


if __name__ == "__main__":
    main()
