#!/usr/bin/env python3
"""fla_peer.py — the peer of tests/bench/bench_gpu_mixers: the same mixers on the same shapes in
flash-linear-attention (fla, Triton kernels) and PyTorch SDPA, forward and forward + backward,
timed with CUDA events after a warm-up (median). Layout as fla wants it, [B, T, H, D]; inputs
random as skein's bench makes them (decay: log(1 - 2^-(5 + h % 8)); GLA / gated DeltaNet gates
log σ(N(3, 1)); β = σ(N(0, 1)); k L2-normalised for the delta rule).
Usage: fla_peer.py [--batch 2] [--seq 4096] [--heads 16] [--dim 128] [--steps 5] [--warmup 2]
                   [--dtype f32|bf16] [--json out.jsonl]
A peer that is not installed (fla) prints a line saying so and is skipped.
"""
import argparse
import json
import math
import sys

import torch


def median_ms(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("fla_peer: no CUDA device")
        return 1
    dt = torch.float32 if a.dtype == "f32" else torch.bfloat16
    B, T, H, D = a.batch, a.seq, a.heads, a.dim
    dev = "cuda"
    scale = 1.0 / math.sqrt(D)
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*shape, shift=0.0):
        return (torch.randn(*shape, generator=g, device=dev) + shift).to(dt).requires_grad_()

    q, k, v = rnd(B, T, H, D), rnd(B, T, H, D), rnd(B, T, H, D)
    peers = {}
    # PyTorch SDPA (flash backend on Hopper for bf16; f32 takes the efficient / math backend)
    qh, kh, vh = (x.detach().transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
    peers["softmax/sdpa"] = (lambda: torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=True,
                                                                                       scale=scale), [qh, kh, vh])
    try:
        from fla.ops.simple_gla import chunk_simple_gla
        from fla.ops.gla import chunk_gla
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        gamma = torch.tensor([math.log(1 - 2 ** (-5 - h % 8)) for h in range(H)], device=dev, dtype=torch.float32)
        gla_g = rnd(B, T, H, D, shift=3.0)
        beta_x, gd_g = rnd(B, T, H), rnd(B, T, H, shift=3.0)
        peers["decay/fla"] = (lambda: chunk_simple_gla(q, k, v, g_gamma=gamma, scale=scale)[0], [q, k, v])
        peers["gla/fla"] = (lambda: chunk_gla(q, k, v, torch.nn.functional.logsigmoid(gla_g), scale=scale)[0],
                            [q, k, v, gla_g])
        peers["gated_delta/fla"] = (lambda: chunk_gated_delta_rule(
            q, torch.nn.functional.normalize(k, dim=-1), v, torch.nn.functional.logsigmoid(gd_g),
            torch.sigmoid(beta_x), scale=scale)[0], [q, k, v, beta_x, gd_g])
    except Exception as e:  # fla (or its Triton) missing: say so, keep the SDPA row
        print(f"fla_peer: flash-linear-attention unavailable ({type(e).__name__}: {e})")
    out = open(a.json, "w") if a.json else None
    for name, (fn, leaves) in peers.items():
        mixer, impl = name.split("/")
        try:
            with torch.no_grad():
                fwd = median_ms(fn, a.warmup, a.steps)

            def fb():
                for x in leaves:
                    x.grad = None
                fn().float().sum().backward()
            both = median_ms(fb, a.warmup, a.steps)
        except Exception as e:
            print(f"{impl:<6} {mixer:<12} failed: {type(e).__name__}: {e}")
            continue
        flops = 2.0 * B * H * T * T * D if mixer == "softmax" else 0.0
        for p, ms, fl in (("fwd", fwd, flops), ("fwd+bwd", both, 3.5 * flops)):
            tf = fl / (ms / 1e3) / 1e12 if fl else 0.0
            print(f"{impl:<6} {mixer:<12} {p:<8} B {B} H {H} T {T} D {D} {a.dtype}: {ms:9.3f} ms  "
                  f"{B * T / ms:8.0f} ktok/s" + (f"  {tf:.2f} TFLOP/s" if tf else ""))
            if out:
                out.write(json.dumps({"impl": impl, "mixer": mixer, "pass": p, "B": B, "H": H, "T": T, "D": D,
                                      "dtype": a.dtype, "ms": ms, "tflops": tf}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
