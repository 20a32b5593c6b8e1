"""The pack's hooks on WanMini (models/wan-mini, trained weights, real torch on the CPU) run the
way ComfyUI runs a Wan model. ComfyUI's ModelPatcher, sampler and attention dispatch are a
stand-in (comfy_standin.py says what it mirrors); the kernels are libslipstream's."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from comfy_standin import OVERRIDE, ComfyWan, ModelPatcher, attention_pytorch, sample
from slipstream_comfy import params as P
from slipstream_comfy.attention import SlipstreamAttention, index_wan_blocks, install as install_attention
from slipstream_comfy.delta_cache import DeltaCache, block_keys, install as install_cache

sys.path.insert(0, str(__import__("comfy_standin").ROOT / "models" / "wan-mini"))
from sample import load_model, sigmas as schedule  # noqa: E402
from prompts import PromptTable  # noqa: E402
from model import WanMini  # noqa: E402

STEPS = 4


@pytest.fixture(scope="module")
def mini():
    return load_model(str(__import__("comfy_standin").ROOT / "models" / "wan-mini"))


@pytest.fixture(scope="module")
def base(mini):
    return ModelPatcher(ComfyWan(mini))


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 16, 8, 16, 16, generator=g)
    return x, PromptTable().encode_text("red circle right"), schedule(STEPS, 1.0)


@pytest.fixture(scope="module")
def reference(base, inputs):
    return sample(base, *inputs)


def attention_params(**over):
    return P.parse("sparse-attention", {"start_percent": 0.0, **over}, "SlipstreamAttention")


def test_the_stand_in_runs_wanmini_exactly(mini, base, inputs):
    x, ctx, sig = inputs
    t = torch.full((1,), sig[3] * 1000.0)
    with torch.no_grad():
        assert torch.equal(base.diffusion_model(x, t, ctx, {}), mini(x, t, ctx))


def test_parameters_come_from_the_manifests_and_bad_values_name_the_field():
    p = P.parse("sparse-attention", {}, "SlipstreamAttention")
    assert p == {"topk": 0.5, "topp": 0.0, "startPercent": 0.2, "endPercent": 1.0, "denseBlocks": 1, "precision": "int8"}
    assert [q.name for q in P.plugin_params("delta-cache")][:4] == ["threshold", "max_skips", "warmup_steps", "final_steps"]
    with pytest.raises(ValueError, match="SlipstreamAttention: expected topk at most 1"):
        P.parse("sparse-attention", {"topk": 2}, "SlipstreamAttention")
    with pytest.raises(ValueError, match="SlipstreamDeltaCache: expected threshold above 0"):
        P.parse("delta-cache", {"threshold": 0}, "SlipstreamDeltaCache")
    with pytest.raises(ValueError, match="unknown input 'topq'"):
        P.parse("sparse-attention", {"topq": 0.1}, "SlipstreamAttention")
    with pytest.raises(ValueError, match="expected precision one of"):
        P.parse("sparse-attention", {"precision": "fp8"}, "SlipstreamAttention")


def record_calls(base, inputs, steps=3):
    """(args, kwargs) of every attention call of a short run, and whether it was self-attention."""
    calls = []

    def recorder(func, *args, **kwargs):
        calls.append((args, {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)

    m = base.clone()
    m.model_options["transformer_options"][OVERRIDE] = recorder
    x, ctx, _ = inputs
    sample(m, x, ctx, schedule(steps, 1.0))
    return calls


def float64_attention(q, k, v, heads, keep=None):  # noqa: D103
    b, n, hd = q.shape
    d = hd // heads
    q, k, v = (t.double().view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    if keep is not None:
        s = s.masked_fill(~keep, float("-inf"))
    return (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, n, hd)


@pytest.mark.parametrize("mode", ["low-bit", "sparse"])
def test_every_call_it_takes_is_within_sageattentions_bound(base, inputs, mode):
    # Issue 5's bar for low-bit attention: rel L1 <= 0.02 and cosine >= 0.9995 against float64 (the
    # sparse kernel on the kept tiles, against float64 on the same tiles). On the CPU the hook runs
    # slip_attn_lowbit (INT8 QK, BF16 PV).
    hook = SlipstreamAttention(attention_params(), mode=mode)
    taken = 0
    for args, kwargs in record_calls(base, inputs):
        kwargs = dict(kwargs, transformer_options=dict(kwargs["transformer_options"], block_index=1))
        out = hook(attention_pytorch, *args, **kwargs)
        q, k, v = args
        heads = kwargs["heads"]
        if k.shape != q.shape:
            assert torch.equal(out, attention_pytorch(*args, **kwargs))  # cross-attention: declined
            continue
        taken += 1
        keep = None
        if mode == "sparse":
            mask = torch.ops.slipstream.sparse_predict(*(t.view(t.shape[0], t.shape[1], heads, -1) for t in (q, k)), False, 0.0, "NHD")
            n = q.shape[1]
            keep = mask.bool().repeat_interleave(128, 2)[:, :, :n].repeat_interleave(64, 3)[..., :n]
        ref = float64_attention(q, k, v, heads, keep)
        rel = ((out.double() - ref).abs().sum() / ref.abs().sum()).item()
        cos = F.cosine_similarity(out.double().flatten(), ref.flatten(), 0).item()
        assert rel <= 0.02 and cos >= 0.9995, (rel, cos)
    assert taken > 0 and hook.stats.calls == taken


def sla2_file(path, blocks, heads, dim, critical=0.25, alpha=None, seed=5):
    """A slipstream-sla2/1 file of random near-identity routers and projections (what a trained
    file looks like, without the training) for the given blocks."""
    from slipstream_torch import sla2
    g = torch.Generator().manual_seed(seed)
    near_eye = lambda s: torch.eye(dim) + s * torch.randn(dim, dim, generator=g)  # noqa: E731
    w = {i: sla2.SLA2Weights(near_eye(0.2), near_eye(0.2),
                             alpha if alpha is not None else torch.rand(heads, generator=g) * 0.8 + 0.1,
                             near_eye(0.05), 0.01 * torch.randn(dim, generator=g)) for i in blocks}
    sla2.save(path, sla2.SLA2Config(critical, 0.0, "softmax", 64, 32), w)
    return path


@pytest.mark.parametrize("loop_sets_index", [True, False], ids=["newer-loop", "0.3.64-loop"])
def test_sparse_linear_is_slip_sla_forward_on_the_blocks_its_file_names(mini, inputs, tmp_path, loop_sets_index):
    # Every self-attention call of a block the file names is SLA2 as the native FP32 definition
    # computes it (slip_sla_route_predict + slip_sla_forward on the same q, k, v); blocks it does
    # not name go to ComfyUI's attention untouched.
    # ComfyUI 0.3.64's Wan loop sets no block_index: the node's per-block replace entries supply it.
    from slipstream_comfy import nodes
    from slipstream_torch import attention as A
    base = ModelPatcher(ComfyWan(mini, sets_block_index=loop_sets_index))
    heads = mini.blocks[0].self_attn.heads
    dim = mini.blocks[0].self_attn.q.out_features // heads
    path = sla2_file(tmp_path / "sla2.safetensors", [1], heads, dim)
    m = nodes.apply_attention(base, {"mode": "sparse-linear", "sla_weights": str(path), "dense_blocks": 0,
                                     "start_percent": 0.0})
    hook = m.model_options["transformer_options"][OVERRIDE]
    config, blocks = hook.sla
    indexed = base.clone()
    index_wan_blocks(indexed)  # what the node installed besides the override
    taken = 0
    for args, kwargs in record_calls(indexed, inputs):
        q, k, v = args
        out = hook(attention_pytorch, *args, **kwargs)
        block = kwargs["transformer_options"]["block_index"]
        if k.shape != q.shape or block != 1:
            assert torch.equal(out, attention_pytorch(*args, **kwargs))
            continue
        taken += 1
        b, n, _ = q.shape
        qh, kh, vh = (t.view(b, n, heads, dim).transpose(1, 2).contiguous().numpy() for t in (q, k, v))
        opts = {"critical": config.critical, "negligible": 0.0, "feature_map": "softmax", "block_q": 64, "block_k": 32}
        w = blocks[1]
        r, _ = A.sla_route(qh, kh, router_wq=w.router_wq.numpy(), router_wk=w.router_wk.numpy(), **opts)
        ref = torch.from_numpy(A.sla_forward(qh, kh, vh, r, w.alpha.numpy(), w.proj_w.numpy(), w.proj_b.numpy(), **opts))
        ref = ref.transpose(1, 2).reshape(b, n, heads * dim)
        # FP32 sums of at most n terms in another order on each side (test_sla2_inference.py's bound).
        assert (out - ref).abs().max().item() <= n * 2.0 ** -24 * ref.abs().max().item() * 4
    assert taken > 0 and hook.stats.calls == taken
    assert 0 < hook.stats.summary()["sparsity"] < 1


def test_sparse_linear_with_every_tile_critical_and_alpha_one_is_exact_attention(base, inputs, tmp_path):
    # critical 1 puts every tile in the softmax branch and α = 1 drops the linear branch: SLA2 is
    # then plain attention, which the CPU path computes in FP32 (rel L1 against float64 ~1e-7).
    mini = base.diffusion_model
    heads = mini.blocks[0].self_attn.heads
    dim = mini.blocks[0].self_attn.q.out_features // heads
    blocks = range(len(mini.blocks))
    path = sla2_file(tmp_path / "exact.safetensors", blocks, heads, dim, critical=1.0, alpha=torch.ones(heads) - 1e-7)
    from slipstream_comfy import nodes
    hook = nodes.apply_attention(base, {"mode": "sparse-linear", "sla_weights": str(path), "dense_blocks": 0,
                                        "start_percent": 0.0}).model_options["transformer_options"][OVERRIDE]
    for args, kwargs in record_calls(base, inputs, steps=2):
        out = hook(attention_pytorch, *args, **kwargs)
        if args[1].shape != args[0].shape:
            continue
        ref = float64_attention(*args, kwargs["heads"])
        assert ((out.double() - ref).abs().sum() / ref.abs().sum()).item() <= 1e-5


def test_sparse_linear_names_a_bad_weights_file(base, tmp_path):
    from slipstream_comfy import nodes
    with pytest.raises(ValueError, match="SlipstreamAttention: cannot read SLA2 weights .*missing.safetensors"):
        nodes.apply_attention(base, {"mode": "sparse-linear", "sla_weights": str(tmp_path / "missing.safetensors")})
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk")
    with pytest.raises(ValueError, match="SlipstreamAttention: .*junk.safetensors"):
        nodes.apply_attention(base, {"mode": "sparse-linear", "sla_weights": str(tmp_path / "junk.safetensors")})


def test_declined_everywhere_is_the_unpatched_model_bit_for_bit(base, inputs, reference):
    # start_percent 1: no step is inside [1, 1): every call goes to ComfyUI's own attention.
    m = base.clone()
    reports = []
    hook = install_attention(m, SlipstreamAttention(attention_params(start_percent=1.0), report=reports.append))
    assert torch.equal(sample(m, *inputs), reference)
    assert hook.stats.calls == 0 and hook.stats.declined > 0
    assert reports == [hook.stats.summary()]  # one report per run


def test_composes_with_an_override_installed_first(base, inputs):
    seen = {"self": 0, "cross": 0}

    def other_pack(func, *args, **kwargs):
        seen["self" if args[1].shape == args[0].shape else "cross"] += 1  # q, k, v; heads by keyword
        return func(*args, **kwargs)

    m = base.clone()
    m.model_options["transformer_options"][OVERRIDE] = other_pack
    patched = m.clone()
    hook = install_attention(patched, SlipstreamAttention(attention_params(), mode="low-bit"))
    out = sample(patched, *inputs)
    assert torch.isfinite(out).all()
    blocks = len(base.diffusion_model.blocks)
    # Every cross-attention call, and block 0's self-attention (dense_blocks 1), reach the other pack.
    assert seen["cross"] == STEPS * blocks and seen["self"] == STEPS
    assert hook.stats.calls == STEPS * (blocks - 1)
    assert hook.stats.summary()["per_step"] == []  # low-bit: no sparse calls
    assert m.model_options["transformer_options"][OVERRIDE] is other_pack  # the source is untouched


def test_reinstalled_on_top_of_a_later_override_that_did_not_chain(base, inputs):
    late = {"calls": 0}

    def later_node(func, *args, **kwargs):
        late["calls"] += 1
        return func(*args, **kwargs)

    m = base.clone()
    hook = install_attention(m, SlipstreamAttention(attention_params(), mode="low-bit"))
    m.model_options["transformer_options"][OVERRIDE] = later_node  # replaced, not chained
    sample(m, *inputs)
    assert hook.stats.calls > 0 and late["calls"] == hook.stats.declined


def test_low_precision_attention_false_is_honoured(base, inputs):
    args, kwargs = next((a, k) for a, k in record_calls(base, inputs, steps=1) if a[1].shape == a[0].shape)
    kwargs = dict(kwargs, transformer_options=dict(kwargs["transformer_options"], block_index=3), low_precision_attention=False)
    hook = SlipstreamAttention(attention_params(), mode="low-bit")
    assert torch.equal(hook(attention_pytorch, *args, **kwargs), attention_pytorch(*args, **kwargs))
    assert hook.stats.calls == 0


def cache_params(**over):
    return P.parse("delta-cache", over, "SlipstreamDeltaCache")


def test_delta_cache_that_never_skips_is_the_unpatched_model_bit_for_bit(base, inputs, reference):
    m = base.clone()
    cache = install_cache(m, DeltaCache(cache_params(threshold=1e-12)), block_keys(base.diffusion_model))
    assert torch.equal(sample(m, *inputs), reference)
    assert cache.last_stats["blocks_skipped"] == 0 and cache.run is None


def test_delta_cache_skips_blocks_chains_a_previous_replace_and_frees_its_state(base, inputs, reference):
    calls = []

    def other_pack(args, extra):
        calls.append(args["transformer_options"]["block_index"])
        return extra["original_block"](args)

    m = base.clone()
    blocks = len(base.diffusion_model.blocks)
    for i in range(blocks):
        m.set_model_patch_replace(other_pack, "dit", "double_block", i)
    x, ctx, _ = inputs
    sig = schedule(30, 1.0)
    ref = sample(m, x, ctx, sig)
    calls.clear()
    cached = m.clone()
    lines = []
    cache = install_cache(cached, DeltaCache(cache_params(), progress=lines.append), block_keys(base.diffusion_model))
    out = sample(cached, x, ctx, sig)
    st = cache.last_stats
    assert st["blocks_skipped"] > 0 and st["blocks_computed"] + st["blocks_skipped"] == 30 * blocks
    assert len(calls) == st["blocks_computed"]  # computed blocks went through the other pack's entry
    assert cache.run is None  # nothing cached outlives the run
    assert [s for s, _, _ in st["per_step"]] == list(range(30))
    assert len(lines) == 30 and lines[0] == "step 1/30: 0 of 0 blocks skipped so far"
    assert lines[-1].startswith("step 30/30: ")
    assert sum(c for _, c, _ in st["per_step"]) == st["blocks_computed"] and all(k == 0 for _, _, k in st["per_step"][:4])
    rel = ((out - ref).norm() / ref.norm()).item()
    print(f"delta cache: {st}, relative L2 of the sample against the uncached run {rel:.4f}")
    assert rel < cache.params["threshold"] * blocks  # each block's predicted error stays <= threshold


def test_nodes_clone_build_widgets_from_the_manifests_and_name_bad_fields(base):
    from slipstream_comfy import nodes

    assert [(k, n) for k, n, _ in nodes.widget_specs("SlipstreamAttention")] == [
        ("Combo", "mode"), ("Int", "min_tokens"), ("Float", "topk"), ("Float", "topp"), ("Float", "start_percent"),
        ("Float", "end_percent"), ("Int", "dense_blocks"), ("Combo", "precision"), ("String", "sla_weights")]
    assert [n for _, n, _ in nodes.widget_specs("SlipstreamDeltaCache")] == \
        ["threshold", "max_skips", "warmup_steps", "final_steps", "purify", "outlier_ratio", "purify_precision",
         "cache_device", "verbose"]
    m = nodes.apply_attention(base, {"topk": 0.25, "mode": "low-bit"})
    assert OVERRIDE not in base.model_options["transformer_options"]
    hook = m.model_options["transformer_options"][OVERRIDE]
    assert hook.params["topk"] == 0.25 and hook.mode == "low-bit"
    c = nodes.apply_delta_cache(base, {"max_skips": 3, "cache_device": "cpu"})
    assert len(c.model_options["transformer_options"]["patches_replace"]["dit"]) == len(base.diffusion_model.blocks)
    assert "patches_replace" not in base.model_options["transformer_options"]
    with pytest.raises(ValueError, match="SlipstreamDeltaCache: unknown input 'purity'"):
        nodes.apply_delta_cache(base, {"purity": False})
    with pytest.raises(ValueError, match="SlipstreamDeltaCache: expected purify_precision one of"):
        nodes.apply_delta_cache(base, {"purify_precision": "fp8"})
    with pytest.raises(ValueError, match="SlipstreamAttention: expected mode one of"):
        nodes.apply_attention(base, {"mode": "dense"})
    with pytest.raises(ValueError, match="SlipstreamDeltaCache: Linear has no transformer block list"):
        nodes.apply_delta_cache(ModelPatcher(torch.nn.Linear(2, 2)), {})


def test_delta_cache_caches_every_stream_a_flux_double_block_returns():
    # Flux's double blocks take and return "img" and "txt"; a skip must re-add both residuals.
    flux_like = torch.nn.Module()
    flux_like.double_blocks, flux_like.single_blocks = torch.nn.ModuleList([torch.nn.Identity()] * 2), torch.nn.ModuleList([torch.nn.Identity()])
    assert block_keys(flux_like) == [("double_block", 0), ("double_block", 1), ("single_block", 0)]
    cache = DeltaCache(cache_params(threshold=10.0, warmup_steps=2, max_skips=16))
    entry = cache.block(("double_block", 0))
    sched = torch.linspace(1, 0, 9)
    cache.run = __import__("slipstream_comfy.delta_cache", fromlist=["_Run"])._Run(cache.params, None)
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(1, 4, 8, generator=g), torch.randn(1, 3, 8, generator=g)
    original = lambda a: {"img": a["img"] * 1.5 + 1, "txt": a["txt"] - 2}  # noqa: E731
    outs = []
    for step in range(8):
        args = {"img": img, "txt": txt, "transformer_options": {"sigmas": sched[step:step + 1], "sample_sigmas": sched, "uuids": ["c"]}}
        outs.append(entry(args, {"original_block": original}))
    assert cache.run.stats.skipped > 0
    for o in outs:  # a constant residual: skipped or computed, both streams come out the same
        assert torch.allclose(o["img"], img * 1.5 + 1) and torch.equal(o["txt"], txt - 2)


def test_profile_node_applies_every_plugin_it_names_and_names_bad_fields(base, tmp_path):
    from slipstream_comfy import nodes

    good = tmp_path / "p.json"
    good.write_text('{"sparse-attention": {"topk": 0.3}, "delta-cache": {"maxSkips": 4}}')
    m = nodes.apply_profile(base, {"profile": str(good)})
    to = m.model_options["transformer_options"]
    assert to[OVERRIDE].params["topk"] == 0.3 and to[OVERRIDE].params["startPercent"] == 0.2
    assert len(to["patches_replace"]["dit"]) == len(base.diffusion_model.blocks)
    assert to["patches_replace"]["dit"][("double_block", 0)].__closure__ is not None
    assert OVERRIDE not in base.model_options["transformer_options"]
    for text, message in [('{"delta-cache": {"maxSkips": 99}}', r"p\.json: delta-cache: expected max_skips at most 16"),
                          ('{"sparse-atention": {}}', r"p\.json: unknown plugin 'sparse-atention'"),
                          ('{"delta-cache": {"max_skips": 2}}', r"p\.json: delta-cache: unknown parameter 'max_skips'"),
                          ('{"delta-cache": ', r"p\.json: invalid JSON at line 1")]:
        good.write_text(text)
        with pytest.raises(ValueError, match=message):
            nodes.apply_profile(base, {"profile": str(good)})
    with pytest.raises(ValueError, match="cannot read"):
        nodes.apply_profile(base, {"profile": str(tmp_path / "missing.json")})
