#!/usr/bin/env bash
# The test command: installs dependencies (Debian packages, skipped when present),
# configures and builds the release preset (-Werror), and runs the whole CTest suite.
# Usage: bash tests/run.sh            (from anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh
cmake --preset release
cmake --build --preset release
ctest --preset release
