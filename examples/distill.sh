#!/usr/bin/env bash
# distill.sh — linearising a small transformer on CPU in minutes: pretrain a 4-layer softmax
# model with `skein train` on the quick start's corpus (the King James Bible, BPE 4096), export
# it as a Hugging Face Llama folder (`skein convert`), then distill it with Liger and with
# LoLCATs into a linear student (every layer converted) and a hybrid one (LLLS: the last softmax
# layer kept), and print teacher vs student validation perplexity and recovery for all four.
# Usage: bash examples/distill.sh            (SKEIN=path/to/skein to use another build;
#        TEACHER_STEPS=400 STEPS=150 to change the training lengths)
set -euo pipefail
cd "$(dirname "$0")/.."
SKEIN=${SKEIN:-./build/release/launch/skein}
TEACHER_STEPS=${TEACHER_STEPS:-400}   # teacher pretraining steps
STEPS=${STEPS:-150}                   # steps of each distillation stage
OUT=${OUT:-runs/distill-example}
if [ ! -x "$SKEIN" ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target skein
fi
mkdir -p data "$OUT"
if [ ! -s data/kjv.h5 ]; then  # the quick start's corpus (launch/quickstart.sh)
  bash .ci/install-deps.sh bible-kjv
  bible -f Gen1:1-Rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > data/kjv.txt.tmp
  mv data/kjv.txt.tmp data/kjv.txt
  "$SKEIN" prep --input data/kjv.txt --out data/kjv.h5 --train-tokenizer 4096
fi
common=(--set data.path=data/kjv.h5 --set data.seq_len=128 --set data.batch_size=8 --set train.log_every=50
        --set train.eval_batches=8 --set log.tensorboard=false)

# 1. the teacher: 4 softmax layers, d 128, 4 heads
rm -rf "$OUT/teacher" "$OUT/teacher-hf"
"$SKEIN" train "${common[@]}" --set model.vocab_size=0 --set model.d_model=128 --set model.n_layers=4 \
  --set model.n_heads=4 --set model.mlp_hidden=352 --set model.layer_pattern=S --set train.steps="$TEACHER_STEPS" \
  --set train.eval_every=0 --set train.sample_tokens=0 --set optim.lr=3e-3 --set optim.min_lr=3e-4 \
  --set optim.warmup=30 --set train.run_dir="$OUT/teacher"

# 2. export it as a Hugging Face Llama folder; the students start from that folder
"$SKEIN" convert --from skein --input "$(ls -d "$OUT"/teacher/checkpoints/ckpt-* | tail -1)" --output "$OUT/teacher-hf"

# 3. four students: {liger, lolcats} x {linear (all layers), hybrid (LLLS)}
for method in liger lolcats; do
  for layers in L LLLS; do
    name="$method-$layers"
    rm -rf "${OUT:?}/$name"
    "$SKEIN" distill --config "configs/distill-$method.yaml" "${common[@]}" --set distill.teacher="$OUT/teacher-hf" \
      --set distill.layers="$layers" --set distill.stage1_steps="$STEPS" --set distill.stage2_steps="$STEPS" \
      --set distill.eval_context=1024 --set distill.eval_tokens=32 --set train.eval_every=0 \
      --set train.run_dir="$OUT/$name" | grep -E "^(teacher|student|recovery|stage [12] step +($STEPS) )"
  done
done

# 4. the table (from each run's distill.json)
printf '\n%-16s %12s %12s %9s %16s %16s %14s %14s\n' student "teacher ppl" "student ppl" recovery \
  "teacher tok/s" "student tok/s" "teacher cache" "student cache"
for method in liger lolcats; do
  for layers in L LLLS; do
    python3 - "$OUT/$method-$layers/distill.json" "$method-$layers" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<16} {d['teacher_val_ppl']:12.2f} {d['student_val_ppl']:12.2f} {d['recovery']:9.3f} "
      f"{d['teacher_decode_tokens_per_s']:16.1f} {d['student_decode_tokens_per_s']:16.1f} "
      f"{d['teacher_cache_mb']:11.2f} MB {d['student_cache_mb']:11.2f} MB")
PY
  done
done
