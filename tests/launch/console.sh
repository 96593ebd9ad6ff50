#!/usr/bin/env bash
# console.sh — the console of `skein train` (CTest train_console): without --print-config the
# resolved config is not printed but is written to the run folder; with it, it is printed;
# the step line carries tok/s, GFLOP/s, memory and the ETA; metrics.jsonl carries gflops,
# pct_peak and memory; on a terminal (script(1) gives one) the progress line is redrawn in
# place ("\r" + erase line), in a log it never is.
#   bash tests/launch/console.sh build/release/launch/skein
set -euo pipefail
skein="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--set data.source=mqar --set model.vocab_size=32 --set model.d_model=16 --set model.n_layers=1
      --set model.n_heads=2 --set model.mlp_hidden=32 --set model.layer_pattern=L --set data.seq_len=16
      --set data.batch_size=2 --set data.mqar_num_kv_pairs=2 --set train.steps=6 --set optim.warmup=1
      --set train.log_every=3 --set train.eval_batches=1 --set checkpoint.every=0)
fail() { echo "FAIL: $*"; exit 1; }

"$skein" train "${args[@]}" --set train.run_dir="$tmp/a" > "$tmp/a.log" 2>&1
grep -q "resolved config" "$tmp/a.log" && fail "the config was printed without --print-config"
grep -q "^  d_model: 16" "$tmp/a/config.yaml" || fail "config.yaml lacks the resolved model section"
grep -Eq "^step      3 \| loss [0-9.]+ \| lr .* \| [0-9]+ tok/s \| [0-9.]+ GFLOP/s \([0-9]+% of sgemm\) \| mem [0-9]+ MB \(peak [0-9]+, rss [0-9]+\) \| eta [0-9]+s$" "$tmp/a.log" \
  || { cat "$tmp/a.log"; fail "no step line of the documented form"; }
grep -q $'\r' "$tmp/a.log" && fail "a log file got in-place redraws"
python3 - "$tmp/a/metrics.jsonl" <<'PY' || fail "metrics.jsonl lacks the throughput / memory scalars"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "loss" in r]
need = {"tokens_per_s", "gflops", "pct_peak", "mem_mb", "mem_peak_mb", "rss_mb"}
assert steps and all(need <= r.keys() for r in steps), steps
assert all(r["gflops"] > 0 and r["rss_mb"] > 0 and r["mem_peak_mb"] >= r["mem_mb"] for r in steps), steps
PY

"$skein" train "${args[@]}" --set train.run_dir="$tmp/b" --print-config > "$tmp/b.log" 2>&1
grep -q "^# resolved config" "$tmp/b.log" || fail "--print-config printed no config"

# A terminal: script(1) runs skein on a pseudo-terminal and records what it wrote.
if command -v script > /dev/null; then
  script -qec "$(printf '%q ' "$skein" train "${args[@]}" --set train.run_dir="$tmp/c")" "$tmp/c.log" > /dev/null
  grep -q $'\r\033\\[K\\[train\\] [0-9]*/6 ' "$tmp/c.log" || { cat -A "$tmp/c.log"; fail "no in-place progress line on a terminal"; }
fi
echo "console: ok"
