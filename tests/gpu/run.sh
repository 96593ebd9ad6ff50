#!/usr/bin/env bash
# run.sh — the GPU check, run on the GPU machine from the repository root with the bundle carried
# (.gpu/bundle.tar.xz; see tests/gpu/pack.sh). Prints an inventory first (so even a failed run
# teaches something), unpacks, runs the CUDA test suite and the GPU benchmarks (skein and the
# PyTorch peer, f32 and TF32), and writes logs, JSON results and a summary table (printed LAST)
# into OUTDIR. Every stage has its own time limit; the whole run stays under ~8 minutes.
# Usage: bash tests/gpu/run.sh OUTDIR
set -uo pipefail
OUT=${1:?usage: run.sh OUTDIR}
mkdir -p "$OUT"
ROOT=$(pwd)
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

{
  echo "== inventory $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1 || echo "nvidia-smi: not found"
  nvcc --version 2>&1 | tail -1 || echo "nvcc: not found"
  echo "cudart: $(ls /usr/local/cuda/lib64/libcudart.so* 2>/dev/null | head -1)"
  echo "cublas: $(ls /usr/local/cuda/lib64/libcublas.so* 2>/dev/null | head -1)"
  find / -name 'libnccl.so*' -not -path '*/proc/*' 2>/dev/null | head -3
  echo "mpirun: $(command -v mpirun || echo none)"
  echo "python: $(ls /opt/torch/.venv/bin/python 2>/dev/null || command -v python3)"
  free -g | head -2
  lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-160
} > "$OUT/inventory.txt" 2>&1
cat "$OUT/inventory.txt"

W=$(mktemp -d)
tar -C "$W" -xJf .gpu/bundle.tar.xz 2>/dev/null ||
  python3 -c "import sys, tarfile; tarfile.open('.gpu/bundle.tar.xz', 'r:xz').extractall(sys.argv[1])" "$W"
BUN=$W/bundle
[ -x "$BUN/bin/test_cuda" ] || { log "bundle: could not unpack .gpu/bundle.tar.xz"; exit 1; }
log "bundle: commit $(cat "$BUN/COMMIT") built $(cat "$BUN/BUILT")"
PY=/opt/torch/.venv/bin/python
[ -x "$PY" ] || PY=python3
NV=$($PY -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null || true)
EXTRA=""
for d in "$NV"/*/lib; do [ -d "$d" ] && EXTRA="$EXTRA:$d"; done
export LD_LIBRARY_PATH="$BUN/lib:/usr/local/cuda/lib64${EXTRA}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd "$BUN/bin/test_cuda" | grep -E "not found" > "$OUT/missing_libs.txt" && log "missing libraries: $(tr '\n' ' ' < "$OUT/missing_libs.txt")"

log "test_cuda"
timeout 240 "$BUN/bin/test_cuda" --gtest_output="xml:$OUT/test_cuda.xml" > "$OUT/test_cuda.log" 2>&1
rc=$?
tail -4 "$OUT/test_cuda.log" | tee -a "$OUT/summary.txt"
grep -E "^\[  FAILED  \]" "$OUT/test_cuda.log" | sort -u | head -20 | tee -a "$OUT/summary.txt"
log "test_cuda exit $rc"

bench() {  # name, seconds, command...
  local name=$1 secs=$2; shift 2
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  local r=$?
  log "$name (exit $r): $(tail -1 "$OUT/$name.log")"
}
bench skein_bench_f32 60 "$BUN/bin/bench_gpu" --device cuda --size bench --seq 2048 --batch 2 --steps 3 --warmup 1 --json "$OUT/skein_bench_f32.json" --max-seconds 45
bench skein_gpu_tf32 100 "$BUN/bin/bench_gpu" --device cuda --size gpu --seq 8192 --batch 4 --steps 2 --warmup 1 --tf32 1 --json "$OUT/skein_gpu_tf32.json" --max-seconds 80
bench torch_bench_f32 60 $PY "$BUN/scripts/torch_peer.py" --device cuda --size bench --seq 2048 --batch 2 --steps 3 --warmup 1 --json "$OUT/torch_bench_f32.json"
bench torch_gpu_tf32 90 $PY "$BUN/scripts/torch_peer.py" --device cuda --size gpu --seq 8192 --batch 4 --steps 3 --warmup 1 --tf32 --json "$OUT/torch_gpu_tf32.json"
# Each mixer alone (issue "fast fused CUDA mixers"): skein vs flash-linear-attention and SDPA, f32.
bench skein_mixers 70 "$BUN/bin/bench_gpu_mixers" --device cuda --batch 2 --seq 4096 --heads 16 --dim 128 --steps 5 --warmup 2 --json "$OUT/skein_mixers.jsonl" --max-seconds 60
if ls "$BUN"/wheels/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" "$BUN"/wheels/*.whl > "$OUT/fla_install.log" 2>&1
fi
PYTHONPATH="$W/site${PYTHONPATH:+:$PYTHONPATH}" bench fla_mixers 90 $PY "$BUN/scripts/fla_peer.py" --batch 2 --seq 4096 --heads 16 --dim 128 --steps 5 --warmup 2 --json "$OUT/fla_mixers.jsonl"

log "summary"
$PY - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
print(f"{'run':<18} {'tokens/s':>10} {'TFLOP/s':>8} {'step s':>8} {'peak MB':>9}")
for name in ["skein_bench_f32", "torch_bench_f32", "skein_gpu_tf32", "torch_gpu_tf32"]:
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        print(f"{name:<18} {'(no result)':>10}")
        continue
    r = json.load(open(p))
    tf = r.get("tflops", r.get("gflops", 0) / 1e3)
    mem = r.get("peak_device_mb", r.get("peak_gpu_mb", 0))
    print(f"{name:<18} {r['tokens_per_s']:>10.0f} {tf:>8.2f} {r['median_step_s']:>8.3f} {mem:>9.0f}")
rows = {}
for name in ["skein_mixers", "fla_mixers"]:
    p = os.path.join(out, name + ".jsonl")
    for line in open(p) if os.path.exists(p) else []:
        r = json.loads(line)
        rows.setdefault((r["mixer"], r["pass"]), {})[r["impl"]] = r["ms"]
if rows:
    print(f"{'mixer (B2 T4096 H16 D128)':<28} {'skein ms':>9} {'peer ms':>9} {'peer':>6} {'skein/peer':>10}")
    for (mixer, p), impls in sorted(rows.items()):
        peer = next((k for k in impls if k != "skein"), None)
        s_ms, p_ms = impls.get("skein"), impls.get(peer) if peer else None
        ratio = f"{s_ms / p_ms:10.2f}" if s_ms and p_ms else f"{'-':>10}"
        print(f"{mixer + ' ' + p:<28} {s_ms or 0:>9.3f} {p_ms or 0:>9.3f} {peer or '-':>6} {ratio}")
PY
rm -rf "$W"
