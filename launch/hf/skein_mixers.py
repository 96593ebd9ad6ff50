# skein_mixers.py — skein's token mixers and the ops they use, in PyTorch, for modeling_skein.py
# (written beside it into a skein_hybrid export; see modeling_skein.py's header for the layer
# each class mirrors). The recurrences run step by step: the recurrent form of skein's chunkwise
# ops, the same function of the inputs.
# reference: see the C++ files named in each class for each layer's papers.
import math

import torch
import torch.nn.functional as F
from torch import nn


# ---- ops (core/ops.h) ---------------------------------------------------------------------

def rms_norm(x, gain, eps):
    """x * rsqrt(mean(x^2) + eps) * gain over the last dim."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def l2_normalize(x, eps=1e-6):
    """x / sqrt(sum x^2 + eps) over the last dim (skein's eps sits inside the root)."""
    return x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps)


def rope_freqs(m, D, seq_len):
    """layers/rope.cpp: inv_freq [D/2] and the cos/sin factor of the model section's rope_type
    (default, linear, dynamic, llama3, yarn; transformers' modeling_rope_utils), seq_len: the
    sequence's length (dynamic NTK scales past rope_original_max_positions)."""
    t, theta = m.get("rope_type", "default"), float(m.get("rope_theta", 10000.0))

    def plain(base):
        return 1.0 / (base ** (torch.arange(0, D // 2, dtype=torch.float64) * 2.0 / D))

    if t == "default":
        return plain(theta), 1.0
    f, L0 = float(m["rope_factor"]), float(m["rope_original_max_positions"])
    if t == "linear":
        return plain(theta) / f, 1.0
    if t == "dynamic":
        L = max(float(seq_len), L0)
        return plain(theta * (f * L / L0 - (f - 1)) ** (D / (D - 2))), 1.0
    inv = plain(theta)
    if t == "llama3":
        lo, hi = float(m["rope_low_freq_factor"]), float(m["rope_high_freq_factor"])
        wl = 2 * math.pi / inv
        scaled = torch.where(wl > L0 / lo, inv / f, inv)
        smooth = (L0 / wl - lo) / (hi - lo)
        medium = ~(wl < L0 / hi) & ~(wl > L0 / lo)
        return torch.where(medium, (1 - smooth) * scaled / f + smooth * scaled, scaled), 1.0
    if t == "yarn":
        def corr(rot):
            return D * math.log(L0 / (rot * 2 * math.pi)) / (2 * math.log(theta))
        low, high = corr(float(m["rope_beta_fast"])), corr(float(m["rope_beta_slow"]))
        if m.get("rope_truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, D - 1)
        if low == high:
            high += 0.001
        extra = 1 - ((torch.arange(D // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        a = float(m.get("rope_attention_factor", 0)) or (0.1 * math.log(f) + 1 if f > 1 else 1.0)
        return inv / f * (1 - extra) + inv * extra, a
    raise ValueError(f"skein_hybrid: rope_type {t!r} is not implemented here")


def rope(x, m, offset=0):
    """x: [B, H, T, D]; dims i and i + D/2 rotate by (offset + t) * inv_freq[i] (rotate_half),
    scaled by the rope type's factor; m: the skein config's model section."""
    D, T = x.shape[-1], x.shape[-2]
    inv, a = rope_freqs(m, D, offset + T)
    ang = torch.outer(torch.arange(offset, offset + T, dtype=torch.float64), inv)  # [T, D/2]
    cos, sin = (a * ang.cos()).to(x.dtype), (a * ang.sin()).to(x.dtype)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def split_heads(x, heads):
    """[B, T, H*hd] -> [B, H, T, hd]."""
    B, T, _ = x.shape
    return x.reshape(B, T, heads, -1).permute(0, 2, 1, 3)


def merge_heads(x):
    """[B, H, T, hd] -> [B, T, H*hd]."""
    B, H, T, D = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, T, H * D)


def repeat_kv(x, heads):
    """[B, Hkv, T, D] -> [B, H, T, D]: kv head j serves query heads j*G .. j*G+G-1."""
    return x if x.shape[1] == heads else x.repeat_interleave(heads // x.shape[1], dim=1)


def softmax_attention(q, k, v, scale, window=0):
    """Causal attention; q: [B, H, T, D], k/v: [B, Hkv, T, D]; window > 0: i - j < window."""
    H, T = q.shape[1], q.shape[2]
    k, v = repeat_kv(k, H), repeat_kv(v, H)
    s = (q @ k.transpose(-1, -2)) * scale
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    allowed = j <= i
    if window > 0:
        allowed = allowed & (i - j < window)
    s = s.masked_fill(~allowed, float("-inf"))
    return torch.softmax(s, -1) @ v


def linear_attention(q, k, v, log_gate=None, scale=1.0):
    """S_t = diag(exp g_t) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t (core/ops.h linear_attention).
    q, k: [B, H, T, Dk], v: [B, H, T, Dv]; log_gate: None | [H] | [B, H, T, Dk].
    Without a gate or with a fixed per-head decay λ_h this is o_t = scale Σ_{j<=t} λ_h^(t-j) (q_t.k_j) v_j,
    computed in that parallel form (O(T^2), one matmul); data-dependent gates run step by step."""
    B, H, T, Dk = k.shape
    if log_gate is None or log_gate.dim() == 1:
        i = torch.arange(T).unsqueeze(1)
        j = torch.arange(T).unsqueeze(0)
        causal = (j <= i).to(torch.float64)
        if log_gate is None:
            decay = causal.reshape(1, 1, T, T)
        else:  # λ^(t-j) = exp(log λ (t-j)), in f64
            decay = torch.exp(log_gate.to(torch.float64).reshape(1, H, 1, 1) * (i - j).clamp(min=0)) * causal
        return scale * (((q @ k.transpose(-1, -2)) * decay.to(q.dtype)) @ v)
    S = q.new_zeros(B, H, Dk, v.shape[-1])
    out = []
    for t in range(T):
        if log_gate is not None:
            g = log_gate.reshape(1, H, 1, 1) if log_gate.dim() == 1 else log_gate[:, :, t, :, None]
            S = S * torch.exp(g)
        S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
        out.append(scale * (q[:, :, t, None, :] @ S).squeeze(-2))
    return torch.stack(out, 2) if out else v.new_zeros(B, H, 0, v.shape[-1])


def delta_rule(q, k, v, beta, log_alpha=None, scale=1.0):
    """S_t = a_t (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t, o_t = scale q_t S_t (core/ops.h delta_rule).
    q, k: [B, H, T, Dk], v: [B, H, T, Dv], beta, log_alpha: [B, H, T]."""
    B, H, T, Dk = k.shape
    S = q.new_zeros(B, H, Dk, v.shape[-1])
    out = []
    for t in range(T):
        kt, b = k[:, :, t], beta[:, :, t, None, None]
        S = S - b * kt[..., :, None] * (kt[..., None, :] @ S)
        if log_alpha is not None:
            S = S * torch.exp(log_alpha[:, :, t, None, None])
        S = S + b * kt[..., :, None] * v[:, :, t, None, :]
        out.append(scale * (q[:, :, t, None, :] @ S).squeeze(-2))
    return torch.stack(out, 2) if out else v.new_zeros(B, H, 0, v.shape[-1])


def retnet_log_decay(heads):
    """log(1 - 2^-(5+h)), rounded to f32 as skein stores it."""
    return torch.tensor([math.log1p(-2.0 ** (-5.0 - h)) for h in range(heads)], dtype=torch.float32)


class Linear(nn.Linear):
    """nn.Linear without bias unless asked (skein's Linear: y = x W^T (+ b), W: [out, in])."""

    def __init__(self, n_in, n_out, bias=False):
        super().__init__(n_in, n_out, bias=bias)


def rope_section(cfg):
    """The skein config's model section (rope_* keys; rope_theta from the HF key as a fallback)."""
    m = cfg.skein_section("model")
    m.setdefault("rope_theta", cfg.rope_theta)
    return m


def qkvo(cfg, d, H, Hkv, hd):
    """q/k/v/o_proj of a softmax-derived mixer; q/k/v with biases when model.qkv_bias (Qwen2)."""
    b = bool(cfg.skein_section("model").get("qkv_bias", False))
    return Linear(d, H * hd, b), Linear(d, Hkv * hd, b), Linear(d, Hkv * hd, b), Linear(H * hd, d)


# ---- mixers --------------------------------------------------------------------------------

class SoftmaxMixer(nn.Module):
    """layers/attention.cpp: q/k/v/o_proj under the Llama names."""

    def __init__(self, cfg, spec):
        super().__init__()
        d, H, Hkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.H, self.Hkv, self.hd = H, Hkv, d // H
        self.window, self.theta = int(spec.get("window", 0)), rope_section(cfg)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = qkvo(cfg, d, H, Hkv, self.hd)

    def forward(self, x):
        q = rope(split_heads(self.q_proj(x), self.H), self.theta)
        k = rope(split_heads(self.k_proj(x), self.Hkv), self.theta)
        v = split_heads(self.v_proj(x), self.Hkv)
        return self.o_proj(merge_heads(softmax_attention(q, k, v, 1.0 / math.sqrt(self.hd), self.window)))


class OutputPath(nn.Module):
    """The shared output path of linear and MoM layers: per-head RMSNorm (eps 1e-6) with gain
    o_norm, optional silu gate g_proj, o_proj."""

    def init_output(self, m, d):
        self.output_norm, self.output_gate = bool(m.get("linear_output_norm", True)), bool(m.get("linear_output_gate", False))
        self.o_proj = Linear(d, d)
        if self.output_gate:
            self.g_proj = Linear(d, d)
        if self.output_norm:
            self.o_norm = nn.Parameter(torch.ones(d))

    def output(self, o, x):
        """o: [B, T, H, dv], x: [B, T, d] -> [B, T, d]."""
        y = rms_norm(o, torch.ones(o.shape[-1], dtype=o.dtype), 1e-6) if self.output_norm else o
        y = y.reshape(x.shape[0], x.shape[1], -1)
        if self.output_norm:
            y = y * self.o_norm
        if self.output_gate:
            y = y * F.silu(self.g_proj(x))
        return self.o_proj(y)


def short_conv(x, w):
    """layers/short_conv.h: causal depthwise conv over time, SiLU, no bias; zeros before the
    sequence. x: [B, T, C], w: [C, K] -> [B, T, C]; y[t] = silu(sum_j w[:, j] * x[t - K + 1 + j])."""
    K = w.shape[1]
    xx = F.pad(x.transpose(1, 2), (K - 1, 0))  # [B, C, K - 1 + T]
    return F.silu(F.conv1d(xx, w.unsqueeze(1), groups=w.shape[0]).transpose(1, 2))


def add_short_convs(module, spec, d, K):
    """The q/k/v conv weights [d, K] when the export has them (model.short_conv)."""
    module.short_conv = "q_conv1d" in spec.get("tensors", [])
    if module.short_conv:
        for name in ("q_conv1d", "k_conv1d", "v_conv1d"):
            setattr(module, name, nn.Parameter(torch.zeros(d, K)))


class LinearMixer(OutputPath):
    """layers/linear_attention.cpp."""

    def __init__(self, cfg, spec):
        super().__init__()
        m = cfg.skein_section("model")
        d, H = cfg.hidden_size, cfg.num_attention_heads
        self.H, self.hd = H, d // H
        self.variant = spec.get("variant", m.get("linear_variant", "decay"))
        self.fmap = m.get("feature_map", "identity")
        self.scale = float(m.get("linear_scale", 1.0))
        self.gate_normalizer = float(m.get("gla_gate_normalizer", 16.0))
        self.delta = self.variant in ("delta", "gated_delta")
        self.q_proj, self.k_proj, self.v_proj = Linear(d, d), Linear(d, d), Linear(d, d)
        self.init_output(m, d)
        add_short_convs(self, spec, d, int(m.get("conv_size", 4)))
        if self.fmap == "hedgehog" and not self.delta and self.variant != "gla":
            self.q_fmap = nn.Parameter(torch.zeros(H, self.hd, self.hd))
            self.k_fmap = nn.Parameter(torch.zeros(H, self.hd, self.hd))
        if self.variant == "gla":
            r = int(m.get("gla_gate_rank", 16))
            self.gk_proj_a, self.gk_proj_b = Linear(d, r), Linear(r, d, bias=True)
        if self.delta:
            self.b_proj = Linear(d, H)
        if self.variant == "gated_delta":
            self.a_proj = Linear(d, H)
            self.A_log, self.dt_bias = nn.Parameter(torch.zeros(H)), nn.Parameter(torch.zeros(H))

    def feature(self, x, fmap):
        if self.delta:  # SiLU (the short conv's when there is one) and L2 norm
            return l2_normalize(x if self.short_conv else F.silu(x))
        if self.fmap == "elu1":
            return F.elu(x) + 1.0
        if self.fmap == "relu":
            return F.relu(x)
        if self.fmap == "hedgehog":  # softmax([y, -y]) with y = 2 x W_h
            y = 2.0 * (x @ fmap.unsqueeze(0))
            return torch.softmax(torch.cat([y, -y], -1), -1)
        return x

    def forward(self, x):
        H = self.H
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.short_conv:
            q, k, v = short_conv(q, self.q_conv1d), short_conv(k, self.k_conv1d), short_conv(v, self.v_conv1d)
        q = self.feature(split_heads(q, H), getattr(self, "q_fmap", None))
        k = self.feature(split_heads(k, H), getattr(self, "k_fmap", None))
        v = split_heads(v, H)
        if self.delta:
            beta = torch.sigmoid(self.b_proj(x)).permute(0, 2, 1)
            log_alpha = None
            if self.variant == "gated_delta":
                log_alpha = (-torch.exp(self.A_log) * F.softplus(self.a_proj(x) + self.dt_bias)).permute(0, 2, 1)
            o = delta_rule(q, k, v, beta, log_alpha, self.scale)
        else:
            gate = retnet_log_decay(H).to(x.dtype) if self.variant == "decay" else None
            if self.variant == "gla":
                gate = split_heads(F.logsigmoid(self.gk_proj_b(self.gk_proj_a(x))) / self.gate_normalizer, H)
            o = linear_attention(q, k, v, gate, self.scale)
        return self.output(o.permute(0, 2, 1, 3), x)


class MemoryProjections(nn.Module):
    def __init__(self, d, H, variant):
        super().__init__()
        self.k_proj, self.v_proj = Linear(d, d), Linear(d, d)
        if variant in ("delta", "gated_delta"):
            self.b_proj = Linear(d, H)
        if variant == "gated_delta":
            self.a_proj = Linear(d, H)


class MoMMixer(OutputPath):
    """layers/mom.cpp: softmax router, top-k (ties: lower memory index first), weights
    renormalised over the k slots; memory m runs its recurrence over the tokens routed to it (in
    time order, per sequence); the shared memory over every token, unweighted."""

    def __init__(self, cfg, spec):
        super().__init__()
        m = cfg.skein_section("model")
        d, H = cfg.hidden_size, cfg.num_attention_heads
        self.H, self.hd = H, d // H
        self.M, self.K = int(m.get("mom_memories", 4)), int(m.get("mom_topk", 2))
        self.variant = m.get("mom_variant", "gated_delta")
        self.scale = float(m.get("linear_scale", 1.0))
        self.delta = self.variant in ("delta", "gated_delta")
        self.router = Linear(d, self.M)
        self.q_proj = Linear(d, d)
        self.init_output(m, d)
        add_short_convs(self, spec, d, int(m.get("conv_size", 4)))
        if self.variant == "gated_delta":
            self.A_log, self.dt_bias = nn.Parameter(torch.zeros(H)), nn.Parameter(torch.zeros(H))
        self.memories = nn.ModuleList(MemoryProjections(d, H, self.variant) for _ in range(self.M))
        if bool(m.get("mom_shared_memory", True)):
            self.shared = MemoryProjections(d, H, self.variant)

    def recurrence(self, mem, x, q):
        """x: [1, n, d], q: [1, n, H*hd] -> [1, H, n, hd]."""
        H = self.H
        k, v = mem.k_proj(x), mem.v_proj(x)
        if self.short_conv:  # over this memory's own tokens (one sequence's, in time order)
            q, k, v = short_conv(q, self.q_conv1d), short_conv(k, self.k_conv1d), short_conv(v, self.v_conv1d)
        q, k, v = split_heads(q, H), split_heads(k, H), split_heads(v, H)
        if not self.delta:
            gate = retnet_log_decay(H).to(x.dtype) if self.variant == "decay" else None  # a constant, not a tensor of the file
            return linear_attention(q, k, v, gate, self.scale)
        if not self.short_conv:
            q, k = F.silu(q), F.silu(k)
        q, k = l2_normalize(q), l2_normalize(k)
        beta = torch.sigmoid(mem.b_proj(x)).permute(0, 2, 1)
        log_alpha = None
        if self.variant == "gated_delta":
            log_alpha = (-torch.exp(self.A_log) * F.softplus(mem.a_proj(x) + self.dt_bias)).permute(0, 2, 1)
        return delta_rule(q, k, v, beta, log_alpha, self.scale)

    def forward(self, x):
        B, T, d = x.shape
        probs = torch.softmax(self.router(x), -1)  # [B, T, M]
        # top-k by a stable descending sort, as skein (std::stable_sort)
        order = torch.sort(probs, dim=-1, descending=True, stable=True).indices[..., : self.K]  # [B, T, K]
        w = torch.gather(probs, -1, order)
        w = w / w.sum(-1, keepdim=True)
        q_all = self.q_proj(x)
        combined = x.new_zeros(B, T, self.H, self.hd)
        for b in range(B):
            for mi in range(self.M):
                hit = (order[b] == mi)  # [T, K]
                rows = hit.any(-1).nonzero().flatten()
                if rows.numel() == 0:
                    continue
                o = self.recurrence(self.memories[mi], x[b, rows][None], q_all[b, rows][None])  # [1, H, n, hd]
                weight = (w[b] * hit).sum(-1)[rows]  # [n]
                combined[b, rows] += o[0].permute(1, 0, 2) * weight[:, None, None]
        if hasattr(self, "shared"):
            combined = combined + self.recurrence(self.shared, x, q_all).permute(0, 2, 1, 3)
        return self.output(combined, x)


class LigerMixer(nn.Module):
    """layers/liger.cpp: the teacher's projections; GLA over softmax feature maps with gates
    logsigmoid(k) / normaliser; mixed with sliding-window softmax attention on RoPE'd q/k."""

    def __init__(self, cfg, spec):
        super().__init__()
        d, H, Hkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.H, self.Hkv, self.hd, self.theta = H, Hkv, d // H, rope_section(cfg)
        self.attention = bool(spec.get("attention", True))
        self.window, self.mix = int(spec.get("window", 64)), float(spec.get("mix", 0.5))
        self.gate_normalizer = float(spec.get("gate_normalizer", 16.0))
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = qkvo(cfg, d, H, Hkv, self.hd)

    def forward(self, x):
        H = self.H
        q = split_heads(self.q_proj(x), H)
        k = split_heads(self.k_proj(x), self.Hkv)
        v = split_heads(self.v_proj(x), self.Hkv)
        gate = repeat_kv(F.logsigmoid(k) / self.gate_normalizer, H)
        o = linear_attention(torch.softmax(q, -1), torch.softmax(repeat_kv(k, H), -1), repeat_kv(v, H), gate, 1.0)
        if self.attention:
            swa = softmax_attention(rope(q, self.theta), rope(k, self.theta), v, 1.0 / math.sqrt(self.hd), self.window)
            o = swa * self.mix + o * (1.0 - self.mix)
        return self.o_proj(merge_heads(o))


class LolcatsMixer(nn.Module):
    """layers/lolcats.cpp: y_i = (sum_Win a_sm v + sum_Lin a_ln v) / (sum_Win a_sm + sum_Lin a_ln),
    a_sm = sigmoid(window_factor) exp(tau q.k - m_i) over the window (i - w < j <= i), a_ln =
    phi_q(q_i).phi_k(k_j) for j <= i - w, phi(x) = [softmax(x W), softmax(-x W)]."""

    def __init__(self, cfg, spec):
        super().__init__()
        d, H, Hkv = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        self.H, self.Hkv, self.hd, self.theta = H, Hkv, d // H, rope_section(cfg)
        self.window, self.linear = int(spec.get("window", 64)), bool(spec.get("linear", True))
        f = int(spec.get("feature_dim", 64))
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = qkvo(cfg, d, H, Hkv, self.hd)
        self.q_map, self.k_map = nn.Parameter(torch.zeros(H, self.hd, f)), nn.Parameter(torch.zeros(H, self.hd, f))
        self.window_factors = nn.Parameter(torch.zeros(H))

    @staticmethod
    def feature(x, fmap):
        u = x @ fmap.unsqueeze(0)
        return torch.cat([torch.softmax(u, -1), torch.softmax(-u, -1)], -1)

    def forward(self, x):
        H, T, w = self.H, x.shape[1], self.window
        q = rope(split_heads(self.q_proj(x), H), self.theta)
        k = repeat_kv(rope(split_heads(self.k_proj(x), self.Hkv), self.theta), H)
        v = repeat_kv(split_heads(self.v_proj(x), self.Hkv), H)
        i = torch.arange(T).unsqueeze(1)
        j = torch.arange(T).unsqueeze(0)
        win = (j <= i) & (i - j < w)
        s = ((q @ k.transpose(-1, -2)) / math.sqrt(self.hd)).masked_fill(~win, float("-inf"))
        e = torch.exp(s - s.max(-1, keepdim=True).values)
        g = torch.sigmoid(self.window_factors).reshape(1, H, 1, 1)
        num, den = (e @ v) * g, e.sum(-1, keepdim=True) * g
        if self.linear:
            a = (self.feature(q, self.q_map) @ self.feature(k, self.k_map).transpose(-1, -2)) * (j <= i - w)
            num, den = num + a @ v, den + a.sum(-1, keepdim=True)
        return self.o_proj(merge_heads(num / den))


MIXERS = {"softmax": SoftmaxMixer, "linear": LinearMixer, "mom": MoMMixer, "liger": LigerMixer,
          "lolcats": LolcatsMixer}
