#!/usr/bin/env python3
"""PyTorch peer for skein's benchmark model (shared/BENCHMARK.md).

Defines the benchmark model in plain PyTorch (fp32, no biases):

    tokens -> Embedding(V, d) -> for each letter of the pattern ("LLLS"):
        x = x + Mixer(RMSNorm(x));  x = x + SwiGLU(RMSNorm(x))
    -> RMSNorm -> LM head Linear(d, V) (untied) -> mean cross-entropy

and times full training steps (forward, backward, AdamW step) on random
tokens, reporting the median step time, tokens/s, GFLOP/s (FLOPs counted as
BENCHMARK.md prescribes) and peak RSS.

  S layer: causal softmax attention (F.scaled_dot_product_attention), RoPE
           theta 10000 with half-split pairing (dims i and i+32).
  L layer: decayed linear attention, lambda_h = 1 - 2^-(5+h),
           o_t = sum_{s<=t} lambda_h^(t-s) (q_t . k_s) v_s, computed chunkwise
           (chunk 64) the way fla / Lightning Attention write it in torch,
           then per-head RMSNorm (no per-head gain) * gain[d], then W_o.
  reference: Qin et al. 2024, "Lightning Attention-2" (intra/inter-chunk split);
             Yang et al. 2023, "Gated Linear Attention" (chunkwise form).

q/k/v are one fused Linear(d, 3d) and SwiGLU's W1/W3 one Linear(d, 2h): the
same parameters, element for element, as separate projections (same init,
same AdamW update), only fewer, larger GEMMs -- the efficient torch idiom.

Usage:
  python3 tests/bench/torch_peer.py --seq 2048 --batch 2 --threads 2 \
      --steps 7 --warmup 2 [--autocast bf16] [--json out.json]
  python3 tests/bench/torch_peer.py --check     # proves the peer correct

--autocast bf16 runs the forward under torch.autocast(bfloat16) (backward follows it): the
matmuls on oneDNN's bf16 kernels, f32 master weights and AdamW -- the peer of skein's
train.precision bf16-mixed (tests/bench/bf16_runs.sh runs both).

Install torch with tests/bench/install_torch.sh; CI never runs this file.
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time


# ---- model constants (BENCHMARK.md) ---------------------------------------
# --size gpu: the GPU benchmark model (BENCHMARK.md), read before the classes bind their defaults.
_GPU_SIZE = any(a == "--size=gpu" for a in sys.argv) or any(
    a == "--size" and i + 1 < len(sys.argv) and sys.argv[i + 1] == "gpu" for i, a in enumerate(sys.argv))
VOCAB = 32000 if _GPU_SIZE else 8192
D_MODEL = 1024 if _GPU_SIZE else 512
N_HEADS = 16 if _GPU_SIZE else 8
HEAD_DIM = 64
PATTERN = "LLLS" * 3 if _GPU_SIZE else "LLLS"
HIDDEN = 2816 if _GPU_SIZE else 1408
CHUNK = 64
EPS = 1e-6
ROPE_THETA = 10000.0
INIT_STD = 0.02


def flops_per_step(seq, batch, d=D_MODEL, h=HIDDEN, vocab=VOCAB,
                   pattern=PATTERN, chunk=CHUNK, head_dim=HEAD_DIM):
    """Training FLOPs per step, counted exactly as BENCHMARK.md says:
    matmul FLOPs only, forward per token, training step = 3 x forward."""
    per_tok = 0.0
    for letter in pattern:
        per_tok += 2 * (4 * d * d + 3 * d * h)              # projections
        if letter == "S":
            per_tok += 4 * d * (seq + 1) / 2                # causal scores + AV
        else:
            per_tok += 4 * d * (chunk + 1) / 2 + 4 * d * head_dim  # intra + state
    per_tok += 2 * d * vocab                                # LM head
    return 3.0 * per_tok * seq * batch


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=7, help="measured steps")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured steps")
    p.add_argument("--json", default=None, help="write results as JSON here")
    p.add_argument("--optim", choices=["auto", "fused", "foreach", "loop"],
                   default="auto", help="AdamW implementation (auto: fused "
                   "if this torch has it on CPU, else foreach)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: the model and data on the GPU, steps timed with CUDA events")
    p.add_argument("--size", choices=["bench", "gpu"], default="bench",
                   help="gpu: V 32000, d 1024, 16 heads, 12 layers LLLS, hidden 2816")
    p.add_argument("--tf32", action="store_true", help="cuda: allow TF32 matmuls")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: forward (and so backward) under torch.autocast(dtype=bfloat16); "
                        "f32 master weights and AdamW, as skein's train.precision bf16-mixed")
    p.add_argument("--check", action="store_true",
                   help="verify the chunkwise L layer (and S layer) against "
                   "naive quadratic forms, then exit")
    return p.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
# Thread counts must be in the environment before torch (OpenMP/MKL) loads.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---- building blocks -------------------------------------------------------
def rms_norm(x, weight, eps=EPS):
    # x: [..., n]; weight: [n] or None
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight


class RMSNorm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):  # x: [B, T, n]
        return rms_norm(x, self.weight)


class SwiGLU(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.w13 = nn.Linear(d, 2 * h, bias=False)  # W1 and W3 stacked
        self.w2 = nn.Linear(h, d, bias=False)

    def forward(self, x):  # x: [B, T, d]
        a, b = self.w13(x).split(self.h, dim=-1)
        return self.w2(F.silu(a) * b)


def decays(n_heads, dtype=torch.float32):
    """lambda_h = 1 - 2^-(5+h): [H]"""
    h = torch.arange(n_heads, dtype=torch.float64)
    return (1.0 - torch.pow(2.0, -(5.0 + h))).to(dtype)


class ChunkDecay:
    """Precomputed decay factors for the chunkwise form (one chunk size C)."""

    def __init__(self, lam, chunk, dtype):
        # lam: [H]
        ll = torch.log(lam.to(torch.float64))[:, None]            # [H, 1]
        i = torch.arange(chunk, dtype=torch.float64)
        diff = i[:, None] - i[None, :]                            # [C, C]
        mask = torch.exp(ll[:, :, None] * diff.clamp(min=0))      # [H, C, C]
        mask = mask * (diff >= 0)
        self.intra = mask.to(dtype)                               # lam^(i-j), i>=j
        self.q_in = torch.exp(ll * (i + 1)).to(dtype)[:, :, None]  # [H, C, 1] lam^(i+1)
        self.k_out = torch.exp(ll * (chunk - 1 - i)).to(dtype)[:, :, None]  # lam^(C-1-j)
        self.chunk_decay = torch.exp(ll * chunk).to(dtype)[:, :, None]     # [H, 1, 1] lam^C

    def to(self, device):
        for name in ("intra", "q_in", "k_out", "chunk_decay"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def linear_attn_chunkwise(q, k, v, cd, chunk=CHUNK):
    """Decayed causal linear attention, chunkwise.
    q, k, v: [B, H, T, D]; cd: ChunkDecay for `chunk`. Returns [B, H, T, D]."""
    B, H, T, D = q.shape
    pad = (-T) % chunk
    if pad:  # zero keys/values at the end change no earlier output
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    N = (T + pad) // chunk
    qc = q.reshape(B, H, N, chunk, D)
    kc = k.reshape(B, H, N, chunk, D)
    vc = v.reshape(B, H, N, chunk, D)
    # intra-chunk: (q k^T * decay mask) v, all chunks and heads in one bmm
    scores = torch.matmul(qc, kc.transpose(-1, -2)) * cd.intra[:, None]   # [B,H,N,C,C]
    out = torch.matmul(scores, vc)                                        # [B,H,N,C,D]
    if N > 1:
        # each chunk's contribution to the state at its end: [B,H,N,D,D]
        kv = torch.matmul((kc * cd.k_out[:, None]).transpose(-1, -2), vc)
        # state entering chunk n: S_n = lam^C S_{n-1} + kv_{n-1}, S_0 = 0
        # (unbind once: indexing kv[:, :, n] per step would make backward
        # zero-fill a full-size gradient for every chunk, O(N^2) traffic)
        g = cd.chunk_decay                                                # [H,1,1]
        kvs = kv.unbind(2)
        states = [torch.zeros_like(kvs[0])]
        for n in range(1, N):
            states.append(states[-1] * g + kvs[n - 1])
        S = torch.stack(states, dim=2)                                    # [B,H,N,D,D]
        out = out + torch.matmul(qc * cd.q_in[:, None], S)                # inter-chunk
    out = out.reshape(B, H, N * chunk, D)
    return out[:, :, :T] if pad else out


def linear_attn_naive(q, k, v, lam):
    """Quadratic oracle. q, k, v: [B, H, T, D]; lam: [H]."""
    T = q.shape[2]
    t = torch.arange(T, dtype=q.dtype)
    diff = t[:, None] - t[None, :]                                        # [T, T]
    dec = lam.to(q.dtype)[:, None, None] ** diff.clamp(min=0) * (diff >= 0)
    return torch.matmul(torch.matmul(q, k.transpose(-1, -2)) * dec, v)


def rope_tables(T, dim, dtype):
    """cos, sin: [T, dim/2], frequency theta^(-2i/dim)."""
    inv = ROPE_THETA ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin):
    # x: [B, H, T, D]; cos, sin: [T, D/2]; half-split pairs (i, i + D/2)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    """S (softmax + RoPE) or L (chunkwise decayed linear) token mixer."""

    def __init__(self, kind, d=D_MODEL, n_heads=N_HEADS):
        super().__init__()
        self.kind, self.h, self.dh = kind, n_heads, d // n_heads
        self.wqkv = nn.Linear(d, 3 * d, bias=False)  # W_q, W_k, W_v stacked
        self.wo = nn.Linear(d, d, bias=False)
        if kind == "L":
            self.gain = nn.Parameter(torch.ones(d))
        self._cache = {}

    def _tables(self, T, dtype, device):
        key = (T, dtype, str(device))
        if key not in self._cache:
            if self.kind == "S":
                self._cache[key] = tuple(t.to(device) for t in rope_tables(T, self.dh, dtype))
            else:
                self._cache[key] = ChunkDecay(decays(self.h), CHUNK, dtype).to(device)
        return self._cache[key]

    def forward(self, x):  # x: [B, T, d]
        B, T, d = x.shape
        qkv = self.wqkv(x).view(B, T, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                          # [B, H, T, Dh]
        if self.kind == "S":
            cos, sin = self._tables(T, x.dtype, x.device)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               scale=1.0 / math.sqrt(self.dh))
            o = o.transpose(1, 2).reshape(B, T, d)
        else:
            o = linear_attn_chunkwise(q, k, v, self._tables(T, x.dtype, x.device))
            o = rms_norm(o, None)                                 # per head, no gain
            o = o.transpose(1, 2).reshape(B, T, d) * self.gain
        return self.wo(o)


class Block(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.norm1, self.mixer = RMSNorm(D_MODEL), Attention(kind)
        self.norm2, self.mlp = RMSNorm(D_MODEL), SwiGLU(D_MODEL, HIDDEN)

    def forward(self, x):  # x: [B, T, d]
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BenchModel(nn.Module):
    def __init__(self, pattern=PATTERN):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D_MODEL)
        self.blocks = nn.ModuleList(Block(c) for c in pattern)
        self.norm = RMSNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, VOCAB, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=INIT_STD)

    def forward(self, tokens, targets):  # tokens, targets: [B, T] int64
        x = self.embed(tokens)
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.norm(x))                          # [B, T, V]
        return F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def make_optimizer(model, kind):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1},
              {"params": no_decay, "weight_decay": 0.0}]
    common = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    order = {"auto": ["fused", "foreach"], "fused": ["fused"],
             "foreach": ["foreach"], "loop": ["loop"]}[kind]
    for impl in order:
        try:
            if impl == "loop":
                return torch.optim.AdamW(groups, foreach=False, **common), impl
            return torch.optim.AdamW(groups, **{impl: True}, **common), impl
        except (RuntimeError, TypeError, ValueError) as e:
            last = e
    raise RuntimeError(f"AdamW implementation {kind!r} unavailable: {last}")


# ---- --check ---------------------------------------------------------------
def check():
    torch.manual_seed(0)
    worst = 0.0
    lam = decays(N_HEADS)
    for T in (1, 64, 150, 200):  # one chunk, exact chunk, padded, several chunks
        q, k, v = (0.5 * torch.randn(2, N_HEADS, T, HEAD_DIM) for _ in range(3))
        for t in (q, k, v):
            t.requires_grad_(True)
        got = linear_attn_chunkwise(q, k, v, ChunkDecay(lam, CHUNK, torch.float32))
        ref = linear_attn_naive(q, k, v, lam)
        fwd = (got - ref).abs().max().item()
        w = torch.randn_like(ref)
        g_got = torch.autograd.grad((got * w).sum(), (q, k, v))
        g_ref = torch.autograd.grad((ref * w).sum(), (q, k, v))
        bwd = max((a - b).abs().max().item() for a, b in zip(g_got, g_ref))
        scale = ref.abs().max().item()
        print(f"L layer chunkwise vs naive, T={T:4d}: max|fwd diff| {fwd:.3e} "
              f"max|grad diff| {bwd:.3e} (max|o| {scale:.2f})")
        assert fwd < 1e-4 and bwd < 1e-4, (T, fwd, bwd)
        worst = max(worst, fwd, bwd)
    # f64: the chunk algebra is exact, not merely close.
    q, k, v = (torch.randn(1, N_HEADS, 300, HEAD_DIM, dtype=torch.float64)
               for _ in range(3))
    d64 = (linear_attn_chunkwise(q, k, v, ChunkDecay(lam, CHUNK, torch.float64))
           - linear_attn_naive(q, k, v, lam)).abs().max().item()
    print(f"L layer chunkwise vs naive, f64 T=300: max|diff| {d64:.3e}")
    assert d64 < 1e-9, d64
    # S layer: RoPE pairing + SDPA against an explicit masked softmax.
    T = 100
    q, k, v = (torch.randn(2, N_HEADS, T, HEAD_DIM) for _ in range(3))
    cos, sin = rope_tables(T, HEAD_DIM, torch.float32)
    qr, kr = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    # RoPE check on pair (i, i+32) of position t: a rotation by t * theta^(-2i/64)
    t_, i_ = 37, 5
    ang = t_ * ROPE_THETA ** (-2 * i_ / HEAD_DIM)
    a, b = q[0, 0, t_, i_].item(), q[0, 0, t_, i_ + 32].item()
    rot = (a * math.cos(ang) - b * math.sin(ang), b * math.cos(ang) + a * math.sin(ang))
    rd = max(abs(rot[0] - qr[0, 0, t_, i_].item()), abs(rot[1] - qr[0, 0, t_, i_ + 32].item()))
    s = (qr @ kr.transpose(-1, -2)) / math.sqrt(HEAD_DIM)
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    ref = torch.softmax(s, -1) @ v
    got = F.scaled_dot_product_attention(qr, kr, v, is_causal=True, scale=1 / math.sqrt(HEAD_DIM))
    sd = (got - ref).abs().max().item()
    print(f"S layer RoPE pair rotation diff {rd:.3e}; SDPA vs explicit softmax {sd:.3e}")
    assert rd < 1e-5 and sd < 1e-4, (rd, sd)
    # Whole model: the loss at init is ~ln(V) (+ ~0.1: logits have std
    # 0.02 * sqrt(d) ~ 0.45, adding var/2), and AdamW lowers it on one batch.
    model = BenchModel()
    opt, impl = make_optimizer(model, ARGS.optim)
    x = torch.randint(0, VOCAB, (2, 129))
    losses = []
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"model: init loss {losses[0]:.4f} (ln V = {math.log(VOCAB):.4f}), "
          f"after 4 AdamW({impl}) steps {losses[-1]:.4f}")
    assert abs(losses[0] - math.log(VOCAB)) < 0.25 and losses[-1] < losses[0] - 0.01, losses
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params} ({n_params / 1e6:.2f} M)")
    print("check: OK")


# ---- benchmark -------------------------------------------------------------
def bench():
    torch.manual_seed(ARGS.seed)
    dev = torch.device(ARGS.device)
    if ARGS.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = ARGS.tf32
        torch.backends.cudnn.allow_tf32 = ARGS.tf32
    model = BenchModel().to(dev)
    opt, impl = make_optimizer(model, ARGS.optim)
    B, T = ARGS.batch, ARGS.seq
    total = ARGS.warmup + ARGS.steps
    batches = [torch.randint(0, VOCAB, (B, T + 1)).to(dev) for _ in range(total)]
    times, cpu = [], []
    cuda = ARGS.device == "cuda"
    for i, tok in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=ARGS.device, dtype=torch.bfloat16, enabled=ARGS.autocast == "bf16"):
            loss = model(tok[:, :-1], tok[:, 1:])
        loss.backward()
        opt.step()
        if cuda:
            e1.record()
            e1.synchronize()
        lv = loss.item()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if cuda:
            dt = e0.elapsed_time(e1) / 1000.0
        tag = "warmup" if i < ARGS.warmup else "step  "
        print(f"  {tag} {i:2d}: {dt:7.3f} s wall, {dc:7.3f} s cpu, loss {lv:.4f}",
              flush=True)
        if i >= ARGS.warmup:
            times.append(dt)
            cpu.append(dc)
    med = statistics.median(times)
    gflop = flops_per_step(T, B, d=D_MODEL, h=HIDDEN, vocab=VOCAB, pattern=PATTERN) / 1e9
    res = {
        "seq": T, "batch": B, "threads": ARGS.threads, "steps": ARGS.steps,
        "device": ARGS.device, "size": ARGS.size, "tf32": ARGS.tf32, "autocast": ARGS.autocast,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 1048576.0 if cuda else 0.0,
        "median_step_s": med,
        "tokens_per_s": B * T / med,
        "gflop_per_step": gflop,
        "gflops": gflop / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_version": torch.__version__,
        "adamw": impl,
        "min_step_s": min(times), "max_step_s": max(times),
        "median_cpu_s": statistics.median(cpu),  # CPU seconds, all threads
        "load_avg_1min": os.getloadavg()[0],      # machine is shared: noise
    }
    print(f"torch {res['torch_version']} peer{' bf16 autocast' if ARGS.autocast == 'bf16' else ''}: seq {T} batch {B} threads "
          f"{ARGS.threads}: median step {med:.3f} s, {res['tokens_per_s']:.0f} "
          f"tokens/s, {gflop:.1f} GFLOP/step, {res['gflops']:.1f} GFLOP/s, "
          f"peak RSS {res['peak_rss_mb']:.0f} MB (AdamW {impl})")
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")


def main():
    torch.set_num_threads(ARGS.threads)
    print(f"torch {torch.__version__}; intra-op threads {torch.get_num_threads()}, "
          f"inter-op threads {torch.get_num_interop_threads()}; "
          f"MKL {torch.backends.mkl.is_available()}, "
          f"oneDNN {torch.backends.mkldnn.is_available()}")
    info = [ln.strip() for ln in torch.__config__.parallel_info().splitlines()
            if ln.strip().startswith(("ATen parallel backend", "OpenMP", "MKL",
                                      "Intel(R) oneDNN", "std::thread"))]
    print("  " + "; ".join(info))
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in os.environ}
    if blas_env:
        print(f"  note: {blas_env} set (affects OpenBLAS users only, not torch's MKL)")
    if ARGS.check:
        check()
    else:
        bench()


if __name__ == "__main__":
    main()
