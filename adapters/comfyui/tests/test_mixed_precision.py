"""SlipstreamMixedPrecision on WanMini (trained weights, real torch on the CPU) run the way ComfyUI
runs a Wan model (comfy_standin.py, a stand-in for ComfyUI's patcher and sampler, says what it
mirrors). The quantized values are the native codecs' (slip_quantize / slip_dequantize)."""

import json

import numpy as np
import pytest
import torch

from comfy_standin import sample
from test_hooks import schedule  # noqa: E402
from slipstream_comfy import mixed_precision as MP
from slipstream_comfy import nodes
from slipstream_torch import quant
from test_hooks import base, inputs, mini, reference  # noqa: F401  (module fixtures)


def calibration(tmp_path, threshold):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"format": "slipstream-profile/1", "dmpq": {"gammaThreshold": threshold}}))
    return str(path)


def run(base, inputs, **widgets):  # noqa: F811
    m = nodes.apply_mixed_precision(base, widgets)
    out = sample(m, *inputs)
    state = m.model_options["transformer_options"]["wrappers"]["outer_sample"]["slipstream_mixed_precision"][0].__self__
    return out, state


@pytest.mark.parametrize("precision", ["nvfp4", "int8", "full"])
def test_a_linear_computes_on_the_native_codecs_values(mini, precision):  # noqa: F811
    linear = mini.blocks[0].ffn[0]
    state = MP.DMPQ({"route": precision, "hadamardBlock": 128})
    q = MP.QuantLinear(linear, state, 0, 128)
    state.forced.value = precision
    x = torch.randn(3, 7, linear.in_features, generator=torch.Generator().manual_seed(0))
    got = q(x)
    w = quant.hadamard(linear.weight.detach().numpy(), 128)
    wq = quant.dequantize(quant.quantize(w, "NVFP4"), w.shape)
    xr = quant.hadamard(x.reshape(-1, x.shape[-1]).numpy(), 128)
    if precision == "nvfp4":
        xr = quant.dequantize(quant.quantize(xr, "NVFP4"), xr.shape)
    elif precision == "int8":
        xr = quant.dequantize(quant.quantize(xr, "INT8", granularity="row"), xr.shape)
    want = xr.astype(np.float64) @ wq.astype(np.float64).T + linear.bias.detach().numpy()
    # our values, a float32 GEMM: K = 256 products of quantized values, rounding ~ K * 2^-24 of |x||w| sums
    bound = 256 * 2 ** -24 * (np.abs(xr) @ np.abs(wq).T).max()
    assert np.abs(got.detach().reshape(want.shape).numpy() - want).max() <= bound


