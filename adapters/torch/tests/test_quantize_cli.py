"""`slipstream quantize` as a user runs it (a real subprocess on real safetensors files), checked
against what compressed-tensors would write for the same weights (ct_reference.py)."""

import json
import math
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import ct_reference as ct
from st_raw import read_raw, write_raw

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / "bin" / "slipstream.js"
MODULE = "model.layers.0.mlp.up_proj"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    assert (ROOT / "dist" / "cli" / "main.js").exists(), "the TypeScript build is missing: run `npm install` first"
    return subprocess.run(["node", str(CLI), *map(str, args), "--quiet"], capture_output=True, text=True)


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every tensor as numpy (float8 and bf16 as their bits); the official reader must accept
    the file too."""
    with safe_open(str(path), framework="numpy") as f:
        names = set(f.keys())
    tensors, _ = read_raw(path)
    assert set(tensors) == names
    return {name: arr for name, (_, arr) in tensors.items()}


def weight_with_outliers_and_ties(n: int = 48, k: int = 256) -> np.ndarray:
    """Gaussian rows, heavy outliers, and rows built so that values land exactly on the
    rounding midpoints of each format (ties must go to the even code)."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[rng.random((n, k)) < 0.01] *= 50  # channel outliers
    # Row 0: amax 2688 makes NVFP4's global scale exactly 1; its first block has amax 6, so its
    # block scale is exactly 1 and x / (s/g) = x: E2M1 midpoints are exact ties.
    w[0] = 0
    w[0, 200] = 2688
    w[0, :16] = [6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, 0.1]
    # Row 1: amax 127.5 makes the INT8 scale exactly 1: x.5 values are exact ties.
    w[1] = 0
    w[1, :8] = [127.5, 2.5, -3.5, 0.5, -0.5, 1.5, 100.5, -126.5]
    # Row 2: all zero (compressed-tensors' zero-scale placeholder).
    w[2] = 0
    return w


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    rng = np.random.default_rng(3)
    save_file(
        {
            f"{MODULE}.weight": weight_with_outliers_and_ties(),
            "model.norm.weight": rng.standard_normal(256).astype(np.float32),
            "model.embed_tokens.weight": rng.standard_normal((10, 256)).astype(np.float32),
            "model.layers.0.mlp.up_proj.bias": rng.standard_normal(48).astype(np.float32),
        },
        str(path),
        metadata={"format": "pt"},
    )
    return path


CT_SCHEMES = {
    "int8": ct.int8_channel,
    "fp8": ct.fp8_channel,
    "w4a16": ct.w4a16,
    "nvfp4a16": ct.nvfp4,
}


@pytest.mark.parametrize("scheme", sorted(CT_SCHEMES))
def test_output_is_what_compressed_tensors_writes(model_file, tmp_path, scheme):
    out = tmp_path / f"{scheme}.safetensors"
    res = run_cli("quantize", model_file, "--format", scheme, "--out", out, "--ignore", "model.embed_tokens")
    assert res.returncode == 0, res.stderr
    got = read_all(out)
    src = read_all(model_file)
    expected = CT_SCHEMES[scheme](src[f"{MODULE}.weight"])
    assert sorted(k for k in got if k.startswith(MODULE + ".weight")) == sorted(f"{MODULE}.{k}" for k in expected)
    for name, ref in expected.items():
        mine = got[f"{MODULE}.{name}"]
        assert mine.shape == ref.shape, name
        assert mine.dtype == ref.dtype, name
        np.testing.assert_array_equal(mine, ref, err_msg=name)
    # Everything that is not a 2-D weight, and what --ignore names, is copied bit for bit.
    for name in ("model.norm.weight", "model.embed_tokens.weight", f"{MODULE}.bias"):
        np.testing.assert_array_equal(got[name], src[name])
    with safe_open(str(out), framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}


def test_fp8_and_nvfp4_dtypes_are_the_float8_type(model_file, tmp_path):
    out = tmp_path / "nv.safetensors"
    assert run_cli("quantize", model_file, "--format", "nvfp4a16", "--out", out).returncode == 0
    with safe_open(str(out), framework="numpy") as f:
        assert f.get_slice(f"{MODULE}.weight_scale").get_dtype() == "F8_E4M3"
        assert f.get_slice(f"{MODULE}.weight_packed").get_dtype() == "U8"
        assert f.get_slice(f"{MODULE}.weight_global_scale").get_dtype() == "F32"


def test_nvfp4_w4a4_adds_input_global_scale_from_the_activation_range(model_file, tmp_path):
    ranges = tmp_path / "ranges.json"
    ranges.write_text(json.dumps({MODULE: 13.5, "model.embed_tokens": 1.0}))
    out = tmp_path / "w4a4.safetensors"
    res = run_cli("quantize", model_file, "--format", "nvfp4", "--out", out, "--input-amax", ranges)
    assert res.returncode == 0, res.stderr
    got = read_all(out)
    assert got[f"{MODULE}.input_global_scale"].dtype == np.float32
    assert got[f"{MODULE}.input_global_scale"][0] == np.float32(2688) / np.float32(13.5)
    ref = ct.nvfp4(read_all(model_file)[f"{MODULE}.weight"])
    np.testing.assert_array_equal(got[f"{MODULE}.weight_packed"], ref["weight_packed"])


