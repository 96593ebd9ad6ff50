# modeling_skein.py — skein's hybrid language models in PyTorch for transformers
# (AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)). Written into the export
# folder by `skein convert --from skein` with configuration_skein.py and skein_mixers.py (the
# mixers and their ops); the C++ layers are the
# definition and this file mirrors them line by line (tests/launch/check_hf_hybrid.py checks that
# the logits equal skein's within 1e-4 of their scale for every mixer kind):
#   softmax  layers/attention.cpp       causal GQA attention, RoPE (rotate_half), optional window
#   linear   layers/linear_attention.cpp  plain | decay | gla | delta | gated_delta, feature maps
#                                         identity | elu1 | relu | hedgehog, output RMSNorm and gate
#   mom      layers/mom.cpp             Mixture-of-Memories: top-k router, per-memory recurrences
#                                       over the tokens routed to each memory, shared memory
#   liger    layers/liger.cpp           Liger GLA (gates from the key projection) + sliding window
#   lolcats  layers/lolcats.cpp         Hedgehog feature maps + sliding window, one normaliser
# The recurrences run step by step (the recurrent form of skein's chunkwise ops: the same
# function of the inputs); there is no KV/state cache, so generate() re-reads the whole prefix.
# reference: see the C++ files above for each layer's papers.
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_skein import SkeinConfig
from .skein_mixers import MIXERS, Linear, rms_norm


class MixerSlot(nn.Module):
    """self_attn: a plain softmax layer's tensors sit at self_attn.{q,k,v,o}_proj (Llama names),
    every other mixer's at self_attn.skein.<skein name> (docs/HF_FORMAT.md)."""

    def __init__(self, cfg, spec):
        super().__init__()
        kind = spec.get("kind")
        if kind not in MIXERS:
            raise ValueError(f"skein_hybrid: unknown mixer kind {kind!r} in layer_mixers (known: {sorted(MIXERS)})")
        mixer = MIXERS[kind](cfg, spec)
        have, want = sorted(mixer.state_dict()), sorted(spec.get("tensors", []))
        if "tensors" in spec and have != want:  # a tensor this file does not compute would be ignored
            raise ValueError(f"skein_hybrid: this modeling_skein.py builds a {kind} layer with tensors {have}, but the "
                             f"export has {want}; re-export with the skein version that wrote it")
        if kind == "softmax":
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = mixer.q_proj, mixer.k_proj, mixer.v_proj, mixer.o_proj
            self._mixer = [mixer]  # not a registered child: its tensors are the four above
        else:
            self.skein = mixer

    def forward(self, x):
        return self._mixer[0](x) if hasattr(self, "_mixer") else self.skein(x)


class SkeinMLP(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = Linear(d, h), Linear(d, h), Linear(h, d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class SkeinBlock(nn.Module):
    """h = x + mixer(norm1(x)); out = h + mlp(norm2(h)) (layers/model.cpp Block)."""

    def __init__(self, cfg, spec):
        super().__init__()
        d = cfg.hidden_size
        self.input_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.self_attn = MixerSlot(cfg, spec)
        self.post_attention_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.mlp = SkeinMLP(d, cfg.intermediate_size)

    def forward(self, x):
        h = x + self.self_attn(self.input_layernorm(x))
        return h + self.mlp(self.post_attention_layernorm(h))


class SkeinPreTrainedModel(PreTrainedModel):
    config_class = SkeinConfig
    base_model_prefix = "model"
    _no_split_modules = ["SkeinBlock"]

    def _init_weights(self, module):  # every tensor comes from the checkpoint
        pass


class SkeinModel(SkeinPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        if len(config.layer_mixers) != config.num_hidden_layers:
            raise ValueError(f"skein_hybrid: layer_mixers has {len(config.layer_mixers)} entries for "
                             f"num_hidden_layers {config.num_hidden_layers}")
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(SkeinBlock(config, spec) for spec in config.layer_mixers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class SkeinForCausalLM(SkeinPreTrainedModel, GenerationMixin):
    """The LM head is lm_head, or the embedding matrix when tie_word_embeddings (no lm_head
    tensor, as skein writes it)."""

    def __init__(self, config):
        super().__init__(config)
        self.model = SkeinModel(config)
        if not config.tie_word_embeddings:
            self.lm_head = Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return getattr(self, "lm_head", None)

    def tie_weights(self, *args, **kwargs):  # tied: the head reads embed_tokens directly
        pass

    def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=True, **kwargs):
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("skein_hybrid: padded batches are not supported (a recurrent layer would read the "
                             "padding); run sequences of one length or one at a time")
        h = self.model(input_ids)
        logits = self.lm_head(h) if hasattr(self, "lm_head") else h @ self.model.embed_tokens.weight.t()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, **kwargs):  # no cache: the whole prefix each step
        return {"input_ids": input_ids}
