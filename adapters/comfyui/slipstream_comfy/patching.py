"""Reading the model through a ModelPatcher when another clone's object patches may be applied,
and the block index that older ComfyUI releases do not give overrides.

ComfyUI sets a patcher's object patches on the shared model while that patcher is loaded and puts
the originals back only when another one is loaded. So a node building its patches between runs
can find a previous clone's wrappers in place of the modules. These helpers see through ours
(each wrapper class names the attribute holding what it wraps); another pack's cannot be told
from the model's own modules.
"""

from __future__ import annotations

import torch

_WRAPPED_IN: dict = {}  # wrapper class -> attribute holding the wrapped module


def wrapper(attribute: str):
    """Class decorator: instances wrap the module at `attribute`."""
    def register(cls):
        _WRAPPED_IN[cls] = attribute
        return cls
    return register


def unwrap(obj):
    while type(obj) in _WRAPPED_IN:
        obj = getattr(obj, _WRAPPED_IN[type(obj)])
    return obj


def model_object(patcher, path: str):
    """What `path` ("diffusion_model.blocks.3.ffn") is for this patcher: its own object patch if it
    has one, else the model's module with any of our wrappers left by another clone removed."""
    own = getattr(patcher, "object_patches", {})
    if path in own:
        return own[path]
    return unwrap(patcher.get_model_object(path))


def linears(module: torch.nn.Module, prefix: str = ""):
    """(path, nn.Linear) of every linear under module, paths as in the unwrapped model."""
    m = unwrap(module)
    if isinstance(m, torch.nn.Linear):
        yield prefix, m
        return
    for name, child in m.named_children():
        yield from linears(child, f"{prefix}.{name}" if prefix else name)


def index_blocks(patcher, num_blocks: int):
    """Overrides learn their block from transformer_options["block_index"], which ComfyUI releases
    before ~0.4 (0.3.64 among them) do not set in Wan's block loop: a per-block replace entry sets
    it in place, as the newer loop does, and calls the entry that was there, or the block."""
    replace = patcher.model_options.setdefault("transformer_options", {}).setdefault("patches_replace", {}).get("dit", {})
    for i in range(num_blocks):
        patcher.set_model_patch_replace(_indexed(i, replace.get(("double_block", i))), "dit", "double_block", i)


def _indexed(index: int, previous=None):
    def entry(args, extra):
        options = args.get("transformer_options")
        if isinstance(options, dict):
            options["block_index"] = index
        return previous(args, extra) if previous is not None else extra["original_block"](args)
    return entry
