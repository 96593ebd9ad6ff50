#!/usr/bin/env bash
# lm_eval.sh — evaluates a skein checkpoint with lm-evaluation-harness, the way the field
# reports results (fla, Linear-MoE, LoLCATs and Liger use lm_eval on Hugging Face models):
# `skein convert --from skein` exports it (hybrids with modeling_skein.py, the run's tokenizer
# along), `lm_eval --model hf ... trust_remote_code=True` runs the local task
# examples/lm_eval/kjv_next_word (no download), and `skein eval --items` scores the same items
# with skein itself; the two accuracies and perplexities must agree (tests/launch/check_lm_eval.py).
#
# Usage (from anywhere; default: the newest checkpoint of the quick-start run):
#   bash examples/lm_eval.sh [CHECKPOINT] [--install]
#     --install   first pip-install lm-eval, accelerate, transformers, safetensors and torch (PyPI)
# Environment: SKEIN (the binary, default build/release/launch/skein), OUT (default
# runs/lm_eval/<checkpoint name>), TASKS (default kjv_next_word; e.g. TASKS=lambada_openai,hellaswag
# for standard tasks where their datasets can be downloaded or are in the HF cache — then leave
# HF_DATASETS_OFFLINE unset).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt="" install=0
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    *) ckpt="$a" ;;
  esac
done
SKEIN="${SKEIN:-./build/release/launch/skein}"
if [ -z "$ckpt" ]; then
  ckpt=$(ls -d runs/hybrid-small/checkpoints/ckpt-* 2>/dev/null | tail -1 || true)
  [ -n "$ckpt" ] || { echo "lm_eval.sh: no checkpoint given and none in runs/hybrid-small (run bash launch/quickstart.sh)" >&2; exit 2; }
fi
if [ "$install" = 1 ]; then
  python3 -m pip install --progress-bar off lm-eval accelerate transformers safetensors torch
fi
python3 -c "import lm_eval.models.huggingface, transformers, torch" 2>/dev/null \
  || { echo "lm_eval.sh: lm_eval / transformers / torch are not installed (rerun with --install)" >&2; exit 3; }

OUT="${OUT:-runs/lm_eval/$(basename "$ckpt")}"
TASKS="${TASKS:-kjv_next_word}"
rm -rf "$OUT"
mkdir -p "$OUT"
"$SKEIN" convert --from skein --input "$ckpt" --output "$OUT/hf"
[ -f "$OUT/hf/tokenizer.json" ] || { echo "lm_eval.sh: the export has no tokenizer (is the run's data.path there?)" >&2; exit 4; }

export HF_HUB_OFFLINE=1 HF_MODULES_CACHE="$OUT/hf_modules"
if [ "$TASKS" = kjv_next_word ]; then export HF_DATASETS_OFFLINE=1; fi
python3 -m lm_eval --model hf \
  --model_args "pretrained=$OUT/hf,trust_remote_code=True,dtype=float32" \
  --tasks "$TASKS" --include_path examples/lm_eval --device cpu --batch_size 1 \
  --output_path "$OUT/lm_eval" --log_samples | tee "$OUT/lm_eval.txt"

if [ "$TASKS" = kjv_next_word ]; then
  "$SKEIN" eval --checkpoint "$ckpt" --items examples/lm_eval/kjv_next_word.jsonl > "$OUT/skein_items.jsonl"
  echo "skein eval --items (the same items, skein's own forward): $(tail -1 "$OUT/skein_items.jsonl")"
fi
