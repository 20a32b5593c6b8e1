"""A stand-in for the parts of ComfyUI the pack's hooks touch. ComfyUI is not installable here (it
is on none of the package indexes this machine reaches); bench/comfyui runs the real one on the GPU
machine. What it mirrors, from ComfyUI 0.29 as ../shared/research/comfyui.md records it:

- ModelPatcher.clone() copies model_options' dicts and lists and shares every other object
  (comfy.utils.deepcopy_list_dict), and copies the object-patch dict; object patches (attribute
  paths from the BaseModel, "diffusion_model.blocks.3.ffn") are set on the model while it is loaded
  for sampling and put back after; get_model_object returns a patch before the attribute; wrappers and callbacks live under transformer_options,
  keyed by type then by key; set_model_patch_replace fills patches_replace[name][(block, i)].
- The sampler works on its own copy of model_options, runs OUTER_SAMPLE wrappers around the whole
  run, ON_PREPARE_STATE callbacks before every step, and hands the diffusion model a per-call copy
  of transformer_options with sigmas, sample_sigmas, uuids and cond_or_uncond.
- comfy/ldm/wan/model.py's block loop: block_index and total_blocks in transformer_options, and a
  ("double_block", i) replace entry called with {"img", "txt", "vec", "pe",
  "transformer_options"} and {"original_block"}; attention through optimized_attention, which
  @wrap_attn hands to transformer_options["optimized_attention_override"](func, *args, **kwargs),
  with heads by keyword as Wan passes it. bench/comfyui/bench.py runs the same hooks in ComfyUI 0.3.64.

The model is WanMini (models/wan-mini) with its trained weights, run that way.
"""

from __future__ import annotations

import sys
import types
import uuid
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "models" / "wan-mini"))

from model import apply_rope, rope_cos_sin, sinusoidal_embedding  # noqa: E402

OVERRIDE = "optimized_attention_override"


