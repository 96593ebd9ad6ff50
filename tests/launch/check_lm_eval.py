#!/usr/bin/env python3
"""check_lm_eval.py — runs examples/lm_eval.sh on a small skein checkpoint and checks that
lm-evaluation-harness's accuracy and perplexity on the local task kjv_next_word equal skein's own
evaluation of the same items (`skein eval --items`): the same greedy flag for every item, the
same log-likelihood within 1e-4, so the same acc and perplexity.

The checkpoint (a random LS hybrid, BPE tokenizer trained on the task's text) comes from the test
binary's HfLmEval.WritesCheckpoint. CTest runs it when lm_eval, transformers and torch are
importable; otherwise it exits 77 (skipped). `bash examples/lm_eval.sh --install` installs them.

  python3 tests/launch/check_lm_eval.py --test-binary build/release/tests/test_launch --skein build/release/launch/skein
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

SKIP = 77
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-binary", required=True)
    ap.add_argument("--skein", required=True)
    args = ap.parse_args()
    try:
        import lm_eval.models.huggingface  # noqa: F401  (needs accelerate too)
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"skipped: {e} (bash examples/lm_eval.sh --install)")
        return SKIP

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SKEIN_LM_EVAL_DIR=tmp)
        subprocess.run([os.path.abspath(args.test_binary), "--gtest_filter=HfLmEval.WritesCheckpoint"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        ckpt = glob.glob(os.path.join(tmp, "checkpoints", "ckpt-*"))[0]
        out = os.path.join(tmp, "eval")
        env = dict(os.environ, SKEIN=os.path.abspath(args.skein), OUT=out)
        run = subprocess.run(["bash", os.path.join(REPO, "examples", "lm_eval.sh"), ckpt], env=env,
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:])
            return 1
        results = json.load(open(glob.glob(os.path.join(out, "lm_eval", "**", "results_*.json"), recursive=True)[0]))
        res = results["results"]["kjv_next_word"]
        samples = [json.loads(line) for line in open(glob.glob(os.path.join(out, "lm_eval", "**", "samples_kjv_next_word_*.jsonl"), recursive=True)[0])]
        samples.sort(key=lambda s: s["doc_id"])
        skein = [json.loads(line) for line in open(os.path.join(out, "skein_items.jsonl"))]
        summary, items = skein[-1], skein[:-1]

    failed = 0
    if len(samples) != len(items):
        print(f"lm_eval scored {len(samples)} items, skein {len(items)}: FAIL")
        return 1
    worst = 0.0
    for s, k in zip(samples, items):
        ll, greedy = s["resps"][0][0]
        ll, greedy = float(ll), bool(greedy) if not isinstance(greedy, str) else greedy == "True"
        worst = max(worst, abs(ll - k["loglikelihood"]))
        if abs(ll - k["loglikelihood"]) > 1e-4 or greedy != k["greedy"]:
            failed += 1
            print(f"item {s['doc_id']}: lm_eval ({ll}, {greedy}) vs skein ({k['loglikelihood']}, {k['greedy']}): FAIL")
    acc = res.get("acc,none")
    ppl = res.get("perplexity,none")
    ok = acc == summary["acc"] and math.isclose(ppl, summary["perplexity"], rel_tol=1e-5)
    failed += not ok
    print(f"kjv_next_word: lm_eval acc {acc} perplexity {ppl} | skein acc {summary['acc']} perplexity "
          f"{summary['perplexity']} | {len(items)} items, largest log-likelihood difference {worst:.2e}: "
          f"{'ok' if ok else 'FAIL'}")
    if summary["acc"] == 0:
        print("note: no item is a greedy hit for this model: acc equality is only the ll check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
