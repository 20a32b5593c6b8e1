"""SlipstreamPrune on WanMini (trained weights, real torch on the CPU) run the way ComfyUI runs a
Wan model (comfy_standin.py, a stand-in for ComfyUI's patcher and sampler, says what it mirrors)."""

import copy

import pytest
import torch
from safetensors.torch import save_file

from comfy_standin import OVERRIDE, ComfyWan, ModelPatcher, attention_pytorch, sample
from slipstream_comfy import nodes
from slipstream_comfy import prune as P
from test_hooks import base, inputs, mini, reference  # noqa: F401  (module fixtures)


def random_masks(mini, seed=0, blocks=(1, 3, 6)):
    """Gates in [0.5, 1.5] with about half the MLP channels and one head in three removed."""
    g = torch.Generator().manual_seed(seed)
    heads, ffn = mini.blocks[0].self_attn.heads, mini.blocks[0].ffn[0].weight.shape[0]
    out = {}
    for i in blocks:
        ch = 0.5 + torch.rand(ffn, generator=g)
        ch[torch.rand(ffn, generator=g) < 0.5] = 0
        hd = 0.5 + torch.rand(heads, generator=g)
        hd[torch.randperm(heads, generator=g)[: max(1, heads // 3)]] = 0
        out[f"blocks.{i}.ffn.channel_gate"], out[f"blocks.{i}.self_attn.head_gate"] = ch, hd
    return out


def folded(mini, masks):
    """The same gates multiplied into a copy of the weights: the reference semantics."""
    m = copy.deepcopy(mini)
    with torch.no_grad():
        for name, gate in masks.items():
            block = m.blocks[int(name.split(".")[1])]
            if name.endswith("channel_gate"):
                block.ffn[2].weight.mul_(gate[None, :])
            else:
                scale = gate.repeat_interleave(block.self_attn.q.weight.shape[0] // block.self_attn.heads)
                block.self_attn.v.weight.mul_(scale[:, None])
                block.self_attn.v.bias.mul_(scale)
    return m


def test_gates_of_one_everywhere_leave_the_model_bit_for_bit(base, inputs, reference, mini, tmp_path):  # noqa: F811
    heads, ffn = mini.blocks[0].self_attn.heads, mini.blocks[0].ffn[0].weight.shape[0]
    save_file({"blocks.0.ffn.channel_gate": torch.ones(ffn), "blocks.2.self_attn.head_gate": torch.ones(heads)},
              str(tmp_path / "m.safetensors"))
    m = nodes.apply_prune(base, {"masks": str(tmp_path / "m.safetensors")})
    assert set(m.object_patches) == {"diffusion_model.blocks.0.ffn", "diffusion_model.blocks.2.self_attn.v"}
    assert not base.object_patches and OVERRIDE not in m.model_options["transformer_options"]
    assert torch.equal(sample(m, *inputs), reference)


def test_pruned_model_equals_the_gates_folded_into_the_weights(base, inputs, mini, tmp_path):  # noqa: F811
    masks = random_masks(mini)
    save_file(masks, str(tmp_path / "m.safetensors"))
    m = nodes.apply_prune(base, {"masks": str(tmp_path / "m.safetensors")})
    out = sample(m, *inputs)
    want = sample(ModelPatcher(ComfyWan(folded(mini, masks))), *inputs)
    # Only the summation order differs (fewer terms, gates applied before instead of after the
    # GEMM): float32 rounding, ~1e-6 relative per block, through 8 blocks and 4 cfg-5 steps.
    rel = ((out - want).norm() / want.norm()).item()
    print(f"pruned vs folded: relative L2 {rel:.2e}")
    assert rel < 1e-4, rel
    narrowing = m.model_options["transformer_options"][OVERRIDE]
    assert narrowing.narrowed == 3 * 4  # the three masked blocks' self-attention, every step
    # the model itself is untouched after the run (object patches are put back)
    assert all(isinstance(b.ffn, torch.nn.Sequential) for b in mini.blocks)


def test_attention_gets_only_the_kept_heads_and_composes_with_an_override_installed_first(base, inputs, mini, tmp_path):  # noqa: F811
    masks = random_masks(mini, blocks=(2,))
    save_file(masks, str(tmp_path / "m.safetensors"))
    seen = []

    def other_pack(func, *args, **kwargs):
        seen.append((kwargs["transformer_options"].get("block_index"), kwargs.get("heads", args[3] if len(args) > 3 else None)))
        return func(*args, **kwargs)

    first = base.clone()
    first.model_options["transformer_options"][OVERRIDE] = other_pack
    m = nodes.apply_prune(first, {"masks": str(tmp_path / "m.safetensors")})
    sample(m, *inputs)
    heads = mini.blocks[0].self_attn.heads
    kept = int((masks["blocks.2.self_attn.head_gate"] > 0).sum())
    assert (2, kept) in seen and all(h == heads for b, h in seen if b != 2)


@pytest.mark.parametrize("tensors, message", [
    ({"blocks.0.mlp.gate": torch.ones(2)}, r"unknown tensor 'blocks\.0\.mlp\.gate'"),
    ({"blocks.0.ffn.channel_gate": torch.ones(7)}, r"blocks\.0\.ffn\.channel_gate: expected shape \[1024\], got \[7\]"),
    ({"blocks.99.ffn.channel_gate": torch.ones(1024)}, r"blocks\.99\.ffn\.channel_gate: the model has 8 blocks"),
    ({"blocks.1.self_attn.head_gate": torch.tensor([1.0, float("nan")])}, r"blocks\.1\.self_attn\.head_gate: gates must be finite and non-negative"),
    ({"blocks.1.self_attn.head_gate": torch.zeros(2)}, r"blocks\.1\.self_attn\.head_gate: removes every unit of block 1"),
])
def test_bad_mask_files_name_the_file_and_the_tensor(base, tmp_path, tensors, message):  # noqa: F811
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(ValueError, match=f"SlipstreamPrune: .*bad\\.safetensors: {message}"):
        nodes.apply_prune(base, {"masks": str(path)})


def test_truncated_or_missing_files_are_clear_errors(base, mini, tmp_path):  # noqa: F811
    path = tmp_path / "m.safetensors"
    save_file(random_masks(mini), str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="SlipstreamPrune: cannot read masks .*m.safetensors"):
        nodes.apply_prune(base, {"masks": str(path)})
    with pytest.raises(ValueError, match="SlipstreamPrune: cannot read masks"):
        nodes.apply_prune(base, {"masks": str(tmp_path / "none.safetensors")})


def test_a_linear_that_cannot_be_sliced_runs_whole_with_the_same_output(mini):  # noqa: F811
    class ScaledLinear(torch.nn.Linear):  # a quantized layer's stand-in: a forward of its own
        def forward(self, x):
            return super().forward(x)

    ffn = copy.deepcopy(mini.blocks[0].ffn)
    odd = copy.deepcopy(ffn)
    odd[0].__class__ = ScaledLinear
    gate = random_masks(mini, blocks=(0,))["blocks.0.ffn.channel_gate"]
    x = torch.randn(2, 5, ffn[0].weight.shape[1], generator=torch.Generator().manual_seed(1))
    sliced, whole = P.PrunedFFN(ffn, gate), P.PrunedFFN(odd, gate)
    assert P._sliceable(sliced.original[0]) and not P._sliceable(whole.original[0])
    torch.testing.assert_close(whole(x), sliced(x), rtol=1e-5, atol=1e-6)


def test_prune_and_mixed_precision_compose_in_either_order_across_clones(base, inputs, mini, tmp_path):  # noqa: F811
    # ComfyUI leaves a clone's object patches on the model until another clone loads: the next
    # node must see through them, and nested patches (ffn, then ffn.0) must find their place.
    save_file(random_masks(mini), str(tmp_path / "m.safetensors"))
    masks = {"masks": str(tmp_path / "m.safetensors")}
    a = nodes.apply_mixed_precision(nodes.apply_prune(base, masks), {"route": "int8"})
    b = nodes.apply_prune(nodes.apply_mixed_precision(base, {"route": "int8"}), masks)
    backup = a.patch_model()  # a's patches stay on the model while b is built, as in ComfyUI
    try:
        c = nodes.apply_prune(base, masks)
    finally:
        a.unpatch_model(backup)
    out_a, out_b = sample(a, *inputs), sample(b, *inputs)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    torch.testing.assert_close(sample(c, *inputs), sample(nodes.apply_prune(base, masks), *inputs), rtol=0, atol=0)
    assert all(type(b.ffn) is torch.nn.Sequential and type(b.ffn[0]) is torch.nn.Linear for b in mini.blocks)
