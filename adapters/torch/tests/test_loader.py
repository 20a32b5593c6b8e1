"""The ctypes loader: ABI check, capabilities, errors carried from native with their sentence."""

import subprocess
import sys

import numpy as np
import pytest

from slipstream_torch import SlipstreamError, capabilities, set_isa
from slipstream_torch._lib import tensor_from_numpy


def test_capabilities_report_abi_threads_and_isa():
    caps = capabilities()
    assert caps["abi_version"] == 1
    assert caps["num_threads"] >= 1
    assert 0 <= caps["isa_active"] <= caps["isa_detected"] <= 4  # portable .. amx


def test_native_error_carries_code_and_sentence():
    with pytest.raises(SlipstreamError) as err:
        set_isa(9)
    assert err.value.code == "SLIP_STATUS_INVALID_ARGUMENT"
    assert "expected a slip_isa" in str(err.value)


def test_missing_library_gives_one_clear_error(tmp_path):
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "import slipstream_torch._lib as L;"
        "L._candidates = lambda: [L.Path(sys.argv[2])];"
        "\ntry:\n    L.lib()\nexcept L.SlipstreamError as e:\n    print(e.code); print(e)"
    )
    from pathlib import Path

    pkg_root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code, pkg_root, str(tmp_path / "nope.so")],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.startswith("SLIP_E_NATIVE_MISSING")
    assert "npm install" in out and "nope.so: not found" in out


def test_tensor_descriptor_refuses_wrong_layout_and_dtype():
    with pytest.raises(SlipstreamError, match="C-contiguous"):
        tensor_from_numpy(np.zeros((4, 4), np.float32)[:, ::2])
    with pytest.raises(SlipstreamError, match="float32"):
        tensor_from_numpy(np.zeros(3, np.complex64))
    t = tensor_from_numpy(np.zeros((2, 3), np.float32))
    assert (t.ndim, t.shape[0], t.shape[1], t.strides[0]) == (2, 2, 3, 3)
