#!/usr/bin/env python3
"""cost_model.py — predicts the training step time of sequence parallelism: LASP-2 (linear
layers) against Ring Attention, per rank, from measured compute rates and link bandwidths.
docs/COST_MODEL.md states every formula and discusses the result; this script computes its tables.

Clusters:
  measured  ranks like one thread of this machine: the rates tests/bench/bench_rates.cpp
            measured (MEASURED below, recorded in docs/COST_MODEL.md; --rates FILE reads
            bench_rates --json output instead), links = the measured MPI link, f32
  a100      A100 80GB SXM datasheet peaks (named in DATASHEET_A100) times assumed achieved
            fractions, links = DGX A100 fabric (NVLink inside a node, one HDR InfiniBand NIC
            per GPU between nodes), bf16 activations and f32 states, as in the LASP-2 paper
  h200      the same for H200 SXM / HGX H200 datasheet peaks (DATASHEET_H200: NVLink 4, one
            NDR 400 Gb/s InfiniBand NIC per GPU) with the A100's assumed fractions. The GPU
            kernel rates are NOT measured (no GPU was available): assumed fractions of peaks.
--overlap: LASP-2's forward state all-gather runs under the intra-chunk forward (parallel.overlap)
and the gradient all-reduce under backward (DDP-style buckets); only what exceeds them counts.

Models (--model): paper = the LASP-2 paper's Linear-Llama3 1B-like setting (16 layers, d 2048,
16 heads of 128, SwiGLU 8192, vocab 128256, B 1); bench = skein's benchmark model
(configs/bench.yaml, LLLS). Methods per step: lasp2 (every layer linear, LASP-2), ring_linear
(every layer linear, Ring's K/V ring instead of LASP-2), ring_softmax (every layer softmax,
zigzag Ring), hybrid (the pattern's L layers by LASP-2, S layers by Ring) and single (one rank).

Usage: python3 tools/cost_model.py [--rates rates.json] [--model paper|bench] [--world 64]
                                   [--tokens 2097152] [--cluster measured|a100|h200|both|all]
                                   [--pattern LLLS] [--overlap]
"""
import argparse
import json
import math

# mpirun -np 2 bench_rates --json FILE on this machine, 2026-11-22 10:43, load average 3.3
# (docs/COST_MODEL.md, "Measured inputs").
MEASURED = {"sgemm_gflops": 204.18, "linear_attention_gflops": 113.277, "attention_block_gflops": 109.586,
            "p2p_latency_s": 1.94906e-07, "p2p_bytes_per_s": 3021880000.0, "all_gather_latency_s": 2.73368e-07, "all_gather_bytes_per_s": 1498700000.0}

# A100 80GB SXM (NVIDIA A100 datasheet) and DGX A100 (its datasheet): peaks.
DATASHEET_A100 = {
    "bf16_tensor_flops": 312e12,  # dense BF16 tensor-core FLOP/s
    "nvlink_bytes_per_s": 300e9,  # NVLink 3: 600 GB/s total, 300 GB/s each direction
    "ib_bytes_per_s": 25e9,       # one ConnectX-6 HDR 200 Gb/s NIC per GPU (8 per DGX node)
    "gpus_per_node": 8,
}
# H200 SXM (NVIDIA H200 datasheet) and HGX / DGX H200: peaks.
DATASHEET_H200 = {
    "bf16_tensor_flops": 989e12,  # dense BF16 tensor-core FLOP/s (1979 with 2:4 sparsity)
    "nvlink_bytes_per_s": 450e9,  # NVLink 4: 900 GB/s total, 450 GB/s each direction
    "ib_bytes_per_s": 50e9,       # one ConnectX-7 NDR 400 Gb/s NIC per GPU (8 per node)
    "gpus_per_node": 8,
}
# Assumed fractions of the peaks that the kernels reach (assumptions, not datasheet values).
A100_ACHIEVED = {"gemm": 0.6, "attention": 0.5, "linear_attention": 0.3, "link": 0.8}
A100_LATENCY_S = 10e-6  # per message / per collective step between nodes (assumption)

