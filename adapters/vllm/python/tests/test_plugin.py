"""The vLLM plugin for unevenly pruned checkpoints. vLLM itself is not installable here (no wheel on
this machine's indexes, none on the GPU machine), so:
- the per-layer configs the plugin gives vLLM's stock decoder layer are checked by building
  transformers' Qwen3 decoder layers from them, loading a `slipstream prepare --prune` output into
  them strictly and comparing logits with the gated original (real transformers, real CLI);
- register() runs against a stand-in `vllm` module that records ModelRegistry calls (a mock, the
  only one here), and the entry point pyproject declares is the function that was run.
"""

import json
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="installed by scripts/python-env.js from requirements-test.txt")

import slipstream_vllm  # noqa: E402
from slipstream_vllm import widths  # noqa: E402
from slipstream_torch import ddp  # noqa: E402
from test_prepare_prune import gates, prepare, small_qwen3  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def test_per_layer_configs_build_layers_that_load_the_pruned_checkpoint_and_match_the_gated_model(tmp_path):
    model, src = small_qwen3(tmp_path)
    g = gates(uniform=False)
    ddp.save_masks(str(tmp_path / "masks.safetensors"), g, 2)
    prepare(src, tmp_path / "pruned", tmp_path / "masks.safetensors")
    config = transformers.AutoConfig.from_pretrained(tmp_path / "pruned")
    widths.check(config)
    assert [widths.layer_config(config, i).num_key_value_heads for i in range(2)] == [1, 2]
    from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer
    pruned = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**{**config.to_dict(), "architectures": None}))
    # pruned.config: the one transformers resolved (attention implementation set), as vLLM's is
    pruned.model.layers = torch.nn.ModuleList(Qwen3DecoderLayer(widths.layer_config(pruned.config, i), i) for i in range(2))
    from safetensors.torch import load_file
    state = {}
    for f in (tmp_path / "pruned").glob("*.safetensors"):
        state.update(load_file(str(f)))
    pruned.load_state_dict(state, strict=True)  # every tensor of the checkpoint has its place and shape
    ids = torch.randint(0, 128, (2, 20), generator=torch.Generator().manual_seed(7))
    with torch.no_grad(), ddp.gated(model, g["heads"], g["channels"]):
        expected = model(ids).logits
    with torch.no_grad():
        got = pruned.eval()(ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert widths.tensor_parallel_problems(config, 1) == []
    # 2 query heads do not split over 4 ranks; 4 heads over 2 KV heads (replicated) and 56 channels do
    assert widths.tensor_parallel_problems(config, 4) == ["layer 0: 2 heads, 1 KV heads, 56 MLP channels over 4 ranks"]


def test_bad_per_layer_configs_are_named():
    c = types.SimpleNamespace(num_hidden_layers=2, layer_num_attention_heads=[4, 4], layer_num_key_value_heads=[2, 3],
                              layer_intermediate_size=[8, 8], head_dim=16)
    with pytest.raises(ValueError, match="layer 1 has 4 query heads over 3 KV heads"):
        widths.check(c)
    c.layer_intermediate_size = [8]
    with pytest.raises(ValueError, match="expected layer_intermediate_size to list 2 positive integers"):
        widths.check(c)


def test_register_is_the_entry_point_and_is_reentrant(monkeypatch):
    calls = []

    class ModelRegistry:  # stand-in for vllm.ModelRegistry (vLLM is not installable here)
        @staticmethod
        def get_supported_archs():
            return [a for a, _ in calls]

        @staticmethod
        def register_model(arch, path):
            calls.append((arch, path))

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(ModelRegistry=ModelRegistry))
    entry = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]["entry-points"]["vllm.general_plugins"]["slipstream"]
    module, func = entry.split(":")
    assert (module, func) == ("slipstream_vllm", "register")
    getattr(slipstream_vllm, func)()
    slipstream_vllm.register()  # vLLM calls it in every process
    assert calls == [("Qwen3PrunedForCausalLM", "slipstream_vllm.qwen3_pruned:Qwen3PrunedForCausalLM")]
    assert json.dumps(calls)  # plain strings: vLLM imports the class lazily
