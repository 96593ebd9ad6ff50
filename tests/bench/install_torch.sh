#!/usr/bin/env bash
# Installs PyTorch for the benchmark peer (tests/bench/torch_peer.py).
#
# Only PyPI (and Debian) are reachable from the project's machines, so this
# installs the newest `torch` wheel PyPI serves for this Python. PyPI's Linux
# x86_64 wheel also pulls the nvidia-* CUDA runtime packages (several GB,
# slow to download, unused on this CPU-only machine); PyPI has no official
# CPU-only variant, the CPU wheels live on a separate index we cannot reach.
#
# Idempotent: does nothing when `import torch` already works.
# CI must never depend on this script or on torch: the peer is a manual /
# benchmark-time tool only.
#
# Usage: bash tests/bench/install_torch.sh   (PYTHON=... to pick an interpreter)
set -euo pipefail

PYTHON="${PYTHON:-python3}"

if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "install_torch: torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already importable; nothing to do"
    exit 0
fi

echo "install_torch: installing torch from PyPI with $("$PYTHON" --version 2>&1) ($(command -v "$PYTHON"))"
"$PYTHON" -m pip install --progress-bar off torch numpy

"$PYTHON" -c 'import torch; print("install_torch: installed torch", torch.__version__)'
