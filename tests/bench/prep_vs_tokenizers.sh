#!/usr/bin/env bash
# prep_vs_tokenizers.sh — skein's tokenizers against Hugging Face `tokenizers` (Rust, through
# Python) on the same documents and the same tokenizer.json, per family, 1 and 2 threads,
# interleaved in one run, best of REPEATS:
#   skein prep      the whole `skein prep` command (read, tokenise, write the HDF5 file)
#   skein encode    bench_tokenize: the tokenising alone (encode with the template, BOS included)
#   tokenizers      Tokenizer.encode_batch(docs) alone (RAYON_NUM_THREADS 1 and 2; its file
#                   reading and Python start-up are not counted)
# Families: bpe (skein's own byte-level BPE, 4096 tokens, trained by skein prep), and gpt2,
# llama3, qwen2, llama2, mistral: tokenizer.json files in each family's configuration
# (tests/fixtures/tokenizers/make_fixtures.py) trained by `tokenizers` on the corpus, VOCAB tokens.
# Before timing, bench_tokenize's ids are checked equal, id for id, to encode_batch's.
# Corpus: the King James Bible (Debian's bible-kjv), one document per verse.
# Usage: bash tests/bench/prep_vs_tokenizers.sh [build dir]   (REPEATS=3 VOCAB=16000 FAMILIES="...")
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/release}
SKEIN=$BUILD/launch/skein
ENCODE=$BUILD/tests/bench/bench_tokenize
REPEATS=${REPEATS:-3}
VOCAB=${VOCAB:-16000}
FAMILIES=${FAMILIES:-"bpe gpt2 llama3 qwen2 llama2 mistral"}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import tokenizers, numpy' 2>/dev/null || "$PYTHON" -m pip install --progress-bar off tokenizers numpy
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ -s data/kjv.txt ]; then cp data/kjv.txt "$tmp/kjv.txt"; else
  bible -f Gen1:1-Rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$tmp/kjv.txt"; fi
mb=$("$PYTHON" -c "import os; print(os.path.getsize('$tmp/kjv.txt') / 1e6)")

# The tokenizer.json of each family.
"$SKEIN" prep --input "$tmp/kjv.txt" --out "$tmp/bpe/kjv.h5" --train-tokenizer 4096 --doc-separator $'\n' \
  --threads 2 > /dev/null 2>&1
cp "$tmp/bpe/tokenizer.json" "$tmp/bpe.json"
"$PYTHON" - "$tmp" $VOCAB <<'PY'
import json, sys
sys.path.insert(0, "tests/fixtures/tokenizers")
import make_fixtures
tmp, vocab = sys.argv[1], int(sys.argv[2])
docs = [d for d in open(f"{tmp}/kjv.txt", encoding="utf-8").read().split("\n") if d]
for fam in ["gpt2", "llama3", "qwen2", "llama2", "mistral"]:
    json.dump(make_fixtures.build(fam, docs, vocab), open(f"{tmp}/{fam}.json", "w", encoding="utf-8"), ensure_ascii=False)
PY
cat > "$tmp/peer.py" <<'PY'
import sys, time
import numpy as np
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
docs = [d for d in open(sys.argv[2], encoding="utf-8").read().split("\n") if d]
t0 = time.perf_counter()
out = tok.encode_batch(docs)
dt = time.perf_counter() - t0
if len(sys.argv) > 3:
    np.concatenate([np.asarray(e.ids, dtype="<i4") for e in out]).tofile(sys.argv[3])
print(f"{dt:.4f} {sum(len(e.ids) for e in out)}")
PY

spec() { if [ "$1" = bpe ]; then echo "bpe:$tmp/bpe.json"; else echo "hf:$tmp/$1.json"; fi; }
best() {  # best KEY VALUE: keeps the smaller
  local k=$1 v=$2
  if [ -z "${BEST[$k]:-}" ] || (( $(echo "$v < ${BEST[$k]}" | bc -l) )); then BEST[$k]=$v; fi
}
declare -A BEST
for fam in $FAMILIES; do
  "$ENCODE" "$(spec "$fam")" "$tmp/kjv.txt" 2 "$tmp/skein_ids.bin" > /dev/null
  "$PYTHON" "$tmp/peer.py" "$tmp/$fam.json" "$tmp/kjv.txt" "$tmp/hf_ids.bin" > /dev/null
  if cmp -s "$tmp/skein_ids.bin" "$tmp/hf_ids.bin"; then same="identical ids"; else same="IDS DIFFER"; fi
  echo "$fam: $(( $(stat -c %s "$tmp/hf_ids.bin") / 4 )) ids from tokenizers, $(( $(stat -c %s "$tmp/skein_ids.bin") / 4 )) from skein: $same"
done
for r in $(seq 1 "$REPEATS"); do
  for fam in $FAMILIES; do
    for threads in 1 2; do
      start=$(date +%s.%N)
      "$SKEIN" prep --input "$tmp/kjv.txt" --out "$tmp/s.h5" --tokenizer "$(spec "$fam")" \
        --doc-separator $'\n' --val-fraction 0 --threads "$threads" > /dev/null 2>&1
      best "prep $fam $threads" "$(echo "$(date +%s.%N) - $start" | bc -l)"
      read -r t _ _ _ < <("$ENCODE" "$(spec "$fam")" "$tmp/kjv.txt" "$threads")
      best "encode $fam $threads" "$t"
      read -r t _ < <(RAYON_NUM_THREADS=$threads TOKENIZERS_PARALLELISM=true "$PYTHON" "$tmp/peer.py" "$tmp/$fam.json" "$tmp/kjv.txt")
      best "hf $fam $threads" "$t"
    done
  done
done
echo "corpus: $mb MB, 31102 documents (one a verse); best of $REPEATS, interleaved; MB/s of text"
printf "%-8s %3s | %-17s | %-17s | %-17s | %s\n" family thr "skein prep" "skein encode" "tokenizers" "encode/tokenizers  prep/tokenizers"
for fam in $FAMILIES; do
  for threads in 1 2; do
    p=${BEST["prep $fam $threads"]} e=${BEST["encode $fam $threads"]} h=${BEST["hf $fam $threads"]}
    printf "%-8s %3d | %5.2f s %6.2f MB/s | %5.2f s %6.2f MB/s | %5.2f s %6.2f MB/s | %5.2f  %5.2f\n" "$fam" "$threads" \
      "$p" "$(echo "$mb / $p" | bc -l)" "$e" "$(echo "$mb / $e" | bc -l)" "$h" "$(echo "$mb / $h" | bc -l)" \
      "$(echo "$h / $e" | bc -l)" "$(echo "$h / $p" | bc -l)"
  done
done