def test_dmpq_routes_by_the_previous_steps_gamma_and_errors_order_as_the_formats(base, inputs, reference, tmp_path):  # noqa: F811
    errs = {}
    for route in ("full", "int8", "nvfp4"):
        out, _ = run(base, inputs, route=route, hadamard_block=128)
        errs[route] = ((out - reference).norm() / reference.norm()).item()
    # against the unquantized model: INT8 activations (255 levels a token) add little to the NVFP4
    # weights' error, NVFP4 activations (15 levels a block of 16) clearly more
    assert 0 < errs["full"] < errs["nvfp4"] and abs(errs["int8"] - errs["full"]) < 0.1 * (errs["nvfp4"] - errs["full"]), errs
    # a threshold between the blocks' Γ values: both precisions used, and nothing NVFP4 at step 0
    _, probe = run(base, inputs, mode="calibrate", calibration=str(tmp_path / "probe.json"))
    gammas = sorted(g for g, _ in probe.last_samples)
    out, state = run(base, inputs, route="dmpq", calibration=calibration(tmp_path, gammas[len(gammas) // 2]))
    per_step = dict(state.last_stats["per_step"])
    assert per_step[0]["nvfp4"] == 0 and per_step[0]["int8"] == len(base.diffusion_model.blocks)
    counts = state.last_stats["blocks_by_precision"]
    assert counts["nvfp4"] > 0 and counts["int8"] > 0 and counts["full"] == 0
    dmpq = ((out - reference).norm() / reference.norm()).item()
    assert errs["int8"] <= dmpq <= errs["nvfp4"]


def test_calibrate_keeps_the_reference_pass_and_writes_the_fit(base, inputs, tmp_path):  # noqa: F811
    path = tmp_path / "sub" / "cal.json"
    out, state = run(base, inputs, mode="calibrate", calibration=str(path))
    full, _ = run(base, inputs, route="full")
    assert torch.equal(out, full)  # the run's output is the unquantized-activation pass
    data = json.loads(path.read_text())
    blocks, steps = len(base.diffusion_model.blocks), len(inputs[2]) - 1
    assert data["format"] == "slipstream-profile/1" and data["dmpq"]["samples"] == blocks * (steps - 1)
    assert data["dmpq"]["gammaThreshold"] >= 0 and data["dmpq"]["targetError"] > 0
    assert [p.name for p in path.parent.iterdir()] == ["cal.json"]  # no temp file left
    assert MP.read_threshold(path) == data["dmpq"]["gammaThreshold"]


def test_bad_calibration_files_name_the_file_and_the_field(base, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="cannot read calibration .*missing.json"):
        nodes.apply_mixed_precision(base, {"calibration": str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    for text, message in [("{", "invalid JSON at line 1"), ('{"format": "x"}', 'expected format "slipstream-profile/1"'),
                          ('{"format": "slipstream-profile/1", "dmpq": {"gammaThreshold": -1}}', "expected dmpq.gammaThreshold a finite number"),
                          ('{"format": "slipstream-profile/1"}', "expected dmpq.gammaThreshold a finite number")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"SlipstreamMixedPrecision: .*bad.json: {message}"):
            nodes.apply_mixed_precision(base, {"calibration": str(bad)})
    with pytest.raises(ValueError, match="SlipstreamMixedPrecision: expected route one of"):
        nodes.apply_mixed_precision(base, {"route": "fp2"})


def test_composes_with_attention_and_the_delta_cache(base, inputs, reference, tmp_path):  # noqa: F811
    m = nodes.apply_attention(base, {"start_percent": 0.0})
    m = nodes.apply_delta_cache(m, {})
    m = nodes.apply_mixed_precision(m, {"route": "int8"})
    out = sample(m, *inputs)
    assert torch.isfinite(out).all() and ((out - reference).norm() / reference.norm()).item() < 1
    assert not base.object_patches


def _states(m):
    w = m.model_options["transformer_options"]["wrappers"]["outer_sample"]
    return w["slipstream_delta_cache"][0].__self__, w["slipstream_mixed_precision"][0].__self__


def test_pdr_runs_every_refresh_of_an_outlier_layer_at_high_precision(base, inputs):  # noqa: F811
    # A cache that never skips (tiny threshold) recomputes every block every step, each a refresh;
    # with an outlier ratio every input exceeds, PDR runs every linear at FP32 ("full"), which is
    # the route that keeps activations unquantized, bit for bit.
    never = {"threshold": 1e-12}
    m = nodes.apply_mixed_precision(nodes.apply_delta_cache(base, {**never, "outlier_ratio": 1e-6,
                                                                   "purify_precision": "full"}), {"route": "nvfp4"})
    out = sample(m, *inputs)
    cache, mixed = _states(m)
    assert cache.last_stats["blocks_skipped"] == 0
    assert mixed.last_stats["pdr_linear_calls"]["high_precision"] > 0
    assert mixed.last_stats["pdr_linear_calls"]["int8_after_skip"] == 0
    unquantized = sample(nodes.apply_mixed_precision(nodes.apply_delta_cache(base, {**never, "purify": False}),
                                                     {"route": "full"}), *inputs)
    assert torch.equal(out, unquantized)
    plain = sample(nodes.apply_mixed_precision(nodes.apply_delta_cache(base, {**never, "purify": False}),
                                               {"route": "nvfp4"}), *inputs)
    assert not torch.equal(out, plain)


@pytest.mark.parametrize("cache_first", [True, False])
def test_pdr_runs_the_first_recompute_after_a_skip_in_int8(base, inputs, cache_first):  # noqa: F811
    # Skips whenever allowed (large threshold, one skip in a row): every block alternates, and each
    # compute after a skip runs all of its linears in INT8, whichever node was installed first.
    skipping = {"threshold": 10.0, "max_skips": 1, "outlier_ratio": 1e9, "warmup_steps": 2, "final_steps": 0}
    x, ctx, _ = inputs
    inputs = (x, ctx, schedule(7, 1.0))  # two steps to see drifts, then skip, recompute, skip, ...
    if cache_first:
        m = nodes.apply_mixed_precision(nodes.apply_delta_cache(base, skipping), {"route": "nvfp4"})
    else:
        m = nodes.apply_delta_cache(nodes.apply_mixed_precision(base, {"route": "nvfp4"}), skipping)
    out = sample(m, *inputs)
    cache, mixed = _states(m)
    per_block = sum(1 for path in m.object_patches if path.startswith("diffusion_model.blocks.0."))
    assert cache.last_stats["blocks_skipped"] > 0 and cache.last_stats["refreshed_after_skip"] > 0
    assert mixed.last_stats["pdr_linear_calls"] == {"int8_after_skip": cache.last_stats["refreshed_after_skip"] * per_block,
                                                    "high_precision": 0}
    off = nodes.apply_mixed_precision(nodes.apply_delta_cache(base, {**skipping, "purify": False}), {"route": "nvfp4"})
    assert not torch.equal(sample(off, *inputs), out)
    assert _states(off)[1].last_stats["pdr_linear_calls"]["int8_after_skip"] == 0
