"""slipstream_torch.gemm_cuda: NVFP4 linear plans on CUDA. CI has no GPU: bench/gpu/run.sh runs these
on the GPU machine before it times the same kernels (bench/gpu/gemm.py); they fail where no GPU is.

The decode is exact: with one-hot activation rows and global 1 the output is the decoded weight
bit for bit, in both 16-bit types, through both kernels (M <= 64 and larger) and both modes.
"""

import sys
from pathlib import Path

import pytest

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
sys.path.insert(0, str(ROOT / "bench" / "gpu"))


def weight(n, k, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    codes = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda", generator=g)
    sb = torch.arange(n * (k // 16), device="cuda") % 256
    sb = torch.where((sb & 0x7F) == 0x7F, torch.zeros_like(sb), sb).to(torch.uint8).view(n, k // 16)  # no NaN
    return codes, sb.view(torch.float8_e4m3fn), torch.ones(1, device="cuda")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("m", [1, 37, 200])
@pytest.mark.parametrize("activations", ["none", "fp8"])
def test_one_hot_rows_give_the_decoded_weight_exactly(dtype, m, activations):
    from gemm import dequantize_nvfp4
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    dt = getattr(torch, dtype)
    n, k = 1003, 1040  # N odd, K not a multiple of 128
    codes, scales, g = weight(n, k)
    wd = dequantize_nvfp4(codes, scales, g)
    rows = torch.arange(m, device="cuda") * 5 % k
    x = torch.zeros(m, k, dtype=dt, device="cuda")
    x[torch.arange(m), rows] = 1
    with CudaLinearPlan(codes, scales, g) as plan:
        y = plan(x, activations=activations)
        assert plan.weight_bytes == (n + 7) // 8 * ((k + 127) // 128) * 576 + 4
    assert torch.equal(y.double(), wd[:, rows].T)  # +0 == -0


def test_bias_and_scales_against_float64():
    from gemm import dequantize_nvfp4, quantize_nvfp4
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    w = torch.randn(520, 4096, device="cuda")
    codes, scales, g = quantize_nvfp4(w)
    wd = dequantize_nvfp4(codes, scales, g)
    bias = torch.randn(520, device="cuda")
    for m in (3, 300):
        x = torch.randn(m, 4096, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wd.T + bias.double()
        y = CudaLinearPlan(codes, scales, g)(x, bias)
        assert ((y.double() - ref).norm() / ref.norm()).item() < 3e-3


def test_bad_inputs_are_named():
    from slipstream_torch._lib import SlipstreamError
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    codes, scales, g = weight(16, 64)
    plan = CudaLinearPlan(codes, scales, g)
    with pytest.raises(SlipstreamError, match=r"\[\.\.\., 64\]"):
        plan(torch.zeros(2, 32, dtype=torch.bfloat16, device="cuda"))
    with pytest.raises(SlipstreamError, match="activations"):
        plan(torch.zeros(2, 64, dtype=torch.bfloat16, device="cuda"), activations="int8")
    plan.close()
    with pytest.raises(SlipstreamError, match="closed"):
        plan(torch.zeros(2, 64, dtype=torch.bfloat16, device="cuda"))
