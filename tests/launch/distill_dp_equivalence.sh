#!/usr/bin/env bash
# `skein distill` under `mpirun -np 2` with parallel.dp=2 (teacher and student replicated, each
# rank half of the global batch, gradients averaged) must log the same losses and gradient norms
# at every step of both LoLCATs stages as one process on the whole batch, and end with the same
# student (its validation loss): the adapters' gradients agree step by step. LoRA covers the MLP
# too (gate/up/down_proj) and the LoRA stage runs ReduceLROnPlateau.
# Validation batches hold data.batch_size sequences on every rank (the validation set is not
# sharded), so the dp2 run evaluates 2 batches of 4 where one process evaluates 1 of 8: the same
# sequences, and MQAR gives each sequence the same number of targets, so the same mean.
# Usage: distill_dp_equivalence.sh <skein binary> <mpiexec>
set -euo pipefail
skein=$1; mpiexec=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
model=(--set data.source=mqar --set model.vocab_size=64 --set model.d_model=32 --set model.n_layers=2
       --set model.n_heads=2 --set model.n_kv_heads=1 --set model.mlp_hidden=64 --set model.layer_pattern=S
       --set data.seq_len=32 --set data.mqar_num_kv_pairs=4 --set train.eval_batches=1 --set train.threads=1
       --set log.tensorboard=false --set checkpoint.every=0)
"$skein" train "${model[@]}" --set train.steps=10 --set train.sample_tokens=0 --set optim.warmup=0 --set optim.lr=0.01 \
  --set data.batch_size=8 --set train.run_dir="$tmp/teacher" > "$tmp/teacher.log"
common=("${model[@]}" --set distill.teacher="$tmp/teacher" --set distill.method=lolcats --set distill.window=8
        --set distill.feature_dim=8 --set distill.stage1_steps=4 --set distill.stage2_steps=6 --set distill.stage1_lr=0.01
        --set distill.stage2_lr=0.01 --set train.log_every=1 --set train.eval_every=2 --set optim.warmup=0
        --set optim.schedule=plateau --set optim.plateau_patience=0 --set optim.plateau_factor=0.5 --set optim.plateau_threshold=0.5
        --set 'distill.lora_targets=[q_proj,v_proj,gate_proj,down_proj]' --set distill.eval_context=16 --set distill.eval_tokens=2)
cfg=$(ls "$(dirname "$0")/../../configs/distill-lolcats.yaml")
"$skein" distill --config "$cfg" "${common[@]}" --set data.batch_size=8 --set train.run_dir="$tmp/single" > "$tmp/single.log"
"$mpiexec" --oversubscribe -np 2 "$skein" distill --config "$cfg" "${common[@]}" --set data.batch_size=4 \
  --set parallel.dp=2 --set train.eval_batches=2 --set train.run_dir="$tmp/dp2" > "$tmp/dp2.log"
python3 - "$tmp/single" "$tmp/dp2" <<'PY'
import json, sys
def rows(d):
    return [json.loads(l) for l in open(d + "/metrics.jsonl")]
def series(rs, key):
    return [r[key] for r in rs if key in r]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
worst = 0
for key, n in (("mse", 4), ("loss", 6), ("grad_norm", 10), ("val_loss", 2), ("lr", 10)):
    x, y = series(a, key), series(b, key)
    assert len(x) == n and len(y) == n, (key, len(x), len(y))
    w = max(abs(p - q) / max(abs(p), 1e-30) for p, q in zip(x, y))
    print(f"dp2 vs single: {key}: {n} values, worst relative difference {w:.2e}")
    worst = max(worst, w)
assert worst < 1e-5, worst
sa, sb = (json.load(open(d + "/distill.json")) for d in sys.argv[1:3])
w = abs(sa["student_val_loss"] - sb["student_val_loss"]) / sa["student_val_loss"]
print(f"student val loss {sa['student_val_loss']:.6f} vs {sb['student_val_loss']:.6f} ({w:.1e})")
assert w < 1e-5, w
lrs = series(a, "lr")
assert min(lrs) < max(lrs), f"the plateau never cut the rate: {lrs}"
PY
