"""vLLM general plugin: registers the model classes for checkpoints `slipstream prepare --prune`
writes with per-layer widths (config.json architectures ["Qwen3PrunedForCausalLM"]).

vLLM calls register() in every process it starts (the entry point is in pyproject.toml), so it is
re-entrant; the class is registered by its import path, so vLLM imports it only when a checkpoint
names the architecture.
"""

ARCHITECTURE = "Qwen3PrunedForCausalLM"


def register():
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "slipstream_vllm.qwen3_pruned:Qwen3PrunedForCausalLM")
