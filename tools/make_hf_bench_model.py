#!/usr/bin/env python3
"""make_hf_bench_model.py — a random Llama-3-shaped checkpoint for tests/bench/bench_hf_load.cpp
(not committed: it is large). Llama 3.1 RoPE, GQA, untied, saved in bfloat16 by transformers.

  python3 tools/make_hf_bench_model.py --out /tmp/llama_bf16 [--hidden 1024 --layers 8 --vocab 32000]
"""
import argparse
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    a = ap.parse_args()
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=int(a.hidden * 3.5),
                      num_hidden_layers=a.layers, num_attention_heads=a.hidden // 64, num_key_value_heads=a.hidden // 256,
                      max_position_embeddings=131072, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(getattr(torch, a.dtype))
    model.save_pretrained(a.out, safe_serialization=True)
    print(f"wrote {a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, {a.dtype}")


if __name__ == "__main__":
    main()
