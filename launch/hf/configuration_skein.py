# configuration_skein.py — the transformers config of a skein hybrid export (model_type
# "skein_hybrid"), loaded with trust_remote_code=True beside modeling_skein.py. Written into the
# export folder by `skein convert --from skein` (launch/hf_export.cpp embeds this file).
#
# Besides the Llama-style sizes, it carries what the modeling file needs to rebuild skein's
# layers exactly: `layer_mixers` (one object per layer, from the exported model's actual mixers:
# {"kind": "softmax" | "linear" | "mom" | "liger" | "lolcats", ...}) and `skein` (the whole
# skein config, {"format_version": 1, "config": {section: {key: value}}}; docs/HF_FORMAT.md).
from transformers import PretrainedConfig


class SkeinConfig(PretrainedConfig):
    model_type = "skein_hybrid"

    def __init__(self, vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=None, rms_norm_eps=1e-6, rope_theta=10000.0,
                 tie_word_embeddings=False, layer_mixers=None, skein=None, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.layer_mixers = layer_mixers or [{"kind": "softmax"}] * num_hidden_layers
        self.skein = skein or {"format_version": 1, "config": {}}
        kwargs.pop("rope_parameters", None)  # written for readers that expect it; rope_theta is the value used
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    def skein_section(self, name):
        """One section of the embedded skein config ({} when absent)."""
        return dict(self.skein.get("config", {}).get(name, {}))
