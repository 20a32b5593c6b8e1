"""`slipstream prepare --prune` as a user runs it (the CLI as a subprocess) on a Qwen3 checkpoint that
transformers saved, with masks from slipstream_torch.ddp: the physically smaller model transformers
loads back must compute what the gated original does."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="installed by scripts/python-env.js from requirements-test.txt")

from slipstream_torch import ddp  # noqa: E402

CLI = Path(__file__).resolve().parents[3] / "bin" / "slipstream.js"


def small_qwen3(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
                                   dtype="float32")
    model = transformers.Qwen3ForCausalLM(cfg).eval()
    src = tmp_path / "src"
    model.save_pretrained(src, safe_serialization=True)
    return model, src


def gates(uniform: bool):
    g = torch.Generator().manual_seed(4)
    heads = torch.tensor([[0.0, 1.3], [0.7, 0.0]]) if uniform else torch.tensor([[0.0, 1.3], [0.7, 0.9]])
    channels = torch.rand(2, 96, generator=g) + 0.5
    channels[:, torch.randperm(96, generator=g)[:40]] = 0  # 56 of 96 kept in each layer
    return {"heads": heads, "channels": channels}


def prepare(src, out, masks, *extra):
    r = subprocess.run(["node", str(CLI), "prepare", str(src), "--scheme", "none", "--prune", str(masks), "--out", str(out),
                        "--quiet", *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "config.json").read_text())


def test_uniform_pruning_gives_a_standard_smaller_qwen3_that_matches_the_gated_model(tmp_path):
    model, src = small_qwen3(tmp_path)
    g = gates(uniform=True)
    ddp.save_masks(str(tmp_path / "masks.safetensors"), g, 2)
    cfg = prepare(src, tmp_path / "pruned", tmp_path / "masks.safetensors", "--round-to", "8")
    assert (cfg["num_key_value_heads"], cfg["num_attention_heads"], cfg["intermediate_size"]) == (1, 2, 56)
    assert cfg["architectures"] == ["Qwen3ForCausalLM"] and "quantization_config" not in cfg
    pruned = transformers.Qwen3ForCausalLM.from_pretrained(tmp_path / "pruned", dtype=torch.float32).eval()
    ids = torch.randint(0, 128, (2, 20), generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), ddp.gated(model, g["heads"], g["channels"]):
        expected = model(ids).logits
    with torch.no_grad():
        got = pruned(ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_uneven_pruning_writes_per_layer_widths_padded_to_round_to(tmp_path):
    _, src = small_qwen3(tmp_path)
    ddp.save_masks(str(tmp_path / "masks.safetensors"), gates(uniform=False), 2)
    cfg = prepare(src, tmp_path / "pruned", tmp_path / "masks.safetensors", "--round-to", "32")
    assert cfg["architectures"] == ["Qwen3PrunedForCausalLM"]
    assert cfg["layer_num_key_value_heads"] == [1, 2] and cfg["layer_num_attention_heads"] == [2, 4]
    assert cfg["layer_intermediate_size"] == [64, 64]  # 56 kept, padded with zero channels to 64
    from safetensors.torch import load_file
    w = {}
    for f in (tmp_path / "pruned").glob("*.safetensors"):
        w.update(load_file(str(f)))
    assert w["model.layers.0.self_attn.q_proj.weight"].shape == (32, 64)
    assert w["model.layers.1.self_attn.o_proj.weight"].shape == (64, 64)
    assert w["model.layers.0.mlp.up_proj.weight"].shape == (64, 64) and w["model.layers.0.mlp.down_proj.weight"].shape == (64, 64)
    assert torch.count_nonzero(w["model.layers.0.mlp.up_proj.weight"][56:]) == 0  # the padding


def test_uneven_pruning_loads_in_transformers_through_the_modeling_file_it_ships(tmp_path):
    model, src = small_qwen3(tmp_path)
    g = gates(uniform=False)
    ddp.save_masks(str(tmp_path / "masks.safetensors"), g, 2)
    cfg = prepare(src, tmp_path / "pruned", tmp_path / "masks.safetensors")
    assert cfg["auto_map"] == {"AutoModelForCausalLM": "modeling_qwen3_pruned.Qwen3PrunedForCausalLM"}
    pruned = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "pruned", trust_remote_code=True,
                                                               dtype=torch.float32).eval()
    assert type(pruned).__name__ == "Qwen3PrunedForCausalLM"
    assert [layer.mlp.up_proj.weight.shape[0] for layer in pruned.model.layers] == [56, 56]
    ids = torch.randint(0, 128, (2, 20), generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), ddp.gated(model, g["heads"], g["channels"]):
        expected = model(ids).logits
    with torch.no_grad():
        got = pruned(ids).logits
    # float32, the same products in another order: within 1e-4 relative, the bar
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-4


def test_bad_masks_are_named(tmp_path):
    _, src = small_qwen3(tmp_path)
    from safetensors.torch import save_file
    save_file({"model.layers.0.mlp.channel_gate": torch.ones(95)}, str(tmp_path / "bad.safetensors"))
    r = subprocess.run(["node", str(CLI), "prepare", str(src), "--scheme", "none", "--prune", str(tmp_path / "bad.safetensors"),
                        "--out", str(tmp_path / "x"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1 and "expected model.layers.0.mlp.channel_gate of shape [96], got [95]" in r.stderr
    assert not (tmp_path / "x").exists()
