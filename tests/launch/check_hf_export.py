#!/usr/bin/env python3
"""check_hf_export.py — checks that transformers loads skein's HF exports and computes skein's
logits.

Runs the test binary's HfExport.WritesForTransformers (random skein Llamas: grouped-query
untied, and tied) and HfExport.FamiliesForTransformers (the tests/fixtures/hf_* models as skein
imported them: each rope_scaling type, Mistral's window, Qwen2's biases and windows, bf16),
which save with save_hf_llama and store skein's logits of fixed ids; then loads each folder with
transformers' AutoModelForCausalLM.from_pretrained (in f32) and checks that no weight is
missing or unexpected and that the logits agree within 1e-4 of their scale.
CTest runs it when transformers and torch are importable; otherwise it exits 77 (skipped).

  python3 tests/launch/check_hf_export.py --test-binary build/release/tests/test_launch
"""
import argparse
import os
import subprocess
import sys
import tempfile

SKIP = 77  # CTest's SKIP_RETURN_CODE


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-binary", required=True)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print(f"skipped: {e} (pip install transformers safetensors torch)")
        return SKIP

    failed = 0
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, SKEIN_HF_EXPORT_DIR=out)
        subprocess.run([args.test_binary, "--gtest_filter=HfExport.*ForTransformers"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for name in sorted(os.listdir(out)):
            folder = os.path.join(out, name)
            model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True, dtype=torch.float32)
            model = model.float().eval()
            ref = load_file(os.path.join(folder, "reference.safetensors"))
            with torch.no_grad():
                logits = model(ref["input_ids"]).logits.float()
            err = ((logits - ref["logits"]).abs().max() / ref["logits"].abs().max()).item()
            bad_keys = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
            ok = err <= args.tolerance and not bad_keys
            failed += not ok
            print(f"{name}: relative logit error {err:.2e}{'' if not bad_keys else f', {bad_keys}'}: {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
