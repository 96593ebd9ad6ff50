#!/usr/bin/env bash
# A 20-step MQAR training run under `mpirun -np 2` with parallel.dp=2 (each rank half of
# the global batch) must log the same losses as one process on the whole batch.
# Usage: dp_equivalence.sh <skein binary> <mpiexec>
set -euo pipefail
skein=$1; mpiexec=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--set data.source=mqar --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
        --set model.n_heads=2 --set model.mlp_hidden=64 --set model.layer_pattern=LS --set data.seq_len=32
        --set data.mqar_num_kv_pairs=4 --set train.steps=20 --set train.log_every=1 --set train.eval_batches=1
        --set train.sample_tokens=0 --set train.threads=1 --set optim.warmup=0 --set optim.lr=0.01 --set log.tensorboard=false
        --set checkpoint.every=0)
"$skein" train "${common[@]}" --set data.batch_size=8 --set train.run_dir="$tmp/single" > "$tmp/single.log"
"$mpiexec" --oversubscribe -np 2 "$skein" train "${common[@]}" --set data.batch_size=4 --set parallel.dp=2 \
  --set train.run_dir="$tmp/dp2" > "$tmp/dp2.log"
python3 - "$tmp/single/metrics.jsonl" "$tmp/dp2/metrics.jsonl" <<'PY'
import json, sys
def losses(p):
    return [json.loads(l)["loss"] for l in open(p) if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == 20 and len(b) == 20, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"dp2 vs single: 20 losses, worst relative difference {worst:.2e}; first {a[0]:.6f} last {a[-1]:.6f}")
assert worst < 1e-5, worst
assert a[-1] < a[0]
PY