def deepcopy_list_dict(obj):
    if isinstance(obj, dict):
        return {k: deepcopy_list_dict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [deepcopy_list_dict(v) for v in obj]
    return obj


def _get_attr(obj, name):
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _set_attr(obj, name, value):
    *path, last = name.split(".")
    parent = _get_attr(obj, ".".join(path)) if path else obj
    old = getattr(parent, last)
    setattr(parent, last, value)
    return old


class ModelPatcher:
    def __init__(self, diffusion_model):
        self.diffusion_model = diffusion_model
        self.model = types.SimpleNamespace(diffusion_model=diffusion_model)  # ComfyUI's BaseModel holds it
        self.model_options = {"transformer_options": {}}
        self.object_patches = {}

    def clone(self):
        n = ModelPatcher(self.diffusion_model)
        n.model_options = deepcopy_list_dict(self.model_options)
        n.object_patches = self.object_patches.copy()
        return n

    def get_model_object(self, name):
        # ComfyUI: an object patch under that name if there is one, else the model's attribute.
        if name in self.object_patches:
            return self.object_patches[name]
        return _get_attr(self.model, name)

    def add_object_patch(self, name, obj):
        self.object_patches[name] = obj

    def patch_model(self):
        """Sets every object patch on the model (ComfyUI does it when it loads the patcher); returns
        what unpatch_model puts back."""
        return {name: _set_attr(self.model, name, obj) for name, obj in self.object_patches.items()}

    def unpatch_model(self, backup):
        for name, obj in backup.items():
            _set_attr(self.model, name, obj)

    def add_wrapper_with_key(self, wrapper_type, key, fn):
        to = self.model_options["transformer_options"]
        to.setdefault("wrappers", {}).setdefault(wrapper_type, {}).setdefault(key, []).append(fn)

    def add_callback_with_key(self, call_type, key, fn):
        to = self.model_options["transformer_options"]
        to.setdefault("callbacks", {}).setdefault(call_type, {}).setdefault(key, []).append(fn)

    def set_model_patch_replace(self, patch, name, block_name, number, transformer_index=None):
        to = self.model_options["transformer_options"]
        to.setdefault("patches_replace", {}).setdefault(name, {})[(block_name, number)] = patch


def attention_pytorch(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False,
                      skip_output_reshape=False, **kwargs):
    b, n, hd = q.shape
    d = hd // heads
    q, k, v = (t.view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out if skip_output_reshape else out.transpose(1, 2).reshape(b, n, hd)


def optimized_attention(*args, **kwargs):
    # @wrap_attn: marks the call so a backend that calls back does not re-enter the override.
    if "_inside_attn_wrapper" in kwargs:
        return attention_pytorch(*args, **kwargs)
    kwargs["_inside_attn_wrapper"] = True
    options = kwargs.get("transformer_options")
    if options is not None and OVERRIDE in options:
        return options[OVERRIDE](attention_pytorch, *args, **kwargs)
    return attention_pytorch(*args, **kwargs)


def _attention(att, x, ctx, rope, options):
    src = x if ctx is None else ctx
    b, lq, lk = x.shape[0], x.shape[1], src.shape[1]
    d = att.q.weight.shape[0] // att.heads
    q = att.norm_q(att.q(x)).view(b, lq, att.heads, d)
    k = att.norm_k(att.k(src)).view(b, lk, att.heads, d)
    v = att.v(src).view(b, lk, att.heads, d)
    if rope is not None:
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    y = optimized_attention(q.flatten(2), k.flatten(2), v.flatten(2), heads=att.heads, transformer_options=options)
    return att.o(y)


def _block(block, x, e0, ctx, rope, options):
    m = [t[:, None] for t in (block.modulation + e0).type_as(x).unbind(1)]
    x = x + m[2] * _attention(block.self_attn, block.norm1(x) * (1 + m[1]) + m[0], None, rope, options)
    x = x + _attention(block.cross_attn, block.norm3(x), ctx, None, options)
    return x + m[5] * block.ffn(block.norm2(x) * (1 + m[4]) + m[3])


class ComfyWan(torch.nn.Module):
    """WanMini's modules run as comfy/ldm/wan/model.py runs a Wan model."""

    def __init__(self, mini, sets_block_index=True):
        super().__init__()
        self.mini = mini
        self.blocks = mini.blocks
        self.sets_block_index = sets_block_index  # False: as ComfyUI 0.3.64's loop, which does not

    def forward(self, x, t, context, transformer_options):
        m = self.mini
        b, _, f, h, w = x.shape
        pf, ph, pw = m.patch_size
        grid = (f // pf, h // ph, w // pw)
        x = m.patch_embedding(x).float().flatten(2).transpose(1, 2)
        e = m.time_embedding(sinusoidal_embedding(m.freq_dim, t).to(x.dtype))
        e0 = m.time_projection(e).unflatten(1, (6, m.dim))
        ctx = m.text_embedding(context)
        rope = rope_cos_sin(grid, m.blocks[0].self_attn.q.weight.shape[0] // m.blocks[0].self_attn.heads, x.device)
        replace = transformer_options.get("patches_replace", {}).get("dit", {})
        transformer_options["total_blocks"] = len(m.blocks)
        for i, block in enumerate(m.blocks):
            if self.sets_block_index:
                transformer_options["block_index"] = i
            else:
                transformer_options.pop("block_index", None)

            def original(args, block=block):
                return {"img": _block(block, args["img"], args["vec"], args["txt"], args["pe"], args["transformer_options"])}

            args = {"img": x, "txt": ctx, "vec": e0, "pe": rope, "transformer_options": transformer_options}
            x = replace[("double_block", i)](args, {"original_block": original})["img"] if ("double_block", i) in replace \
                else original(args)["img"]
        x = m.head(x, e)
        x = x.view(b, *grid, pf, ph, pw, m.out_dim)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(b, m.out_dim, f, h, w)


def _wrapped(options, wrapper_type, fn):
    chain = [w for ws in options["transformer_options"].get("wrappers", {}).get(wrapper_type, {}).values() for w in ws]

    def call(i, *a, **k):
        if i == len(chain):
            return fn(*a, **k)
        return chain[i](lambda *a2, **k2: call(i + 1, *a2, **k2), *a, **k)

    return lambda *a, **k: call(0, *a, **k)


@torch.no_grad()
def sample(patcher, x, context, sigmas, cfg=5.0):
    """Euler flow matching with classifier-free guidance, cond and uncond in one batch."""
    options = deepcopy_list_dict(patcher.model_options)
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    schedule = torch.tensor(sigmas, dtype=torch.float32)
    ctx = torch.cat([context, torch.zeros_like(context)])

    def run(x):
        for i in range(len(sigmas) - 1):
            for fns in options["transformer_options"].get("callbacks", {}).get("on_prepare_state", {}).values():
                for fn in fns:
                    fn(patcher, schedule[i:i + 1], options, None)
            to = options["transformer_options"].copy()
            to.update(sigmas=schedule[i:i + 1], sample_sigmas=schedule, uuids=ids, cond_or_uncond=[0, 1])
            t = torch.full((2,), sigmas[i] * 1000.0)
            v_cond, v_uncond = patcher.diffusion_model(torch.cat([x, x]), t, ctx, to).chunk(2)
            x = x + (sigmas[i + 1] - sigmas[i]) * (v_uncond + cfg * (v_cond - v_uncond))
        return x

    backup = patcher.patch_model()
    try:
        return _wrapped(options, "outer_sample", run)(x)
    finally:
        patcher.unpatch_model(backup)
