#!/usr/bin/env python3
"""make_hf_fixtures.py — writes the tiny random Hugging Face models of tests/launch/test_hf_families.cpp.

Each model is built with `transformers` from its config class (nothing is downloaded), its
weights drawn with std 0.1 (norm gains around 1) so that a wrong RoPE frequency, a dropped bias
or a window not applied changes the logits well beyond the tolerance, and saved with
save_pretrained under tests/fixtures/hf_<name>/ with reference.safetensors: input_ids [2, 24]
(I64) and transformers' logits [2, 24, 96] (F32).

  hf_llama_linear    Llama, rope_scaling linear (factor 2)
  hf_llama_dynamic   Llama, dynamic NTK (factor 2, max_position_embeddings 16 < 24 tokens: it scales)
  hf_llama_llama3    Llama 3.1 rope (factor 8, original context 64: all three frequency bands)
  hf_llama_yarn      Llama, yarn (factor 4, original context 64: interpolated, ramped and kept dims)
  hf_mistral         Mistral, sliding_window 5 (< 24 tokens), GQA
  hf_qwen2           Qwen2: q/k/v biases, tied embeddings, GQA
  hf_qwen2_window    Qwen2 with use_sliding_window, max_window_layers 0 (every layer slides, window 6)
  hf_bf16            Llama 3.1 rope saved in bfloat16; logits = transformers' bf16 computation,
                     logits_f32 = the same bf16 weights computed in f32

The C++ tests read only the committed files (each folder < 1 MB); this script is needed only to
remake them (transformers 5.x, torch CPU):

  python3 tools/make_hf_fixtures.py [--out tests/fixtures]
"""
import argparse
import copy
import os
import shutil

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,  # noqa: E402
                          Qwen2Config, Qwen2ForCausalLM)

BASE = dict(vocab_size=96, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            initializer_range=0.1)


def make(cls, config_cls, seed, rope=None, **overrides):
    torch.manual_seed(seed)
    kw = dict(BASE)
    kw.update(overrides)
    kw["rope_parameters"] = dict({"rope_type": "default", "rope_theta": 10000.0}, **(rope or {}))
    model = cls(config_cls(**kw)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if name.endswith("norm.weight") else 0.1 * torch.randn_like(p))
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits.float().contiguous()


def differs_without(model, ids, **edits):
    """Asserts that the feature under test matters: the same weights with `edits` to the config
    (default RoPE, no window) give logits that differ by more than 1e-2 of their scale."""
    cfg = copy.deepcopy(model.config)
    for k, v in edits.items():
        setattr(cfg, k, v)
    plain = type(model)(cfg).eval().to(model.dtype)
    plain.load_state_dict(model.state_dict())
    a, b = logits_of(model, ids), logits_of(plain, ids)
    rel = ((a - b).abs().max() / b.abs().max()).item()
    assert rel > 1e-2, f"{type(model).__name__} {edits}: logits change by only {rel:.1e}"
    return model


def save(model, out, ids, extra=None):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    model.save_pretrained(out, safe_serialization=True)
    ref = {"input_ids": ids.contiguous(), "logits": logits_of(model, ids)}
    ref.update(extra or {})
    save_file(ref, os.path.join(out, "reference.safetensors"), metadata={"format": "pt"})
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    assert size < 1 << 20, f"{out}: {size} bytes"
    print(f"wrote {out} ({size / 1024:.0f} KiB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    ids = torch.randint(0, 96, (2, 24), generator=torch.Generator().manual_seed(11), dtype=torch.int64)
    llama = (LlamaForCausalLM, LlamaConfig)
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 64}
    plain_rope = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    no_window = {"sliding_window": None, "layer_types": ["full_attention"] * 2}

    def saved(name, model, **edits):
        save(differs_without(model, ids, **edits), os.path.join(out, name), ids)

    saved("hf_llama_linear", make(*llama, 1, {"rope_type": "linear", "factor": 2.0}), **plain_rope)
    saved("hf_llama_dynamic", make(*llama, 2, {"rope_type": "dynamic", "factor": 2.0}, max_position_embeddings=16),
          **plain_rope)
    saved("hf_llama_llama3", make(*llama, 3, llama3, max_position_embeddings=256), **plain_rope)
    saved("hf_llama_yarn", make(*llama, 4, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
                                max_position_embeddings=256), **plain_rope)
    saved("hf_mistral", make(MistralForCausalLM, MistralConfig, 5, sliding_window=5), sliding_window=None)
    save(make(Qwen2ForCausalLM, Qwen2Config, 6, tie_word_embeddings=True), os.path.join(out, "hf_qwen2"), ids)
    saved("hf_qwen2_window", make(Qwen2ForCausalLM, Qwen2Config, 7, use_sliding_window=True, sliding_window=6,
                                  max_window_layers=0), **no_window)
    # The references come from the saved folder as users load it: from_pretrained in bf16 (the
    # rotary frequencies stay f32 there) and the same bf16 weights loaded as f32.
    folder = os.path.join(out, "hf_bf16")
    save(make(*llama, 8, llama3, max_position_embeddings=256).to(torch.bfloat16), folder, ids)
    ref = {"input_ids": ids.contiguous()}
    for key, dt in (("logits", torch.bfloat16), ("logits_f32", torch.float32)):
        ref[key] = logits_of(LlamaForCausalLM.from_pretrained(folder, dtype=dt).eval(), ids)
    save_file(ref, os.path.join(folder, "reference.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
