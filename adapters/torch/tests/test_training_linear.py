"""training.linear (NVFP4Linear, TetraJet-v2's NVFP4 training numerics) against the native codecs:
bit-identical forward operands and stochastic draws, exact float gradients with quantization off,
an unbiased quantized backward, OsciReset and OutControl on constructed weights and channels."""

import numpy as np
import pytest
import torch

from slipstream_torch import quant
from slipstream_torch.training import NVFP4Linear, OsciReset, OutControl
from slipstream_torch.training import linear as L


def data(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp(torch.randn(shape[0], 1, generator=g) * 2)
    x[0, :16] = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, -0.25, -0.75, -2.5, -5.0, 0.0, 1e-3, 12.0])
    x[1] = 0.0  # an all-zero row
    x[1, 200] = -0.0
    x[2, 5] = 1e4  # an outlier: coarsens only its own 128-block
    return x


def native(x, rounding="nearest", seed=0):
    return quant.dequantize(quant.quantize(x.numpy(), "NVFP4_TJ2", rounding=rounding, seed=seed), x.shape)


def same_bits(a, b):
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


@pytest.mark.parametrize("rounding,seed", [("nearest", 0), ("stochastic", 5), ("stochastic", 2 ** 62 + 3)])
def test_codec_is_bit_identical_to_the_native_one(rounding, seed):
    x = data((24, 256), seed % 7)
    assert same_bits(L.nvfp4_tj2(x, rounding, seed).numpy(), native(x, rounding, seed))


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_e4m3_elements_round_as_the_native_element_codec(rounding):
    v = data((40, 256), 3).flatten() * 1e-2
    ours = L._round_signed(v, L._E4M3, L.uniform01(9, v.numel()) if rounding == "stochastic" else None)
    ref = quant.decode_elements("E4M3", quant.encode_elements("E4M3", v.numpy(), rounding, 9))
    assert same_bits(ours.numpy(), ref)


def test_forward_multiplies_the_native_codecs_operands_bit_for_bit():
    layer = NVFP4Linear(256, 48, seed=1)
    x = data((24, 256), 4).reshape(2, 12, 256)
    xq, wq = layer.quantized_operands(x)
    assert same_bits(xq.numpy(), native(x.reshape(-1, 256)))
    assert same_bits(wq.numpy(), native(layer.weight.detach()))
    expect = torch.from_numpy(native(x.reshape(-1, 256))) @ torch.from_numpy(native(layer.weight.detach())).T
    assert torch.equal(layer(x).detach(), (expect + layer.bias.detach()).reshape(2, 12, 48))


def test_float_path_passes_gradcheck_in_float64():
    layer = NVFP4Linear(128, 20, quantize=False).double()
    x = torch.randn(3, 5, 128, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: L.NVFP4LinearFunction.apply(x, w, b, L._Config(False, True, None, 0, True))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, layer.weight, layer.bias))


def test_quantized_backward_is_unbiased():
    # M = N = K = 128. Over T seeds, the mean of the stochastic-rounding gradient minus the exact
    # straight-through one (dY W, dY^T X), squared and summed, has expectation sum(var) / T for an
    # unbiased estimator: the ratio is about 1. A biased one (nearest rounding) is far above.
    g = torch.Generator().manual_seed(0)
    x, w, dy = (torch.randn(128, 128, generator=g) for _ in range(3))
    x[:, 7] *= 30  # an outlier channel
    exact = (dy @ w, dy.T @ x)
    T = 96
    dx = torch.stack([L.quantized_matmul(dy, w.T, s) for s in range(T)])
    dw = torch.stack([L.quantized_matmul(dy.T, x.T, 1000 + s) for s in range(T)])
    for est, ref in zip((dx, dw), exact):
        ratio = float(((est.mean(0) - ref) ** 2).sum() / (est.var(0).sum() / T))
        assert 0.75 < ratio < 1.3, ratio
    nearest = L.nvfp4_tj2(L.hadamard(dy, 16)) @ L.nvfp4_tj2(L.hadamard(w.T, 16)).T
    assert float(((nearest - exact[0]) ** 2).sum() / (dx.var(0).sum() / T)) > 5


