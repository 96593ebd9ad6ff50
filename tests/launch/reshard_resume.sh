#!/usr/bin/env bash
# A checkpoint saved under one grid resumes under another: a 20-step MQAR run under
# `mpirun -np 2` with tensor parallelism (tp 2) checkpoints at step 10 (one shard file per
# tp rank); one process resumes from it and its losses for steps 11-20 must equal those of
# an uninterrupted one-process run.
# Usage: reshard_resume.sh <skein binary> <mpiexec>
set -euo pipefail
skein=$1; mpiexec=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--set data.source=mqar --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
        --set model.n_heads=2 --set model.mlp_hidden=64 --set model.layer_pattern=LS --set data.seq_len=32
        --set data.mqar_num_kv_pairs=4 --set data.batch_size=8 --set train.steps=20 --set train.log_every=1
        --set train.eval_batches=1 --set train.sample_tokens=0 --set train.threads=1 --set optim.warmup=0
        --set optim.lr=0.01 --set log.tensorboard=false)
"$skein" train "${common[@]}" --set checkpoint.every=0 --set train.run_dir="$tmp/single" > "$tmp/single.log"
"$mpiexec" --oversubscribe -np 2 "$skein" train "${common[@]}" --set parallel.tp=2 --set checkpoint.every=10 \
  --set train.run_dir="$tmp/tp2" > "$tmp/tp2.log"
ckpt="$tmp/tp2/checkpoints/ckpt-000010"
test -f "$ckpt/shard-tp00-of-02.h5" && test -f "$ckpt/shard-tp01-of-02.h5" || { ls -R "$tmp/tp2"; exit 1; }
"$skein" train "${common[@]}" --set checkpoint.every=0 --set train.run_dir="$tmp/resumed" --resume "$ckpt" > "$tmp/resumed.log"
python3 - "$tmp/single/metrics.jsonl" "$tmp/resumed/metrics.jsonl" <<'PY'
import json, sys
def losses(p):
    return {json.loads(l)["step"]: json.loads(l)["loss"] for l in open(p) if '"loss"' in l}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
steps = sorted(b)
assert steps == list(range(11, 21)), steps
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in steps)
print(f"tp2 checkpoint at step 10 resumed on one process: steps 11-20, worst relative difference {worst:.2e}")
assert worst < 1e-5, worst
PY
