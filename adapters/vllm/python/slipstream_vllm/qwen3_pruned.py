"""Qwen3PrunedForCausalLM: vLLM's Qwen3 with each decoder layer built from its own widths.

Only construction differs from the stock Qwen3ForCausalLM: each layer gets a copy of the config
holding its widths (widths.layer_config), so its attention (heads, KV heads: vLLM sizes the layer's
KV cache from them) and MLP are smaller; forward, weight loading (fused qkv/gate_up), LoRA and
quantization are the stock classes'. Written against vLLM's Qwen2Model(decoder_layer_type=...)
constructor (vLLM >= 0.10).
"""

from __future__ import annotations

from torch import nn
from vllm.model_executor.models.qwen2 import Qwen2Model
from vllm.model_executor.models.qwen3 import Qwen3DecoderLayer, Qwen3ForCausalLM
from vllm.model_executor.models.utils import extract_layer_index

from .widths import check, layer_config


class Qwen3PrunedDecoderLayer(Qwen3DecoderLayer):
    def __init__(self, config, *args, prefix: str = "", **kwargs):
        super().__init__(layer_config(config, extract_layer_index(prefix)), *args, prefix=prefix, **kwargs)


class Qwen3PrunedModel(Qwen2Model):
    def __init__(self, *, vllm_config, prefix: str = ""):
        check(vllm_config.model_config.hf_config)
        super().__init__(vllm_config=vllm_config, prefix=prefix, decoder_layer_type=Qwen3PrunedDecoderLayer)


class Qwen3PrunedForCausalLM(Qwen3ForCausalLM):
    def __init__(self, *, vllm_config, prefix: str = ""):
        # The stock constructor builds a stock Qwen3Model; building it and then replacing it would
        # allocate the full-width weights first. So: the same attributes, our model.
        nn.Module.__init__(self)
        from vllm.distributed import get_pp_group
        from vllm.model_executor.layers.logits_processor import LogitsProcessor
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
        from vllm.model_executor.models.utils import PPMissingLayer, maybe_prefix

        config = vllm_config.model_config.hf_config
        self.config = config
        self.quant_config = vllm_config.quant_config
        self.lora_config = vllm_config.lora_config
        self.model = Qwen3PrunedModel(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        if get_pp_group().is_last_rank:
            self.lm_head = self.model.embed_tokens if config.tie_word_embeddings else ParallelLMHead(
                config.vocab_size, config.hidden_size, quant_config=self.quant_config,
                prefix=maybe_prefix(prefix, "lm_head"))
        else:
            self.lm_head = PPMissingLayer()
        self.logits_processor = LogitsProcessor(config.vocab_size)
        self.make_empty_intermediate_tensors = self.model.make_empty_intermediate_tensors
