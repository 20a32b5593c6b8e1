"""Per-layer widths of a pruned checkpoint's config (no vLLM needed: tested on its own).

`slipstream prepare --prune` writes, when layers kept different widths, the lists
layer_num_attention_heads, layer_num_key_value_heads and layer_intermediate_size (one entry per
layer) next to the original uniform fields. Whole GQA groups are pruned, so every layer keeps
num_attention_heads / num_key_value_heads query heads per KV head and vLLM's equal-group
attention applies per layer as it is.
"""

from __future__ import annotations

import copy

LISTS = {"num_attention_heads": "layer_num_attention_heads", "num_key_value_heads": "layer_num_key_value_heads",
         "intermediate_size": "layer_intermediate_size"}


def check(config) -> None:
    """Raises ValueError naming the field when the lists are missing, of the wrong length, or
    break the equal-group rule."""
    layers = config.num_hidden_layers
    for field in LISTS.values():
        values = getattr(config, field, None)
        if not isinstance(values, (list, tuple)) or len(values) != layers or \
                not all(isinstance(v, int) and v > 0 for v in values):
            raise ValueError(f"config.json: expected {field} to list {layers} positive integers, got {values!r}")
    heads, kv = config.layer_num_attention_heads, config.layer_num_key_value_heads
    for i, (h, k) in enumerate(zip(heads, kv)):
        if h % k:
            raise ValueError(f"config.json: layer {i} has {h} query heads over {k} KV heads (expected a multiple)")
    if getattr(config, "head_dim", None) is None:
        raise ValueError("config.json: expected head_dim (it cannot be derived once head counts differ per layer)")


def layer_config(config, layer: int):
    """A copy of config with layer `layer`'s widths in the uniform fields, for a stock decoder layer."""
    out = copy.copy(config)
    for uniform, per_layer in LISTS.items():
        setattr(out, uniform, getattr(config, per_layer)[layer])
    return out


def tensor_parallel_problems(config, tp: int) -> list:
    """Layers whose widths do not split over tp ranks (vLLM needs heads, KV heads (or tp a multiple
    of them) and MLP channels to divide evenly)."""
    problems = []
    for i in range(config.num_hidden_layers):
        h, k = config.layer_num_attention_heads[i], config.layer_num_key_value_heads[i]
        m = config.layer_intermediate_size[i]
        if h % tp or (k % tp if k >= tp else tp % k) or m % tp:
            problems.append(f"layer {i}: {h} heads, {k} KV heads, {m} MLP channels over {tp} ranks")
    return problems
