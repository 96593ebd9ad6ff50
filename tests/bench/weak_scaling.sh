#!/usr/bin/env bash
# Weak scaling of sequence parallelism on the benchmark model (configs/bench.yaml, LLLS): the
# training throughput of `skein train` at sp = 2 (2 ranks x 1 thread, global sequence 2T: the
# L layers through LASP-2, the S layer through zigzag Ring and through LASP-2H) against one
# process (1 thread) at the per-rank length T. A dp = 2 run at T per rank (the same work per rank
# as the single process, plus the gradient all-reduce; no sequence parallelism) is the control:
# it shows what two processes sharing the machine cost before any sequence-parallel work.
#   efficiency = (tokens/s at 2 ranks / 2) / tokens/s of the single process
# tokens/s is the median of the steps after the first two (metrics.jsonl); each repetition
# runs the four configurations back to back, so load on the machine hits all of them alike.
# OpenBLAS picks its own kernels (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, docs/PERF.md).
# Usage (from the repository root): weak_scaling.sh <skein binary> <mpiexec> [T per rank, 2048] [steps, 6] [repetitions, 1]
#                        [extra --set ...]   (e.g. --set model.layer_pattern=LLLL)
set -euo pipefail
skein=$1; mpiexec=$2; T=${3:-2048}; steps=${4:-6}; reps=${5:-1}; shift 5 || shift $#
(( steps >= 3 )) || { echo "weak_scaling.sh: steps must be >= 3 (2 warm-up steps), got $steps" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
common=(--config configs/bench.yaml --set data.source=mqar --set data.batch_size=1 --set train.threads=1
        --set train.steps="$steps" --set train.eval_batches=1 --set train.eval_every=0 --set log.tensorboard=false
        --set checkpoint.every=0 "$@")

# run <name> <np> [--set ...]: one training run; its log and metrics under $tmp/<name>.
run() {
  local name=$1 np=$2; shift 2
  local launch=("$skein")
  (( np > 1 )) && launch=("$mpiexec" --oversubscribe -np "$np" "$skein")
  "${run_env[@]}" "${launch[@]}" train "${common[@]}" --set train.run_dir="$tmp/$name" "$@" > "$tmp/$name.log" 2>&1 ||
    { tail -20 "$tmp/$name.log" >&2; echo "weak_scaling.sh: run $name failed" >&2; exit 1; }
}

for rep in $(seq 1 "$reps"); do
  run "single.$rep" 1 --set data.seq_len="$T"
  run "dp2.$rep" 2 --set data.seq_len="$T" --set parallel.dp=2
  run "ring.$rep" 2 --set data.seq_len=$((2 * T)) --set parallel.sp=2 --set parallel.softmax_sp=ring
  run "lasp2h.$rep" 2 --set data.seq_len=$((2 * T)) --set parallel.sp=2 --set parallel.softmax_sp=lasp2h
done

python3 - "$tmp" "$T" "$reps" "$(uptime)" <<'PY'
import json, statistics, sys
tmp, T, reps, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def tps(name):
    rows = [json.loads(l) for l in open(f"{tmp}/{name}/metrics.jsonl")]
    steps = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r and r["step"] > 2]
    return statistics.median(steps)
print(f"weak scaling, T = {T} tokens per rank, 1 thread per rank; {load.strip()}")
print("| rep | 1 process tok/s | dp=2 tok/s (eff.) | sp=2 Ring tok/s (eff.) | sp=2 LASP-2H tok/s (eff.) |")
print("|---:|---:|---:|---:|---:|")
effs = {"dp2": [], "ring": [], "lasp2h": []}
for rep in range(1, reps + 1):
    base = tps(f"single.{rep}")
    cells = []
    for mode in effs:
        t = tps(f"{mode}.{rep}")
        effs[mode].append(t / 2 / base)
        cells.append(f"{t:.0f} ({effs[mode][-1]:.3f})")
    print(f"| {rep} | {base:.0f} | " + " | ".join(cells) + " |")
print("median efficiency: " + ", ".join(f"{m} {statistics.median(e):.3f}" for m, e in effs.items()))
PY