def test_mxfp4_layout_and_ocp_scales(model_file, tmp_path):
    out = tmp_path / "mx.safetensors"
    assert run_cli("quantize", model_file, "--format", "mxfp4", "--out", out, "--ignore", "model.embed_tokens").returncode == 0
    got = read_all(out)
    w = read_all(model_file)[f"{MODULE}.weight"]
    n, k = w.shape
    assert got[f"{MODULE}.weight_packed"].shape == (n, k // 2) and got[f"{MODULE}.weight_packed"].dtype == np.uint8
    scales = got[f"{MODULE}.weight_scale"]
    assert scales.shape == (n, k // 32) and scales.dtype == np.uint8
    # OCP MX: shared exponent floor(log2(amax_32)) - 2 (E2M1's emax), elements RNE saturating.
    amax = np.abs(w.reshape(n, k // 32, 32)).max(-1).astype(np.float64)
    expect = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 2 + 127, 0)
    np.testing.assert_array_equal(scales[amax > 0], expect[amax > 0].astype(np.uint8))
    x = w.reshape(n, k // 32, 32) / np.exp2(scales.astype(np.float64) - 127)[..., None]
    codes = np.stack([got[f"{MODULE}.weight_packed"] & 15, got[f"{MODULE}.weight_packed"] >> 4], -1).reshape(n, k // 32, 32)
    decoded = ct.E2M1_VALUES[codes & 7].astype(np.float64) * np.where(codes & 8, -1, 1)
    # Each decoded element is the E2M1 value nearest to x (saturating at 6).
    err = np.abs(decoded - np.clip(x, -6, 6))
    grid_gap = np.where(np.abs(decoded) < 2, 0.5, np.where(np.abs(decoded) < 4, 1.0, 2.0))
    assert np.all(err <= grid_gap / 2 + 1e-12)


def test_bf16_weights_are_quantized_from_their_exact_values(tmp_path):
    w32 = weight_with_outliers_and_ties()
    wb = w32.astype(ml_dtypes.bfloat16)
    path = tmp_path / "bf16.safetensors"
    write_raw(path, {f"{MODULE}.weight": ("BF16", wb.view(np.uint16))})
    out = tmp_path / "bf16-nvfp4.safetensors"
    res = run_cli("quantize", path, "--format", "nvfp4a16", "--out", out)
    assert res.returncode == 0, res.stderr
    ref = ct.nvfp4(wb.astype(np.float32))
    got = read_all(out)
    np.testing.assert_array_equal(got[f"{MODULE}.weight_packed"], ref["weight_packed"])
    np.testing.assert_array_equal(got[f"{MODULE}.weight_scale"], ref["weight_scale"])


def test_nonfinite_weights_are_refused_and_leave_no_output(tmp_path):
    w = weight_with_outliers_and_ties()
    w[5, 17] = np.nan
    path = tmp_path / "nan.safetensors"
    save_file({f"{MODULE}.weight": w}, str(path))
    out = tmp_path / "out.safetensors"
    res = run_cli("quantize", path, "--format", "int8", "--out", out)
    assert res.returncode == 1
    assert f"{MODULE}.weight" in res.stderr and "SLIP_E_NON_FINITE" in res.stderr
    assert list(tmp_path.iterdir()) == [path]  # no output, no temp file
    res = run_cli("quantize", path, "--format", "int8", "--out", out, "--allow-nonfinite")
    assert res.returncode == 0, res.stderr
    assert read_all(out)[f"{MODULE}.weight"][5, 17] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "int3"], "expected one of int8|fp8|fp8-static|w4a16|nvfp4|nvfp4a16|mxfp4 for --format"),
        (["--format", "int8", "--bogus"], "Unknown option '--bogus'"),
        (["--format", "nvfp4"], "--input-amax"),
    ],
)
def test_bad_command_lines_name_the_option(model_file, tmp_path, args, message):
    res = run_cli("quantize", model_file, "--out", tmp_path / "o.safetensors", *args)
    assert res.returncode in (1, 2)
    assert message in res.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_truncated_input_gives_a_clear_error(model_file, tmp_path):
    data = model_file.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    res = run_cli("quantize", bad, "--format", "int8", "--out", tmp_path / "o.safetensors")
    assert res.returncode == 1
    assert "SLIP_E_CORRUPT_FILE" in res.stderr and "truncated.safetensors" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.safetensors"]


def test_width_not_a_multiple_of_the_group_names_the_tensor(tmp_path):
    path = tmp_path / "odd.safetensors"
    save_file({"proj.weight": np.ones((4, 40), np.float32)}, str(path))
    res = run_cli("quantize", path, "--format", "w4a16", "--out", tmp_path / "o.safetensors")
    assert res.returncode == 1
    assert "proj.weight" in res.stderr and "multiple of 128" in res.stderr


def test_bad_activation_ranges_file_names_the_field(model_file, tmp_path):
    ranges = tmp_path / "ranges.json"
    ranges.write_text(json.dumps({MODULE: -2}))
    res = run_cli("quantize", model_file, "--format", "nvfp4", "--out", tmp_path / "o.safetensors", "--input-amax", ranges)
    assert res.returncode == 1
    assert "ranges.json" in res.stderr and MODULE in res.stderr and "SLIP_E_SCHEMA" in res.stderr
    ranges.write_text("{not json")
    res = run_cli("quantize", model_file, "--format", "nvfp4", "--out", tmp_path / "o.safetensors", "--input-amax", ranges)
    assert "invalid JSON at line 1" in res.stderr
