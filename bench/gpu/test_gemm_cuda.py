"""slipstream_torch.gemm_cuda: NVFP4 linear plans on CUDA. CI has no GPU: bench/gpu/run.sh runs these
on the GPU machine before it times the same kernels (bench/gpu/gemm.py); they fail where no GPU is.

The decode is exact: with one-hot activation rows and global 1 the output is the decoded weight
bit for bit, in both 16-bit types, through both kernels (M <= 64 and larger) and both modes; except
that on sm_90 W4A8 above 64 rows runs on FP8 tensor cores, where the output is the decoded weight
rounded as documented (scaled by its column's power of two, to E4M3 nearest even, scaled back).
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
@pytest.mark.parametrize("n", [1003, 1008])
@pytest.mark.parametrize("k", [1040, 4112])  # 4112: the skinny kernel splits K (a cluster on sm_90)
def test_one_hot_rows_give_the_decoded_weight_exactly(dtype, m, activations, n, k):
    from gemm import dequantize_nvfp4, e4m3_weight, fp8_tensor_cores
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    dt = getattr(torch, dtype)
    # N odd or a multiple of 16, K not a multiple of 128
    codes, scales, g = weight(n, k)
    on_fp8_cores = activations == "fp8" and fp8_tensor_cores(m)
    wd = e4m3_weight(codes, scales, g) if on_fp8_cores else dequantize_nvfp4(codes, scales, g)
    rows = torch.arange(m, device="cuda") * 5 % k
    x = torch.zeros(m, k, dtype=dt, device="cuda")
    x[torch.arange(m), rows] = 1
    with CudaLinearPlan(codes, scales, g) as plan:
        y = plan(x, activations=activations)
        colpow_bytes = 4 * n if torch.cuda.get_device_capability() == (9, 0) else 0
        assert plan.weight_bytes == (n + 7) // 8 * ((k + 127) // 128) * 576 + 4 + colpow_bytes
    assert torch.equal(y.double(), wd[:, rows].T)  # +0 == -0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("m", [1, 5, 16, 37])
@pytest.mark.parametrize("n, k", [(37, 1040), (37, 4112), (8192, 4112), (8200, 4112), (4100, 1040), (4100, 8208)])
def test_skinny_shapes_give_the_decoded_weight_exactly(dtype, m, n, k):
    """The skinny kernel's CTA is 4 warps of 2 or 4 tiles (8 columns each; plan_launch picks). N 37 is
    fewer columns than one CTA's, so some warps lie wholly past N; at M 37, N 8,192 takes 4 tiles a
    warp with K split 2 ways on a 132-SM card. On sm_90 the streamed kernel takes M <= 16 at N 8,192
    (8 tiles a CTA) and M <= 8 at N 4,100 (4 tiles a CTA: the last CTA has one tile, so a tile pair
    lies wholly past N and another half past it; N 8,200 leaves the last of 129 CTAs one tile);
    K 4,112 and 8,208 end in a stage of one chunk with 16 columns of K after its ring of 3 or 5
    stages has wrapped (5 or 9 loads), so a stage's earlier bytes past K must not count. The one-hot
    columns spread over all of K, the first in the partial last chunk, so a wrong chunk, split, stage
    or staged piece shows."""
    from gemm import dequantize_nvfp4
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    dt = getattr(torch, dtype)
    codes, scales, g = weight(n, k)
    wd = dequantize_nvfp4(codes, scales, g)
    rows = (torch.arange(m, device="cuda") * 1031 + k - 1) % k
    x = torch.zeros(m, k, dtype=dt, device="cuda")
    x[torch.arange(m), rows] = 1
    with CudaLinearPlan(codes, scales, g) as plan:
        y = plan(x)
    assert torch.equal(y.double(), wd[:, rows].T)


# Seeds 8, 12, 25 and 28 each draw a row of x whose amax is 3.875, where ~30 quotients x / s lie
# within an ulp of an E4M3 tie: the reference must take s and x / s as the kernels do (gemm.fp8_rows).
@pytest.mark.parametrize("seed", [0, 1, 2, 8, 12, 25, 28])
def test_bias_and_scales_against_float64(seed):
    from gemm import dequantize_nvfp4, quantize_nvfp4
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    gen = torch.Generator(device="cuda").manual_seed(seed)
    w = torch.randn(520, 4096, device="cuda", generator=gen)
    codes, scales, g = quantize_nvfp4(w)
    wd = dequantize_nvfp4(codes, scales, g)
    bias = torch.randn(520, device="cuda", generator=gen)
    plan = CudaLinearPlan(codes, scales, g)
    for m in (3, 300):
        x = torch.randn(m, 4096, device="cuda", dtype=torch.bfloat16, generator=gen)
        ref = x.double() @ wd.T + bias.double()
        y = plan(x, bias)
        assert ((y.double() - ref).norm() / ref.norm()).item() < 3e-3
        # W4A8 against float64 of its own numerics (FP8 x; on sm_90's FP8 kernel the E4M3 weight):
        # FP32 accumulation and the bf16 output's rounding (2^-9 relative) are all that is left.
        from gemm import e4m3_weight, fp8_rows, fp8_tensor_cores
        w8 = e4m3_weight(codes, scales, g) if fp8_tensor_cores(m) else wd
        ref8 = fp8_rows(x) @ w8.T + bias.double()
        y8 = plan(x, bias, activations="fp8")
        assert ((y8.double() - ref8).norm() / ref8.norm()).item() < 3e-3
    plan.close()


def one_product_rows(m, k, seed):
    """W4A8 where every output is one product: x's rows have their amax (40) at a column where the
    weight is zero and one other non-zero, at a column that differs from row to row; so an output's
    only rounding is its own (bf16: 2^-9 relative) and a row's scale, code and place show exactly.
    (With x dense, the FP8 kernel's fast accumulation over long rows drifts past the bf16 rounding.)"""
    from gemm import dequantize_nvfp4, e4m3_weight, fp8_rows, fp8_tensor_cores, quantize_nvfp4
    from slipstream_torch.gemm_cuda import CudaLinearPlan

    gen = torch.Generator(device="cuda").manual_seed(seed)
    amax_col = k - 3
    w = torch.randn(24, k, device="cuda", generator=gen)
    w[:, amax_col] = 0
    codes, scales, g = quantize_nvfp4(w)
    x = torch.zeros(m, k, device="cuda", dtype=torch.bfloat16)
    rows = torch.arange(m, device="cuda")
    cols = (rows * 7919 + 65537) % (k - 16)
    x[rows, cols] = (torch.randn(m, device="cuda", generator=gen) * 3).to(torch.bfloat16)
    x[:, amax_col] = 40.0
    w8 = e4m3_weight(codes, scales, g) if fp8_tensor_cores(m) else dequantize_nvfp4(codes, scales, g)
    assert torch.all(w8[:, amax_col] == 0)
    ref8 = fp8_rows(x) @ w8.T
    with CudaLinearPlan(codes, scales, g) as plan:
        y8 = plan(x, activations="fp8")
    assert torch.all((y8.double() - ref8).abs() <= ref8.abs() * 2.0**-8)


@pytest.mark.parametrize("m", [3, 70])  # the GEMV's quantizer (natural order), the FP8 kernel's (permuted)
def test_w4a8_rows_longer_than_the_quantizer_holds(m):
    """The quantizer holds up to 32,768 columns of a row in registers; at K 65,552 it reads the rest
    of each row twice (the amax and the other non-zero fall in either part)."""
    one_product_rows(m, 65552, seed=m)


def test_w4a8_more_rows_than_the_quantizer_has_ctas():
    """The quantizer's CTAs stay resident and walk the rows, the next row's loads issued before the
    current row's work, in two register sets by turns: 5,000 rows of K 1,040 are 2 to 3 rows a CTA
    (at most 32 CTAs an SM), so both sets and the last row's edge show."""
    one_product_rows(5000, 1040, seed=5)


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
