"""slipstream_torch.ddp on a small random Qwen3 (transformers' own model class, real torch, CPU)."""

import math

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="installed by scripts/python-env.js from requirements-test.txt")

from slipstream_torch import ddp  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    return transformers.Qwen3ForCausalLM(cfg).eval()


def batches(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (2, 24), generator=g) for _ in range(n)]


def test_unit_gates_leave_the_model_alone_and_zero_gates_remove_whole_gqa_groups(model):
    ids = batches(1)[0]
    with torch.no_grad():
        ref = model(ids).logits
        with ddp.gated(model, torch.ones(2, 2), torch.ones(2, 96)):
            assert torch.equal(model(ids).logits, ref)
        heads = torch.ones(2, 2)
        heads[1, 0] = 0
        with ddp.gated(model, heads, None):
            gated = model(ids).logits
        o = model.model.layers[1].self_attn.o_proj.weight
        saved = o.detach().clone()
        o.data[:, :32] = 0  # KV group 0 of layer 1: its 2 query heads x 16 dims
        zeroed = model(ids).logits
        o.data.copy_(saved)
    assert torch.allclose(gated, zeroed, atol=1e-6) and not torch.allclose(gated, ref, atol=1e-3)


def test_score_anneals_to_a_sharper_gate():
    z = torch.tensor([-0.2, 0.05, 0.3, 0.6, 1.0])
    early, late = ddp.score(z, 0.0), ddp.score(z, 1.0)
    assert torch.all((early >= 0) & (early <= 1)) and torch.all((late >= 0) & (late <= 1))
    assert late[0] == 0 and late[-1] == 1  # saturated at the ends
    # threshold m: 0.5 at the start (s = 0.5 at z = m), 0.1 at the end
    assert ddp.score(torch.tensor([0.5]), 0.0).item() == pytest.approx(0.5, abs=1e-6)
    assert ddp.score(torch.tensor([0.1]), 1.0).item() == pytest.approx(0.5, abs=1e-6)


def test_training_reaches_the_target_with_frozen_weights_and_near_binary_scores(model):
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pruner = ddp.DDP(model, ddp.DDPConfig(target=0.5, steps=150, warmup=10, distill=2.0))
    hist = pruner.train(batches())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # only the mask logits trained
    last = hist[-1]
    for kind in ("heads", "channels"):
        assert abs(last[f"{kind}_sparsity"] - 0.5) < 0.1, last
        # mean s(1 - s) is 0.25 for undecided scores; the binarisation term drives it well below that.
        assert last[f"{kind}_binary_gap"] < 0.25 / 4, last
    gates = pruner.deployment_gates()
    assert int((gates["heads"] > 0).sum()) == ddp.keep_count(4, 0.5) == 2
    assert int((gates["channels"] > 0).sum()) == ddp.keep_count(192, 0.5) == 96


def test_folding_the_deployment_gates_computes_what_the_gated_model_does(model, tmp_path):
    from safetensors.torch import load_file

    pruner = ddp.DDP(model, ddp.DDPConfig(target=0.25, steps=5, warmup=1, distill=0.0), seed=3)
    pruner.train(batches(2))
    gates = pruner.deployment_gates()
    ids = batches(1, seed=9)[0]
    with torch.no_grad(), ddp.gated(model, gates["heads"], gates["channels"]):
        expected = model(ids).logits
    folded = transformers.Qwen3ForCausalLM(model.config).eval()
    folded.load_state_dict(model.state_dict())
    ddp.fold(folded, gates)
    with torch.no_grad():
        assert torch.allclose(folded(ids).logits, expected, atol=1e-5, rtol=1e-5)
    path = tmp_path / "masks.safetensors"
    ddp.save_masks(str(path), gates, 2)
    masks = load_file(str(path))
    assert sorted(masks) == ["model.layers.0.mlp.channel_gate", "model.layers.0.self_attn.kv_group_gate",
                             "model.layers.1.mlp.channel_gate", "model.layers.1.self_attn.kv_group_gate"]
    assert torch.equal(masks["model.layers.1.mlp.channel_gate"], gates["channels"][1])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_baselines_keep_the_target_count_across_layers(model, method):
    g = ddp.magnitude_gates(model, 0.5) if method == "magnitude" else ddp.wanda_gates(model, batches(2), 0.5)
    assert g["heads"].shape == (2, 2) and g["channels"].shape == (2, 96)
    assert int(g["heads"].sum()) == 2 and int(g["channels"].sum()) == math.ceil(192 * 0.5)
    assert set(g["heads"].unique().tolist()) <= {0.0, 1.0}


def test_hard_concrete_baseline_trains_to_the_target_with_stochastic_gates(model):
    torch.manual_seed(5)
    pruner = ddp.DDP(model, ddp.DDPConfig(target=0.5, steps=400, warmup=10, distill=0.0, method="hard-concrete"))
    last = pruner.train(batches())[-1]
    for kind in ("heads", "channels"):
        assert abs(last[f"{kind}_sparsity"] - 0.5) < 0.1, last  # expected l0 against the target
    gates = pruner.deployment_gates()
    assert int((gates["channels"] > 0).sum()) == 96 and bool(((gates["heads"] >= 0) & (gates["heads"] <= 1)).all())