MODELS = {
    "paper": dict(layers=16, d=2048, heads=16, kv_heads=16, head_dim=128, mlp=8192, vocab=128256, chunk=64, pattern="L"),
    "bench": dict(layers=4, d=512, heads=8, kv_heads=8, head_dim=64, mlp=1408, vocab=8192, chunk=64, pattern="LLLS"),
}


def measured_cluster(path):
    r = json.load(open(path)) if path else MEASURED
    return dict(name=f"measured (1 thread per rank, {path or 'MEASURED'})", gemm=r["sgemm_gflops"] * 1e9,
                linear_attention=r["linear_attention_gflops"] * 1e9, attention=r["attention_block_gflops"] * 1e9,
                p2p_latency=r["p2p_latency_s"], p2p_bw=r["p2p_bytes_per_s"],
                coll_latency=r["all_gather_latency_s"], coll_bw=r["all_gather_bytes_per_s"], act_bytes=4, state_bytes=4)


def a100_cluster():
    peak, a = DATASHEET_A100["bf16_tensor_flops"], A100_ACHIEVED
    ib = DATASHEET_A100["ib_bytes_per_s"] * a["link"]  # a 64-rank ring crosses nodes: its slowest hop is InfiniBand
    return dict(name="A100 cluster (datasheet peaks x assumed fractions)", gemm=peak * a["gemm"],
                linear_attention=peak * a["linear_attention"], attention=peak * a["attention"],
                p2p_latency=A100_LATENCY_S, p2p_bw=ib, coll_latency=A100_LATENCY_S, coll_bw=ib, act_bytes=2, state_bytes=4)


def h200_cluster():
    peak, a = DATASHEET_H200["bf16_tensor_flops"], A100_ACHIEVED  # the same assumed fractions
    ib = DATASHEET_H200["ib_bytes_per_s"] * a["link"]  # 64 GPUs = 8 nodes: the ring's slowest hop is InfiniBand
    return dict(name="H200 cluster (datasheet peaks x assumed fractions; GPU kernel rates not measured)",
                gemm=peak * a["gemm"], linear_attention=peak * a["linear_attention"], attention=peak * a["attention"],
                p2p_latency=A100_LATENCY_S, p2p_bw=ib, coll_latency=A100_LATENCY_S, coll_bw=ib, act_bytes=2, state_bytes=4)


def dense_time(m, C, cl):
    """Projections, MLP and LM head, forward + backward (3x the forward), C tokens."""
    d, hd = m["d"], m["head_dim"]
    attn_proj = 2 * d * hd * (2 * m["heads"] + 2 * m["kv_heads"])  # q, o: H heads; k, v: Hkv heads
    per_token = m["layers"] * (attn_proj + 6 * d * m["mlp"]) + 2 * d * m["vocab"]
    return 3 * C * per_token / cl["gemm"]


def grad_allreduce_time(m, W, cl):
    """The f32 gradient all-reduce over the W ranks that hold the same parameters (ring:
    2 (W - 1) steps, 2 (W - 1) / W of the gradient sent per rank), not overlapped."""
    if W == 1:
        return 0.0
    d, hd = m["d"], m["head_dim"]
    params = m["layers"] * (d * hd * (2 * m["heads"] + 2 * m["kv_heads"]) + 3 * d * m["mlp"]) + 2 * d * m["vocab"]
    return 2 * (W - 1) * cl["coll_latency"] + 2 * (W - 1) / W * params * 4 / cl["coll_bw"]


def linear_mixer_time(m, C, cl):
    """One linear-attention layer, chunkwise, forward + backward, C tokens."""
    hd, c = m["head_dim"], m["chunk"]
    return 3 * C * m["heads"] * (2 * c * 2 * hd + 4 * hd * hd) / cl["linear_attention"]


