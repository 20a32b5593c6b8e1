"""slipstream_torch.sla2, SLA2 inference in torch, against the native definition (slip_sla_route_predict
and slip_sla_forward, FP32 on the CPU), and its weights file. Real torch, real safetensors."""

import math

import pytest
import torch

from slipstream_torch import attention as A
from slipstream_torch import sla2
from slipstream_torch.training import SLA2Attention

B, H, N, D = 1, 2, 700, 64  # 700 tokens: short last blocks of queries (128) and keys (64)


def inputs(hk=H, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, N, D, generator=g)
    k = torch.randn(B, hk, N, D, generator=g) + 0.5  # a key mean for smooth-K to remove
    v = torch.randn(B, hk, N, D, generator=g)
    return q, k, v


def weights(seed=1):
    g = torch.Generator().manual_seed(seed)
    near_eye = lambda s: torch.eye(D) + s * torch.randn(D, D, generator=g)  # noqa: E731
    return sla2.SLA2Weights(near_eye(0.1), near_eye(0.1), torch.tensor([0.3, 0.7]), near_eye(0.05),
                            0.1 * torch.randn(D, generator=g))


def native(q, k, v, w, cfg):
    opts = {"critical": cfg.critical, "negligible": cfg.negligible, "feature_map": cfg.feature_map,
            "block_q": cfg.block_q, "block_k": cfg.block_k}
    r, _ = A.sla_route(q.numpy(), k.numpy(), router_wq=w.router_wq.numpy(), router_wk=w.router_wk.numpy(), **opts)
    out = A.sla_forward(q.numpy(), k.numpy(), v.numpy(), r, w.alpha.numpy(), w.proj_w.numpy(), w.proj_b.numpy(), **opts)
    return torch.from_numpy(r), torch.from_numpy(out)


@pytest.mark.parametrize("feature_map", sla2.FEATURE_MAPS)
@pytest.mark.parametrize("critical,negligible,hk,blocks", [(0.1, 0.0, H, (128, 64)), (0.2, 0.3, H, (64, 32)),
                                                            (0.05, 0.5, 1, (128, 64))])
def test_route_and_output_are_the_native_ones(feature_map, critical, negligible, hk, blocks):
    q, k, v = inputs(hk)
    w, cfg = weights(), sla2.SLA2Config(critical, negligible, feature_map, *blocks)
    r_ref, ref = native(q, k, v, w, cfg)
    r = sla2.route(q, k.repeat_interleave(H // hk, 1), w, cfg, 1 / math.sqrt(D))
    assert torch.equal(r, r_ref)  # the same ranking of the same pooled scores (ties have probability 0)
    assert (r == 2).sum(-1).min() >= 1
    out = sla2.attention(q, k, v, w, cfg)
    # Both sides sum at most N products of FP32 values in different orders: |error| <= N * 2^-24
    # of the magnitudes summed, which the output's own scale bounds here (softmax and the linear
    # branch are convex combinations of v; the projection is near the identity).
    bound = N * 2.0 ** -24 * ref.abs().max().item() * 4
    assert (out - ref).abs().max().item() <= bound
    nhd = sla2.attention(*(t.transpose(1, 2) for t in (q, k, v)), w, cfg, layout="NHD")
    assert torch.equal(nhd.transpose(1, 2), out)


def test_a_trained_module_exports_what_it_computes(tmp_path):
    q, k, v = inputs()
    m = SLA2Attention(H, D, critical=0.1, feature_map="elu", block_q=64, block_k=32)
    with torch.no_grad():
        for p, t in zip((m.router_wq, m.router_wk, m.proj_w), (weights().router_wq, weights().router_wk, weights().proj_w)):
            p.copy_(t)
        m.alpha_logit.copy_(torch.tensor([-1.0, 2.0]))
        m.proj_b.copy_(torch.linspace(-0.1, 0.1, D))
    w, cfg = sla2.from_module(m), sla2.SLA2Config(0.1, 0.0, "elu", 64, 32)
    with torch.no_grad():
        want = m(q, k, v)
    got = sla2.attention(q, k, v, w, cfg)
    assert (got - want).abs().max().item() <= N * 2.0 ** -24 * want.abs().max().item() * 4
    path = tmp_path / "sla2.safetensors"
    sla2.save(path, cfg, {0: w, 3: w})
    cfg2, blocks = sla2.load(path)
    assert cfg2 == cfg and sorted(blocks) == [0, 3]
    for name in ("router_wq", "router_wk", "alpha", "proj_w", "proj_b"):
        assert torch.equal(getattr(blocks[3], name), getattr(w, name))
    assert not list(tmp_path.glob("*.tmp-*"))


def test_bad_weight_files_are_named(tmp_path):
    from safetensors.torch import save_file

    w, cfg = weights(), sla2.SLA2Config()
    good = tmp_path / "good.safetensors"
    sla2.save(good, cfg, {0: w})
    meta = {"format": sla2.FORMAT, "critical": "0.05", "negligible": "0.0", "feature_map": "softmax", "block_q": "128",
            "block_k": "64"}
    full = {f"blocks.0.{n}": getattr(w, n).clone() for n in ("router_wq", "router_wk", "alpha", "proj_w", "proj_b")}
    cases = {
        "unknown tensor 'blocks.0.router_wv'": {**full, "blocks.0.router_wv": w.router_wq},
        "block 0 lacks blocks.0.proj_b": {k: t for k, t in full.items() if k != "blocks.0.proj_b"},
        r"blocks.0.router_wk: expected shape \[64, 64\]": {**full, "blocks.0.router_wk": torch.zeros(64, 32)},
        "blocks.0.proj_w: non-finite": {**full, "blocks.0.proj_w": torch.full((D, D), float("nan"))},
        r"blocks.0.alpha: expected a vector of values in \(0, 1\)": {**full, "blocks.0.alpha": torch.tensor([0.5, 1.5])},
    }
    for message, tensors in cases.items():
        path = tmp_path / "bad.safetensors"
        save_file({k: t.clone().contiguous() for k, t in tensors.items()}, str(path), metadata=meta)
        with pytest.raises(ValueError, match=f"bad.safetensors: {message}"):
            sla2.load(path)
    save_file(full, str(tmp_path / "meta.safetensors"), metadata={**meta, "critical": "2"})
    with pytest.raises(ValueError, match=r"meta.safetensors: expected critical in \(0, 1\]"):
        sla2.load(tmp_path / "meta.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read SLA2 weights .*cut.safetensors"):
        sla2.load(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="SLA2 weights for 2 heads of dim 64, got q with 3 heads"):
        sla2.attention(torch.zeros(1, 3, 10, D), torch.zeros(1, 3, 10, D), torch.zeros(1, 3, 10, D), w, cfg)
