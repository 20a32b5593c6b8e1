"""Qwen3PrunedForCausalLM for transformers: a Qwen3 whose layers have their own widths.

`slipstream prepare --prune` copies this file next to a checkpoint whose layers kept different
numbers of KV groups or MLP channels and names it in config.json's auto_map, so that
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` loads it. Each decoder layer is
transformers' own Qwen3 layer built from a copy of the config holding that layer's widths
(layer_num_attention_heads, layer_num_key_value_heads, layer_intermediate_size); everything else
is the stock Qwen3ForCausalLM. vLLM reads the same config through adapters/vllm/python.
"""

import copy

from torch import nn
from transformers import Qwen3Config, Qwen3ForCausalLM
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer

_PER_LAYER = {"num_attention_heads": "layer_num_attention_heads", "num_key_value_heads": "layer_num_key_value_heads",
              "intermediate_size": "layer_intermediate_size"}


def layer_config(config, layer: int):
    out = copy.copy(config)
    for uniform, per_layer in _PER_LAYER.items():
        setattr(out, uniform, getattr(config, per_layer)[layer])
    return out


class Qwen3PrunedForCausalLM(Qwen3ForCausalLM):
    config_class = Qwen3Config

    def __init__(self, config):
        super().__init__(config)
        self.model.layers = nn.ModuleList(Qwen3DecoderLayer(layer_config(config, i), i) for i in range(config.num_hidden_layers))
        self.post_init()
