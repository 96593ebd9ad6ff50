#!/usr/bin/env bash
# A 20-step MQAR training run under `mpirun -np NP` with the grid dp x sp x tp (dp ranks share
# the global batch of 8 sequences, sp ranks hold slices of each sequence, tp ranks shards of
# the model) must log the same losses as one process on the whole batch.
# Usage: grid_equivalence.sh <skein binary> <mpiexec> <dp> <sp> <tp> [pattern] [extra --set ...]
set -euo pipefail
skein=$1; mpiexec=$2; dp=$3; sp=$4; tp=$5; pattern=${6:-LS}; shift 6 || shift $#
np=$((dp * sp * tp))
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--set data.source=mqar --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
        --set model.n_heads=2 --set model.mlp_hidden=64 --set model.layer_pattern="$pattern" --set data.seq_len=32
        --set data.mqar_num_kv_pairs=4 --set train.steps=20 --set train.log_every=1 --set train.eval_batches=1
        --set train.sample_tokens=0 --set train.threads=1 --set optim.warmup=0 --set optim.lr=0.01 --set log.tensorboard=false
        --set checkpoint.every=0 "$@")
"$skein" train "${common[@]}" --set data.batch_size=8 --set train.run_dir="$tmp/single" > "$tmp/single.log"
"$mpiexec" --oversubscribe -np "$np" "$skein" train "${common[@]}" --set data.batch_size=$((8 / dp)) \
  --set parallel.dp="$dp" --set parallel.sp="$sp" --set parallel.tp="$tp" --set train.run_dir="$tmp/grid" > "$tmp/grid.log"
python3 - "$tmp/single/metrics.jsonl" "$tmp/grid/metrics.jsonl" "dp$dp x sp$sp x tp$tp" <<'PY'
import json, sys
def losses(p):
    return [json.loads(l)["loss"] for l in open(p) if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == 20 and len(b) == 20, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[3]} vs single: 20 losses, worst relative difference {worst:.2e}; first {a[0]:.6f} last {a[-1]:.6f}")
assert worst < 1e-5, worst
assert a[-1] < a[0]
PY
