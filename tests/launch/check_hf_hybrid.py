#!/usr/bin/env python3
"""check_hf_hybrid.py — checks that transformers runs skein's hybrid exports (model_type
skein_hybrid, remote code launch/hf/modeling_skein.py) with skein's logits, for every mixer kind.

Runs the test binary's HfHybrid.WritesForTransformers, which exports one small random model per
mixer kind (linear plain/decay/gla/delta/gated_delta with each feature map, output gate and norm
options; softmax with a window and grouped-query heads; MoM with each recurrence; Liger with and
without its window attention; LoLCATs) with skein's logits of fixed ids. Each folder, and the
committed tests/fixtures/tiny_hybrid, is loaded with AutoModelForCausalLM.from_pretrained(...,
trust_remote_code=True); the logits must agree within 1e-4 of their scale and no weight may be
missing or unexpected. Loading without trust_remote_code must fail. AutoTokenizer on an export
with a BPE tokenizer, and on the fixture (byte tokenizer), must give skein's ids and decode back. CTest runs it when
transformers and torch are importable; otherwise it exits 77 (skipped).

  python3 tests/launch/check_hf_hybrid.py --test-binary build/release/tests/test_launch
"""
import argparse
import os
import subprocess
import sys
import tempfile

SKIP = 77  # CTest's SKIP_RETURN_CODE
FIXTURE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tiny_hybrid"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-binary", required=True)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    modules = tempfile.TemporaryDirectory()
    os.environ["HF_MODULES_CACHE"] = modules.name  # where transformers copies remote code
    try:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:
        print(f"skipped: {e} (pip install transformers safetensors torch)")
        return SKIP

    failed = 0
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, SKEIN_HF_HYBRID_DIR=out)
        subprocess.run([args.test_binary, "--gtest_filter=HfHybrid.WritesForTransformers"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        folders = [(name, os.path.join(out, name)) for name in sorted(os.listdir(out)) if name != "tokenizer_bpe"]
        folders.append(("committed fixture tiny_hybrid", FIXTURE))
        for name, folder in folders:
            try:
                model, info = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
                model = model.float().eval()
                ref = load_file(os.path.join(folder, "reference.safetensors"))
                with torch.no_grad():
                    logits = model(ref["input_ids"]).logits.float()
            except Exception as e:  # report every folder, then fail
                print(f"{name}: {type(e).__name__}: {e}: FAIL")
                failed += 1
                continue
            err = ((logits - ref["logits"]).abs().max() / ref["logits"].abs().max()).item()
            bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
            # a softmax stack with a window is Mistral (transformers computes it natively)
            want = "MistralForCausalLM" if name == "softmax_window_gqa" else "SkeinForCausalLM"
            ok = err <= args.tolerance and not bad and type(model).__name__ == want
            failed += not ok
            print(f"{name}: relative logit error {err:.2e}{'' if not bad else f', {bad}'}: {'ok' if ok else 'FAIL'}")
        # Tokenizer round trip: AutoTokenizer on the export gives skein's ids and decodes back.
        from transformers import AutoTokenizer
        tdir = os.path.join(out, "tokenizer_bpe")
        text = open(os.path.join(tdir, "tokenizer_text.txt"), encoding="utf-8").read()
        want = load_file(os.path.join(tdir, "tokenizer_ids.safetensors"))["ids"].tolist()
        for name, folder, expect in (("bpe", tdir, want),
                                     ("bytes (fixture)", FIXTURE, list(text.encode("utf-8")) + [256])):
            tok = AutoTokenizer.from_pretrained(folder)
            ids = tok(text)["input_ids"] + [tok.eos_token_id]
            back = tok.decode(ids[:-1])
            ok = ids == expect and back == text and tok.pad_token_id == tok.eos_token_id == expect[-1]
            failed += not ok
            print(f"AutoTokenizer {name}: {len(ids)} ids{'' if ids == expect else f' {ids} != skein {expect}'}"
                  f"{'' if back == text else f', decodes to {back!r}'}: {'ok' if ok else 'FAIL'}")
        # generate() (no cache: the prefix is re-read each step) continues greedily as forward() says.
        model = AutoModelForCausalLM.from_pretrained(FIXTURE, trust_remote_code=True).eval()
        ref = load_file(os.path.join(FIXTURE, "reference.safetensors"))
        prompt = ref["input_ids"][:1, :6]
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=6, do_sample=False)
            x = prompt
            for _ in range(6):
                x = torch.cat([x, model(x).logits[:, -1].argmax(-1, keepdim=True)], 1)
        ok = out.tolist() == x.tolist()
        failed += not ok
        print(f"generate() greedy on the fixture equals forward()'s argmax: {'ok' if ok else f'FAIL {out.tolist()} vs {x.tolist()}'}")
        # Without remote code transformers must refuse (never a Llama with layers at random).
        for what, load in (("AutoModelForCausalLM", AutoModelForCausalLM), ("AutoConfig", AutoConfig)):
            try:
                load.from_pretrained(folders[0][1], trust_remote_code=False)
                print(f"{what} without trust_remote_code loaded the hybrid: FAIL")
                failed += 1
            except (ValueError, OSError, KeyError) as e:
                print(f"{what} without trust_remote_code refuses: ok ({str(e).splitlines()[0][:100]})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
