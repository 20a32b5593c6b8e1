"""slipstream_torch.quant against independent references: ml_dtypes for the element formats
(bit-exact in range) and ct_reference (compressed-tensors re-derived in numpy) for NVFP4/FP8."""

import ml_dtypes
import numpy as np
import pytest

import ct_reference
from slipstream_torch import quant
from slipstream_torch._lib import SlipstreamError

ML = {"E4M3": ml_dtypes.float8_e4m3fn, "E5M2": ml_dtypes.float8_e5m2, "E2M1": ml_dtypes.float4_e2m1fn}
MAX = {"E4M3": 448.0, "E5M2": 57344.0, "E2M1": 6.0}


def outlier_data(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(shape) < 0.01
    x[mask] *= np.float32(2.0) ** rng.integers(6, 11, mask.sum())
    return x


@pytest.mark.parametrize("fmt", ["E4M3", "E5M2", "E2M1"])
def test_elements_match_ml_dtypes(fmt):
    rng = np.random.default_rng(1)
    # Log-uniform magnitudes inside the range (ml_dtypes does not saturate beyond it).
    lo = np.log2(float(ml_dtypes.finfo(ML[fmt]).smallest_subnormal)) - 2
    x = (np.exp2(rng.uniform(lo, np.log2(MAX[fmt]), 100000)) * rng.choice([-1, 1], 100000)).astype(np.float32)
    want = x.astype(ML[fmt]).view(np.uint8)
    if fmt == "E2M1":
        want = want & 0x0F
    got = quant.encode_elements(fmt, x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(quant.decode_elements(fmt, got), x.astype(ML[fmt]).astype(np.float32))


def test_e8m0_decodes_like_ml_dtypes():
    codes = np.arange(256, dtype=np.uint8)
    want = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    np.testing.assert_array_equal(quant.decode_elements("E8M0", codes), want)


def test_nvfp4_matches_compressed_tensors():
    w = outlier_data((48, 256), 7)
    ref = ct_reference.nvfp4(w)
    q = quant.quantize(w, "NVFP4")
    np.testing.assert_array_equal(q["codes"], ref["weight_packed"])
    np.testing.assert_array_equal(q["scales"], ref["weight_scale"])
    np.testing.assert_array_equal(q["global"], ref["weight_global_scale"])


def test_fp8_channel_matches_compressed_tensors():
    w = outlier_data((33, 96), 8)
    ref = ct_reference.fp8_channel(w)
    q = quant.quantize(w, "FP8_E4M3")
    np.testing.assert_array_equal(q["codes"], ref["weight"])
    np.testing.assert_array_equal(q["scales"], ref["weight_scale"])


@pytest.mark.parametrize("fmt", ["INT8", "INT4", "FP8_E5M2", "NVFP4_TJ2", "MXFP4"])
def test_round_trip_error_is_within_half_a_step(fmt):
    x = outlier_data((4, 256), 9)
    q = quant.quantize(x, fmt)
    y = quant.dequantize(q, x.shape)
    assert y.shape == x.shape
    # A plumbing check only (the bit-exact references are the native tests): no format here
    # errs by more than half of the row's amax.
    assert np.all(np.abs(y - x) <= 0.5 * np.abs(x).max(axis=1, keepdims=True))


def test_packing_round_trips():
    codes = np.random.default_rng(2).integers(0, 16, 64).astype(np.uint8)
    np.testing.assert_array_equal(quant.unpack_nibbles(quant.pack_nibbles(codes)), codes)
    v = np.random.default_rng(3).integers(-8, 8, (5, 13)).astype(np.int8)
    np.testing.assert_array_equal(quant.unpack_int_ct(quant.pack_int_ct(v, 4), 13, 4), v)


def test_errors_name_the_argument():
    with pytest.raises(SlipstreamError, match="divisible by 16"):
        quant.quantize(np.zeros((2, 24), np.float32), "NVFP4")
    with pytest.raises(SlipstreamError, match="NaN at index 3"):
        quant.quantize(np.array([[0, 0, 0, np.nan] * 4], np.float32), "NVFP4")
    with pytest.raises(SlipstreamError, match="for format"):
        quant.quantize(np.zeros((1, 16), np.float32), "INT3")


def test_hadamard_is_an_involution():
    x = outlier_data((3, 128), 4)
    y = quant.hadamard(quant.hadamard(x, 64), 64)
    # Two passes of (log2(64) + 1) float32 roundings each on a unit-norm-preserving transform.
    assert np.linalg.norm(y - x) <= 2 * 7 * 2.0**-24 * np.linalg.norm(x) * np.sqrt(3)
