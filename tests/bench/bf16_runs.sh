#!/usr/bin/env bash
# bf16 mixed precision on the benchmark model (../shared/BENCHMARK.md), runs A and B: skein f32,
# skein bf16-mixed, PyTorch f32, PyTorch bf16 autocast — same threads, one run, interleaved
# (skein f32, torch f32, skein bf16, torch bf16, then the four again in reverse order, so drift
# in the machine's load hits both sides alike). Prints the CPU, its bf16 units and the load.
# Usage: bash tests/bench/bf16_runs.sh [build dir (build/release)] [threads (2)] [runs ("A B")]
set -euo pipefail
build=${1:-build/release}; threads=${2:-2}; runs=${3:-"A B"}
here=$(dirname "$0")
lscpu | grep -E "Model name" || true
echo "bf16 units: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
U="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
for run in $runs; do
  if [ "$run" = A ]; then args="--seq 2048 --batch 2"; else args="--seq 8192 --batch 1"; fi
  common="$args --steps 5 --warmup 2 --threads $threads"
  echo "== run $run ($args), $(date -u +%H:%M:%S) UTC, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  skein() { $U "$build/tests/bench/bench_model" $common --fused-head 1 --precision "$1"; }
  torch() { $U python3 "$here/torch_peer.py" $common --autocast "$1" | grep -E "peer"; }
  for pass in 1 2; do
    if [ $pass = 1 ]; then order="sf tf sb tb"; else order="tb sb tf sf"; fi
    for o in $order; do
      case $o in
        sf) skein f32 ;; sb) skein bf16-mixed ;; tf) torch none ;; tb) torch bf16 ;;
      esac
      echo "   load $(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
