#!/usr/bin/env bash
# Two ranks of one mpirun job with different settings (train.steps on rank 1, then the resume
# point) must stop within 10 s with a non-zero exit and a message naming what differs, instead
# of hanging in mismatched collectives.
# Usage: rank_disagree.sh <skein binary> <mpiexec>
set -uo pipefail
skein=$1; mpiexec=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--set data.source=mqar --set model.vocab_size=64 --set model.d_model=16 --set model.n_layers=2
        --set model.n_heads=2 --set model.mlp_hidden=32 --set model.layer_pattern=LS --set data.seq_len=32
        --set data.batch_size=2 --set data.mqar_num_kv_pairs=4 --set train.eval_batches=1 --set train.sample_tokens=0
        --set train.threads=1 --set optim.warmup=0 --set log.tensorboard=false --set parallel.dp=2
        --set train.run_dir="$tmp/run")
check() {  # name, expected text, then the two ranks' extra arguments separated by ':'
  local name=$1 want=$2; shift 2
  local start end rc
  start=$(date +%s)
  timeout 60 "$mpiexec" --oversubscribe "$@" > "$tmp/$name.log" 2>&1
  rc=$?
  end=$(date +%s)
  cat "$tmp/$name.log"
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then echo "FAIL $name: exit $rc (0: ran, 124: hung)"; exit 1; fi
  if [ $((end - start)) -gt 10 ]; then echo "FAIL $name: took $((end - start)) s (> 10)"; exit 1; fi
  if ! grep -qF -- "$want" "$tmp/$name.log"; then echo "FAIL $name: no '$want' in the output"; exit 1; fi
  echo "ok $name: exit $rc in $((end - start)) s"
}
check steps "rank 1 disagrees with rank 0 on train.steps: 30 vs 20" \
  -np 1 "$skein" train "${common[@]}" --set train.steps=20 : -np 1 "$skein" train "${common[@]}" --set train.steps=30
check resume "rank 1 disagrees with rank 0 on the resume point: 'auto -> ' vs ''" \
  -np 1 "$skein" train "${common[@]}" --set train.steps=20 : -np 1 "$skein" train "${common[@]}" --set train.steps=20 --resume auto
echo "rank_disagree: ok"
