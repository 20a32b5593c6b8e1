"""`slipstream attention` as users run it: a real subprocess on captured q/k/v in safetensors,
checked against the library called directly from Python (the same .so) and against float64."""

import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from slipstream_torch import attention
from st_raw import read_raw, write_raw

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args) -> subprocess.CompletedProcess:
    assert (ROOT / "dist" / "cli" / "main.js").exists(), "the TypeScript build is missing: run `npm install` first"
    return subprocess.run(["node", str(ROOT / "bin" / "slipstream.js"), "attention", *map(str, args)], capture_output=True, text=True)


def metric(stdout: str, name: str) -> float:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(name))
    return float(line.split()[-1] if name != "sparsity" else line.split()[1].rstrip("%"))


@pytest.fixture(scope="module")
def qkv(tmp_path_factory):
    rng = np.random.default_rng(5)
    b, h, n, d = 1, 2, 600, 40  # N not a multiple of any block; SD1.5's head dim
    q = rng.standard_normal((b, h, n, d)).astype(np.float32)
    k = (rng.standard_normal((b, h, n, d)) + 2).astype(np.float32)
    v = rng.standard_normal((b, h, n, d)).astype(np.float32)
    path = tmp_path_factory.mktemp("qkv") / "qkv.safetensors"
    write_raw(path, {"q": ("F32", q), "k": ("F32", k), "v": ("F32", v)})
    return path, q, k, v


def test_dense_output_file_is_the_library_output(qkv, tmp_path):
    path, q, k, v = qkv
    out = tmp_path / "o.safetensors"
    res = run_cli("--method", "dense", "--in", path, "--out", out, "--causal", "--reference-rows", "600")
    assert res.returncode == 0, res.stderr
    (dtype, o), = [read_raw(out)[0]["o"]]
    assert dtype == "F32"
    np.testing.assert_array_equal(o, attention.dense(q, k, v, causal=True))
    # FP32 attention against float64 on every row: cosine 1 to 6 digits, relative L1 ~1e-6.
    assert metric(res.stdout, "cosine similarity") >= 0.999999
    assert metric(res.stdout, "relative L1") < 1e-5


def test_bf16_inputs_widen_exactly(qkv, tmp_path):
    _, q, k, v = qkv
    path = tmp_path / "bf16.safetensors"
    as_bf16 = lambda a: a.astype(ml_dtypes.bfloat16).view(np.uint16)  # noqa: E731
    write_raw(path, {"q": ("BF16", as_bf16(q)), "k": ("BF16", as_bf16(k)), "v": ("BF16", as_bf16(v))})
    out = tmp_path / "o.safetensors"
    assert run_cli("--method", "dense", "--in", path, "--out", out).returncode == 0
    widen = lambda a: a.astype(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    np.testing.assert_array_equal(read_raw(out)[0]["o"][1], attention.dense(widen(q), widen(k), widen(v)))


def test_sparse_reports_sparsity_and_honours_params(qkv):
    path, *_ = qkv
    res = run_cli("--method", "sparse", "--in", path, "--params", '{"topk": 0.25, "blockQ": 64, "blockK": 64}')
    assert res.returncode == 0, res.stderr
    assert 50 <= metric(res.stdout, "sparsity") <= 80


@pytest.mark.parametrize("method", ["sage", "sage2pp"])
def test_low_bit_methods_run_and_are_close(qkv, method):
    path, *_ = qkv
    res = run_cli("--method", method, "--in", path)
    assert res.returncode == 0, res.stderr
    assert metric(res.stdout, "cosine similarity") > 0.99


def test_nhd_layout_gives_the_same_numbers(qkv, tmp_path):
    _, q, k, v = qkv
    path = tmp_path / "nhd.safetensors"
    t = lambda a: np.ascontiguousarray(a.transpose(0, 2, 1, 3))  # noqa: E731
    write_raw(path, {"q": ("F32", t(q)), "k": ("F32", t(k)), "v": ("F32", t(v))})
    out = tmp_path / "o.safetensors"
    assert run_cli("--method", "dense", "--in", path, "--layout", "NHD", "--out", out).returncode == 0
    np.testing.assert_array_equal(read_raw(out)[0]["o"][1], t(attention.dense(q, k, v)))


def test_bad_inputs_name_the_tensor(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 1, 8, 300)).astype(np.float32)
    path = tmp_path / "big.safetensors"
    write_raw(path, {"q": ("F32", a), "k": ("F32", a), "v": ("F32", a)})
    res = run_cli("--method", "dense", "--in", path)
    assert res.returncode == 1 and "256" in res.stderr and "q" in res.stderr
    write_raw(path, {"q": ("F32", a[..., :64]), "k": ("F32", np.ascontiguousarray(a[..., :32]))})
    res = run_cli("--method", "dense", "--in", path)
    assert res.returncode == 1 and 'expected a tensor named "v"' in res.stderr
    nan = np.ascontiguousarray(a[..., :64])
    nan[0, 0, 3, 5] = np.nan
    write_raw(path, {"q": ("F32", nan), "k": ("F32", nan), "v": ("F32", nan)})
    res = run_cli("--method", "sage", "--in", path)
    assert res.returncode == 1 and "SLIP_E_NON_FINITE" in res.stderr
    res = run_cli("--method", "sparse", "--in", path, "--params", '{"topk": 2}')
    assert res.returncode == 1 and "params.topk" in res.stderr
