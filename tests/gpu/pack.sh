#!/usr/bin/env bash
# pack.sh — builds the GPU bundle on a machine without a GPU (../shared/GPU.md): the cuda-release
# preset (CUDA required, real sm_90 code, portable x86-64-v3 host code), then the CUDA test and
# benchmark binaries, the skein CLI, the PyTorch peer and tests/gpu/run.sh, plus the shared
# libraries they load that a GPU machine may lack (their ldd closure minus glibc and the CUDA
# libraries the GPU machine has: cudart, cuBLAS, NCCL), into ONE archive:
#   .gpu/bundle.tar.xz   (ignored by git; carried to the GPU machine, ≤ 60 MB). xz, not zstd: as
# small here (16 MB), and Python's standard library unpacks it where no xz/zstd tool exists.
# Usage: bash tests/gpu/pack.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
bash .ci/install-deps.sh xz-utils >/dev/null
cmake --preset cuda-release >/dev/null
cmake --build --preset cuda-release --target test_cuda test_core skein bench_gpu bench_gpu_mixers
B=build/cuda-release
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bundle/bin" "$STAGE/bundle/lib" "$STAGE/bundle/scripts"
BINS=("$B/tests/test_cuda" "$B/tests/test_core" "$B/launch/skein" "$B/tests/bench/bench_gpu" "$B/tests/bench/bench_gpu_mixers")
cp "${BINS[@]}" "$STAGE/bundle/bin/"
cp tests/gpu/run.sh tests/bench/torch_peer.py tests/bench/fla_peer.py "$STAGE/bundle/scripts/"
# The mixer peer: flash-linear-attention's kernels (fla-core, pure Python + Triton) and einops, as
# wheels for the GPU machine's Python 3.12 (it has torch and triton, no package registry).
mkdir -p "$STAGE/bundle/wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d "$STAGE/bundle/wheels" fla-core==0.6.0 einops ||
  echo "pack: could not download the fla-core / einops wheels (no PyPI?): the mixer peer will be skipped" >&2
# The shared-library closure, minus what every Linux has (glibc, the loader) and what the GPU
# machine brings in its own, matching version (the CUDA runtime and libraries, the driver).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libgcc_s|libcuda\.so|libcudart|libcublas|libcublasLt|libnccl|libnvidia)'
for bin in "${BINS[@]}"; do
  ldd "$bin" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    if [[ ! "$name" =~ $skip ]]; then cp -Ln "$path" "$STAGE/bundle/lib/" 2>/dev/null || true; fi
  done
done
git rev-parse HEAD > "$STAGE/bundle/COMMIT"
date -u +%Y-%m-%dT%H:%MZ > "$STAGE/bundle/BUILT"
mkdir -p .gpu
rm -f .gpu/bundle.tar.zst
tar -C "$STAGE" -cf - bundle | xz -T0 -6 > .gpu/bundle.tar.xz
size=$(stat -c %s .gpu/bundle.tar.xz)
echo "pack: .gpu/bundle.tar.xz $((size / 1048576)) MiB ($(ls "$STAGE/bundle/lib" | wc -l) libraries, commit $(cat "$STAGE/bundle/COMMIT" | cut -c1-12))"
if [ "$size" -gt $((60 * 1048576)) ]; then echo "pack: bundle over 60 MB" >&2; exit 1; fi