def lasp2_layer(m, W, C, cl):
    """LASP-2: the mixer from the incoming state, plus the slice's state contribution in closed
    form ((k * w)^T v: one GEMM forward, two backward, 2 C D^2 flops each per head, at the GEMM
    rate), one all-gather of the [H, Dk, Dv + 1] states forward and one reduce-scatter backward,
    ring algorithm: W - 1 steps of alpha + m / beta each, not overlapped (skein's are blocking)."""
    t_mix = linear_mixer_time(m, C, cl)
    t_state = 6 * C * m["heads"] * m["head_dim"] ** 2 / cl["gemm"]
    state = m["heads"] * m["head_dim"] * (m["head_dim"] + 1) * cl["state_bytes"]
    t_coll = (W - 1) * (cl["coll_latency"] + state / cl["coll_bw"])
    # --overlap: the forward all-gather runs under the intra-chunk forward (a third of t_mix);
    # the backward reduce-scatter stays exposed (skein does not overlap it).
    fwd_coll = max(0.0, t_coll - t_mix / 3) if cl.get("overlap") else t_coll
    return dict(compute=t_mix + t_state, comm=fwd_coll + t_coll, step=t_mix + t_state + fwd_coll + t_coll)


def hop_time(m, C, cl):
    kv = C * m["kv_heads"] * 2 * m["head_dim"] * cl["act_bytes"]  # one [K | V] block
    return cl["p2p_latency"] + kv / cl["p2p_bw"]


def ring_softmax_layer(m, W, C, cl):
    """Zigzag Ring: W steps forward, each rank C^2 / 2 query-key pairs per step (balanced; the
    first step is its own block), W - 1 hops overlapped: per step max(block compute, hop);
    backward the same with 10/4 of the compute and two messages per hop (K/V, dK/dV); plus the
    zigzag re-layout (q, k, v in and out back, one slice each way in forward and in backward)."""
    pairs = C * C / 2
    unit = pairs * m["heads"] * m["head_dim"] / cl["attention"]  # seconds per FLOP-per-pair unit
    t_f, t_b, t_hop = 4 * unit, 10 * unit, hop_time(m, C, cl)
    fwd = t_f + (W - 1) * max(t_f, t_hop)
    bwd = t_b + (W - 1) * max(t_b, 2 * t_hop)
    relayout = 0.0
    if W > 1:
        width = 2 * m["heads"] + 2 * m["kv_heads"]  # q, out (H heads) and k, v (Hkv heads)
        relayout = 2 * (cl["p2p_latency"] + C * width * m["head_dim"] * cl["act_bytes"] / cl["p2p_bw"])
    compute = W * (t_f + t_b)
    return dict(compute=compute, comm=fwd + bwd + relayout - compute, step=fwd + bwd + relayout)


def ring_linear_layer(m, W, C, cl):
    """Ring's K/V ring on a linear layer: the local mixer, then per arriving block its state
    K^T V (2 C Dk Dv per head, x3 with backward) folded in, W - 1 hops forward and 2 (W - 1)
    messages backward, each step max(block state, hop)."""
    t_mix = linear_mixer_time(m, C, cl)
    hd = m["head_dim"]
    t_state = 2 * C * m["heads"] * hd * hd / cl["linear_attention"]
    t_hop = hop_time(m, C, cl)
    comm_steps = (W - 1) * (max(t_state, t_hop) + max(2 * t_state, 2 * t_hop))
    return dict(compute=t_mix + 3 * (W - 1) * t_state, comm=comm_steps - 3 * (W - 1) * t_state, step=t_mix + comm_steps)


def single_layer(m, kind, C, cl):
    if kind == "L":
        t = linear_mixer_time(m, C, cl)
    else:
        t = 14 * (C * C / 2) * m["heads"] * m["head_dim"] / cl["attention"]
    return dict(compute=t, comm=0.0, step=t)


def step(m, method, W, C, cl):
    """Seconds per training step on one rank: the dense part plus every layer's mixer."""
    layers = []
    for i in range(m["layers"]):
        kind = m["pattern"][i % len(m["pattern"])]
        if method == "single":
            layers.append(single_layer(m, kind, C, cl))
        elif method == "lasp2" or (method == "hybrid" and kind == "L"):
            layers.append(lasp2_layer(m, W, C, cl))
        elif method == "ring_linear":
            layers.append(ring_linear_layer(m, W, C, cl))
        else:  # ring_softmax, or the S layers of hybrid
            layers.append(ring_softmax_layer(m, W, C, cl))
    dense = dense_time(m, C, cl)
    grads = grad_allreduce_time(m, W, cl)
    mixer = sum(x["compute"] for x in layers)
    comm = sum(x["comm"] for x in layers)
    if cl.get("overlap"):  # buckets reduced under backward (2/3 of the compute); the excess shows
        grads = max(0.0, grads - 2 / 3 * (dense + mixer))
    return dict(dense=dense, mixer=mixer, comm=comm, grads=grads, total=dense + grads + sum(x["step"] for x in layers))


