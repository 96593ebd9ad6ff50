#!/usr/bin/env bash
# Every range-checked `skein` option: an out-of-range value exits 1 before any work, with the
# config keys' error style ("--tokens: invalid value -5 (must lie in [1, 1000000])").
# Usage: cli_ranges.sh <skein binary>
set -uo pipefail
skein=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0
expect() {  # expected message, then the arguments
  local want=$1; shift
  "$skein" "$@" > "$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" -ne 1 ] || ! grep -qF -- "$want" "$tmp/out"; then
    echo "FAIL: skein $* -> exit $rc: $(cat "$tmp/out")  (wanted exit 1 and '$want')"
    fails=$((fails + 1))
  else
    echo "ok: skein $*: $(head -c 200 "$tmp/out")"
  fi
}
expect "--tokens: invalid value -5 (must lie in [1, 1000000])" generate --checkpoint none --tokens -5
expect "--tokens: invalid value 0 (must lie in [1, 1000000])" generate --checkpoint none --tokens 0
expect "--temperature: invalid value -0.5 (must be finite and lie in [0, 100])" generate --checkpoint none --temperature -0.5
expect "--temperature: invalid value nan" generate --checkpoint none --temperature nan
expect "--top-k: invalid value -1 (must be >= 0 (0: all))" generate --checkpoint none --top-k -1
expect "--batches: invalid value -3 (must lie in [0, 1000000])" eval --checkpoint none --batches -3
expect "--batches: invalid value 99999999999 (must lie in [0, 1000000])" eval --checkpoint none --batches 99999999999
expect "--val-fraction: invalid value 1.5 (must be finite and lie in [0, 0.5])" prep --input x --out y.h5 --val-fraction 1.5
expect "--val-fraction: invalid value -0.1" prep --input x --out y.h5 --val-fraction -0.1
expect "--train-tokenizer: invalid value 100 (0 (none) or a vocabulary size in [257, 1048576]" prep --input x --out y.h5 --train-tokenizer 100
expect "--threads: invalid value 0 (must lie in [1, 1024])" prep --input x --out y.h5 --threads 0
expect "--max-shard-bytes: invalid value 0 (must be >= 1)" convert --from skein --input x --output y --max-shard-bytes 0
expect "--resume: invalid value '/no/such/ckpt' ('auto' or an existing checkpoint folder)" train --resume /no/such/ckpt
# More evaluation batches than the validation split holds (an eval that would cycle forever).
for i in 1 2 3 4; do printf 'In the beginning God created the heaven and the earth %s. ' $(seq 1 40) > "$tmp/doc$i.txt"; done
"$skein" prep --input "$tmp" --out "$tmp/c.h5" --val-fraction 0.25 > /dev/null 2>&1
"$skein" train --set data.path="$tmp/c.h5" --set model.d_model=16 --set model.n_layers=1 --set model.layer_pattern=S \
  --set model.n_heads=2 --set model.mlp_hidden=16 --set data.seq_len=16 --set data.batch_size=2 --set train.steps=1 \
  --set optim.warmup=0 --set train.sample_tokens=0 --set train.eval_batches=1 --set log.tensorboard=false \
  --set train.run_dir="$tmp/run" > /dev/null 2>&1 || echo "FAIL: the tiny run"
expect "--batches: invalid value 500 (the validation split of $tmp/c.h5 holds" eval --checkpoint "$tmp/run/checkpoints/ckpt-000001" --batches 500
[ "$fails" -eq 0 ] && echo "cli_ranges: ok" && exit 0
exit 1
