#!/usr/bin/env python3
"""make_tiny_llama.py — writes the tiny random Hugging Face Llama fixture of the C++ tests.

Builds LlamaForCausalLM from a LlamaConfig with `transformers` (nothing is downloaded) and
saves, under tests/fixtures/tiny_llama/:

  config.json, model.safetensors          f32, untied, grouped-query (4 heads, 2 kv heads)
  reference.safetensors                   input_ids [2, 12] (I64), logits [2, 12, 96] (F32) of
                                          the f32 model, logits_bf16 of the same model with
                                          its weights rounded to bf16
  bf16/                                   the same weights saved as BF16
  sharded/                                the same weights in 2 shards + model.safetensors.index.json
  tied/                                   a second model: tied embeddings, 4 kv heads (no grouping),
                                          one layer, with its own reference.safetensors

Weights are drawn with std 0.1 and the RMSNorm gains around 1, so that a swapped tensor,
a wrong RoPE pairing or a dropped norm changes the logits well beyond the test tolerance.
The C++ tests read only the committed files; this script is needed only to remake them:

  pip install --break-system-packages transformers safetensors   (torch CPU: tests/bench/install_torch.sh)
  python3 tools/make_tiny_llama.py [--out tests/fixtures/tiny_llama]
"""
import argparse
import copy
import os
import shutil

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402


def make_model(seed, **overrides):
    torch.manual_seed(seed)
    kw = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              rms_norm_eps=1e-5, rope_theta=1000.0, tie_word_embeddings=False, initializer_range=0.1)
    kw.update(overrides)
    model = LlamaForCausalLM(LlamaConfig(**kw)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits.float().contiguous()


def bf16_rounded(model):
    """A copy of the model whose weights are rounded to bf16 and computed in f32."""
    rounded = LlamaForCausalLM(model.config).eval()
    rounded.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()})
    return rounded


def save(model, out, ids, with_bf16_reference=False, **save_kw):
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True, **save_kw)
    ref = {"input_ids": ids.contiguous(), "logits": logits_of(model, ids)}
    if with_bf16_reference:
        ref["logits_bf16"] = logits_of(bf16_rounded(model), ids)
    save_file(ref, os.path.join(out, "reference.safetensors"), metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny_llama"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 96, (2, 12), generator=gen, dtype=torch.int64)

    model = make_model(0)
    save(model, out, ids, with_bf16_reference=True)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(os.path.join(out, "bf16"), safe_serialization=True)
    model.save_pretrained(os.path.join(out, "sharded"), safe_serialization=True, max_shard_size="60KB")
    shards = [f for f in os.listdir(os.path.join(out, "sharded")) if f.endswith(".safetensors")]
    assert len(shards) == 2, f"expected 2 shards, got {shards}"

    tied = make_model(1, num_hidden_layers=1, num_key_value_heads=4, tie_word_embeddings=True)
    save(tied, os.path.join(out, "tied"), ids)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
