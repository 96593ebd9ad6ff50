#!/usr/bin/env bash
# bf16 GEMM: skein's kernels and PyTorch's bf16 matmul on the model's shapes, in one run
# (skein, PyTorch, skein again: the two skein passes bound the machine's drift).
# Usage: bash tests/bench/bf16_gemm.sh [build dir (build/release)] [threads (2)]
set -euo pipefail
build=${1:-build/release}; threads=${2:-2}
lscpu | grep -E "Model name" || true
grep -o -w -E "amx_bf16|avx512_bf16" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
U="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
$U "$build/tests/bench/bench_bf16_gemm" --threads "$threads"
$U python3 "$(dirname "$0")/torch_bf16_matmul.py" --threads "$threads"
$U "$build/tests/bench/bench_bf16_gemm" --threads "$threads"
