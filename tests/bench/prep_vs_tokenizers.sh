#!/usr/bin/env bash
# prep_vs_tokenizers.sh — `skein prep` throughput (MB of text per second, 1 and 2 tokenising
# threads) against Hugging Face `tokenizers` (Tokenizer.encode_batch, RAYON_NUM_THREADS 1 and 2)
# encoding the same documents with the same tokenizer.json, interleaved in one run, best of
# REPEATS. The corpus: the King James Bible (Debian's bible-kjv), one document per verse; the
# tokenizer: a 4096-token byte-level BPE trained on it by skein. skein's time is the whole
# command (read, tokenise, write the HDF5 file); the peer's is the encode_batch call alone.
# Installs `tokenizers` from PyPI when it is not importable.
# Usage: bash tests/bench/prep_vs_tokenizers.sh [skein binary] (REPEATS=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
SKEIN=${1:-build/release/launch/skein}
REPEATS=${REPEATS:-3}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import tokenizers' 2>/dev/null || "$PYTHON" -m pip install --progress-bar off tokenizers
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -s data/kjv.txt ]; then cp data/kjv.txt "$tmp/kjv.txt"; else
  bible -f Gen1:1-Rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$tmp/kjv.txt"; fi
"$SKEIN" prep --input "$tmp/kjv.txt" --out "$tmp/tok/kjv.h5" --train-tokenizer 4096 --doc-separator $'\n' \
  --threads 2 > /dev/null 2>&1
mb=$("$PYTHON" -c "import os; print(os.path.getsize('$tmp/kjv.txt') / 1e6)")
cat > "$tmp/peer.py" <<'PY'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
docs = [d for d in open(sys.argv[2], encoding="utf-8").read().split("\n") if d]
t0 = time.perf_counter()
out = tok.encode_batch(docs, add_special_tokens=False)
dt = time.perf_counter() - t0
print(f"{dt:.4f} {sum(len(e.ids) for e in out)}")
PY
declare -A best
for r in $(seq 1 "$REPEATS"); do
  for threads in 1 2; do
    start=$(date +%s.%N)
    "$SKEIN" prep --input "$tmp/kjv.txt" --out "$tmp/s$threads.h5" --tokenizer "bpe:$tmp/tok/tokenizer.json" \
      --doc-separator $'\n' --val-fraction 0 --threads "$threads" > "$tmp/skein.log" 2>/dev/null
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc -l)
    key="skein$threads"; [ -z "${best[$key]:-}" ] || (( $(echo "$t < ${best[$key]}" | bc -l) )) && best[$key]=$t
    read -r pt ntok < <(RAYON_NUM_THREADS=$threads TOKENIZERS_PARALLELISM=true "$PYTHON" "$tmp/peer.py" "$tmp/tok/tokenizer.json" "$tmp/kjv.txt")
    key="hf$threads"; [ -z "${best[$key]:-}" ] || (( $(echo "$pt < ${best[$key]}" | bc -l) )) && best[$key]=$pt
  done
done
skein_tokens=$(grep -oE '[0-9]+ train' "$tmp/skein.log" | grep -oE '[0-9]+')
echo "corpus: $mb MB, 1 document a verse; skein tokens (with one eos a document): $skein_tokens, tokenizers tokens: $ntok"
for threads in 1 2; do
  s=${best[skein$threads]}; h=${best[hf$threads]}
  printf "threads %d: skein prep %.2f s = %.2f MB/s | tokenizers encode_batch %.2f s = %.2f MB/s | ratio skein/tokenizers %.2f\n" \
    "$threads" "$s" "$(echo "$mb / $s" | bc -l)" "$h" "$(echo "$mb / $h" | bc -l)" "$(echo "$h / $s" | bc -l)"
done
