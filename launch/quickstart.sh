#!/usr/bin/env bash
# The main command: installs what it needs, builds skein, takes the King James Bible from
# Debian's bible-kjv package, preps it with a byte-level BPE tokenizer (4096 tokens) trained
# on it, trains configs/hybrid-small.yaml for a few minutes on CPU, and ends with the
# validation perplexity and a generated sample.
# Usage: bash launch/quickstart.sh [--set key=value ...]   (extra args go to `skein train`)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh bible-kjv
cmake --preset release >/dev/null
cmake --build --preset release --target skein
SKEIN=./build/release/launch/skein
echo "quickstart: skein is $PWD/build/release/launch/skein; to call it as 'skein', install it onto your PATH:"
echo "quickstart:   cmake --install build/release --prefix ~/.local   # then ~/.local/bin/skein (add ~/.local/bin to PATH)"
mkdir -p data
if [ ! -s data/kjv.txt ]; then
  echo "quickstart: dumping the King James Bible (bible-kjv) to data/kjv.txt"
  # every verse of Genesis 1:1 .. Revelation 22:21, without the "Ge1:1 " references
  bible -f Gen1:1-Rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > data/kjv.txt.tmp
  mv data/kjv.txt.tmp data/kjv.txt
fi
if [ ! -s data/kjv.h5 ]; then
  "$SKEIN" prep --input data/kjv.txt --out data/kjv.h5 --train-tokenizer 4096
fi
# Each quick start is a fresh run of its own folder (a plain `skein train` refuses a folder
# holding another run; --resume auto continues one, train.overwrite=true starts it over).
"$SKEIN" train --config configs/hybrid-small.yaml --set train.overwrite=true "$@"