def breakeven_bandwidth(m, W, C, cl, target):
    """The link bandwidth at which ring_linear's step is `target` times LASP-2's (bisection)."""
    lo, hi = 1e6, 1e15
    lasp2 = step(m, "lasp2", W, C, cl)["total"]
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        t = step(m, "ring_linear", W, C, dict(cl, p2p_bw=mid))["total"]
        lo, hi = (mid, hi) if t > target * lasp2 else (lo, mid)
    return hi


def report(m, W, N, cl, methods):
    C = N // W
    print(f"\n### {cl['name']}: W = {W}, N = {N} tokens, C = {C} per rank\n")
    print("| method | dense s | mixers s | exposed mixer comm s | grad all-reduce s | step s | tokens/s per rank | vs lasp2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = step(m, "lasp2", W, C, cl)["total"] if "lasp2" in methods else None
    for meth in methods:
        s = step(m, meth, W, C, cl)
        rel = f"{s['total'] / base:.3f}" if base else "-"
        print(f"| {meth} | {s['dense']:.4g} | {s['mixer']:.4g} | {s['comm']:.4g} | {s['grads']:.4g} | {s['total']:.4g} | "
              f"{C / s['total']:.4g} | {rel} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="", help="bench_rates --json output (default: MEASURED)")
    ap.add_argument("--model", default="paper", choices=sorted(MODELS))
    ap.add_argument("--world", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=2048 * 1024)
    ap.add_argument("--cluster", default="both", choices=["measured", "a100", "h200", "both", "all"])
    ap.add_argument("--overlap", action="store_true", help="LASP-2 forward all-gather and gradient all-reduce overlapped")
    ap.add_argument("--pattern", default="", help="override the model's layer pattern (e.g. LLLL)")
    a = ap.parse_args()
    m = dict(MODELS[a.model], pattern=a.pattern or MODELS[a.model]["pattern"])
    clusters = []
    if a.cluster in ("measured", "both", "all"):
        clusters.append(measured_cluster(a.rates))
    if a.cluster in ("a100", "both", "all"):
        clusters.append(a100_cluster())
    if a.cluster in ("h200", "all"):
        clusters.append(h200_cluster())
    clusters = [dict(cl, overlap=a.overlap) for cl in clusters]
    for cl in clusters:
        if a.model == "bench":  # weak scaling: W ranks at C tokens each against one rank at C
            C = a.tokens // a.world
            one, many = step(m, "single", 1, C, cl), step(m, "hybrid", a.world, C, cl)
            print(f"\n### {cl['name']}: {a.model}, weak scaling at C = {C} tokens per rank\n")
            print("| ranks | dense s | mixers s | exposed mixer comm s | grad all-reduce s | step s | efficiency |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for W, s in ((1, one), (a.world, many)):
                print(f"| {W} | {s['dense']:.4g} | {s['mixer']:.4g} | {s['comm']:.4g} | {s['grads']:.4g} | {s['total']:.4g} | "
                      f"{one['total'] / s['total']:.3f} |")
            continue
        report(m, a.world, a.tokens, cl, ["lasp2", "ring_linear", "ring_softmax"])
        C = a.tokens // a.world
        bw = breakeven_bandwidth(m, a.world, C, cl, 1.366)
        print(f"\nring_linear is 1.366x LASP-2's step (the paper's 36.6%) at a hop bandwidth of {bw / 1e9:.3g} GB/s "
              f"(this cluster: {cl['p2p_bw'] / 1e9:.3g} GB/s)")


if __name__ == "__main__":
    main()
