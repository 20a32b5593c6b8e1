"""slipstream_torch.fakequant against the native codecs (slip_quantize + slip_dequantize): the same
values bit for bit, on data with outliers, ties and all-zero rows."""

import numpy as np
import pytest
import torch

from slipstream_torch import fakequant, quant


def data(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp(torch.randn(shape[0], 1, generator=g) * 2)
    x[0, :16] = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, -0.25, -0.75, -2.5, -5.0, 0.0, 1e-3, 12.0])
    x[1] = 0.0  # an all-zero row
    x[2, 5] = 1e4  # an outlier
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nvfp4_is_bit_identical_to_the_native_codec(seed):
    x = data((24, 64), seed)
    native = quant.dequantize(quant.quantize(x.numpy(), "NVFP4"), x.shape)
    ours = fakequant.nvfp4(x).numpy()
    assert np.array_equal(ours.view(np.uint32), native.view(np.uint32))


def test_nvfp4_with_a_given_global_scale_is_bit_identical_too():
    x = data((8, 32), 3)
    native = quant.dequantize(quant.quantize(x.numpy(), "NVFP4", global_scale=7.5), x.shape)
    assert np.array_equal(fakequant.nvfp4(x, global_scale=7.5).numpy(), native)


@pytest.mark.parametrize("seed", [0, 1])
def test_int8_rows_is_bit_identical_to_the_native_codec(seed):
    x = data((16, 48), seed)
    x[3, :4] = torch.tensor([0.5, 1.5, 2.5, -2.5]) * (x[3].abs().max() / 127)  # exact ties after the division
    native = quant.dequantize(quant.quantize(x.numpy(), "INT8", granularity="row"), x.shape)
    assert np.array_equal(fakequant.int8_rows(x).numpy(), native)


@pytest.mark.parametrize("block", [16, 128])
def test_hadamard_matches_the_native_transform_and_is_its_own_inverse(block):
    x = data((4, 256), 5)
    native = quant.hadamard(x.numpy(), block)
    ours = fakequant.hadamard(x, block)
    # a matmul against the native butterflies: each output is a float32 sum of `block` terms of
    # size |x|/sqrt(block), rounding error at most (block - 1) * 2^-24 * sqrt(block) * max|x| for
    # each side (the standard recursive-summation bound)
    bound = (block - 1) * 2 ** -24 * np.sqrt(block) * float(x.abs().max())
    np.testing.assert_allclose(ours.numpy(), native, rtol=0, atol=2 * bound)
    torch.testing.assert_close(fakequant.hadamard(ours, block), x, rtol=0, atol=2 * bound)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="multiple of 16, got 10"):
        fakequant.nvfp4(torch.ones(2, 10))
    with pytest.raises(ValueError, match="power-of-two block dividing 48, got 32"):
        fakequant.hadamard(torch.ones(2, 48), 32)
