#!/usr/bin/env bash
# The main command: installs dependencies, builds, and runs the main job.
# For now the main job is the autograd demo (a tiny byte-level LM whose loss falls);
# the training-program issue replaces it with `skein train` on the default corpus.
# Usage: bash launch/quickstart.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target skein_demo
./build/release/launch/skein_demo "${1:-300}"