def test_layer_backward_uses_fresh_draws_and_no_quantization_gives_exact_grads():
    x = torch.randn(64, 128, requires_grad=True)
    layer = NVFP4Linear(128, 40, seed=3)
    grads = []
    for _ in range(2):
        x.grad = None
        layer(x).square().sum().backward()
        grads.append(x.grad.clone())
    assert not torch.equal(grads[0], grads[1])
    layer.quantize = False
    x.grad = None
    layer.zero_grad()
    y = layer(x)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, torch.ones(64, 40) @ layer.weight.detach())
    torch.testing.assert_close(layer.weight.grad, torch.ones(40, 64) @ x.detach())


def test_osci_reset_resets_an_oscillating_weight_and_leaves_a_steady_one():
    layer = NVFP4Linear(128, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.2)
        layer.weight[0, 0] = 6.0  # the amax: fixes every scale, inner grid step 0.5 near 1
        layer.weight[0, 1] = 1.25  # on a boundary between 1 and 1.5 (ties down to even 1)
        layer.weight[0, 2] = 1.05  # well inside the bin of 1
    osc = OsciReset(layer, threshold=8, window=10, every=20, start=20)
    for it in range(21):
        with torch.no_grad():  # weight 1 jitters across its boundary, weight 2 drifts slowly
            layer.weight[0, 1] = 1.26 if it % 2 == 0 else 1.24  # Q: 1.5, 1
            layer.weight[0, 2] += 0.001
        osc.step(it)
    assert osc.history == [(20, 1)] and layer.osci_last == 1
    w = layer.weight.detach()
    assert float(w[0, 1]) in (1.0, 1.5) and float(w[0, 2]) == pytest.approx(1.071, abs=1e-5)


def test_outcontrol_keeps_outlier_channels_out_of_nvfp4():
    g = torch.Generator().manual_seed(2)
    layer = NVFP4Linear(256, 32, seed=0)
    x = torch.randn(64, 256, generator=g)
    outliers = [3, 130]
    x[:, outliers] *= 50
    ctl = OutControl(layer, start=0, window=3, fraction=2 / 256)
    for it in range(4):
        ctl.step(it)
        if it < 3:
            layer(x)
    assert ctl.fixed and layer.outlier_mask.nonzero().flatten().tolist() == outliers
    xq, wq = layer.quantized_operands(x)
    for q, t in ((xq, x), (wq, layer.weight.detach())):
        rest = t.clone()
        rest[:, outliers] = 0
        # the rest is exactly NVFP4_TJ2 of the tensor without the outliers ...
        assert same_bits(torch.where(layer.outlier_mask, 0.0, q).numpy(), native(rest))
        # ... and the outlier channels carry an E4M3 error: 2^-4 relative, plus half a subnormal step
        err = (q[:, outliers] - t[:, outliers]).abs()
        assert bool((err <= t[:, outliers].abs() * 2 ** -4 + t.abs().max() * 2 ** -17).all())
    # in NVFP4 the same channels would lose far more
    assert float((L.nvfp4_tj2(x)[:, outliers] - x[:, outliers]).abs().max()) > 50 * float(err.max())
    y = layer(x)
    y.sum().backward()
    assert layer.weight.grad.shape == (32, 256)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="multiple of 128 for in_features .*got 100"):
        NVFP4Linear(100, 8)
    with pytest.raises(ValueError, match="positive int for out_features, got 0"):
        NVFP4Linear(128, 0)
    with pytest.raises(ValueError, match=r"shape \[..., 128\] for input \(in_features\), got \[2, 64\]"):
        NVFP4Linear(128, 8)(torch.ones(2, 64))
    with pytest.raises(ValueError, match="floating-point tensor for input"):
        NVFP4Linear(128, 8)(torch.ones(2, 128, dtype=torch.long))
    with pytest.raises(ValueError, match="'nearest' or 'stochastic' for rounding, got 'up'"):
        L.nvfp4_tj2(torch.ones(1, 128), "up")
    with pytest.raises(ValueError, match="divisible by 128 for x"):
        L.nvfp4_tj2(torch.ones(1, 48))
    with pytest.raises(ValueError, match="NVFP4Linear layers for model"):
        OsciReset(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="window < every"):
        OsciReset(NVFP4Linear(128, 8), window=50, every=20)
