"""Gradient checks of slipstream_torch.training.attention (issue #8), real torch on the CPU.

Every check compares against float64 math: autograd of exact attention, gradcheck, or central
differences. Tolerances are derived from the number formats; each test states how.
"""

import math

import numpy as np
import pytest
import torch

from slipstream_torch import SlipstreamError
from slipstream_torch import attention as A
from slipstream_torch.training import (BlockSparseAttentionFunction, SLA2Attention, block_sparse_attention,
                                       sage_attention, sla2_router_scores)
from slipstream_torch.training.attention import sla2_relaxed

B, H, N, D = 1, 2, 256, 64


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These shapes are too small for torch's intra-op threads to pay off, and on a 2-core
    runner their barriers contend with libslipstream's pool between native calls: the SLA2
    training loop measured 10-12 s with torch's default threads and ~1 s with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
U32 = 2.0 ** -24  # FP32 unit roundoff


def _qkv(seed=0, n=N, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, n, D, generator=g) * scale for _ in range(3))


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _exact(q, k, v, dout, allowed=None, scale=None):
    """float64 autograd of softmax(scale·QKᵀ + mask)V, mask -inf where `allowed` is False."""
    q, k, v = (t.detach().double().requires_grad_(True) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * (scale or 1 / math.sqrt(q.shape[-1]))
    if allowed is not None:
        s = s.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # rows with nothing allowed: output 0, as the kernels
    out = p @ v
    out.backward(dout.double())
    return out.detach(), q.grad, k.grad, v.grad, s.detach(), p.detach()


def _grads(fn, q, k, v, dout):
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v)
    out.backward(dout)
    return out.detach(), q.grad, k.grad, v.grad


# ---------------------------------------------------------------- SageBwd

# E4M3 rounds to nearest with 3 mantissa bits: the relative error of x = m·2^e (m in [1, 2)) is
# uniform in ±2^-4/m, so its RMS over log-uniform mantissas is 2^-4·sqrt(E[1/m²]/3),
# E[1/m²] = (1/ln 2)·∫₁² m⁻³ dm = 3/(8 ln 2).
EPS_FP8 = 2.0 ** -4 * math.sqrt(3 / (8 * math.log(2)) / 3)


def _eps_int8(x, rows, cols=None):
    """RMS relative error of symmetric INT8 with one scale per (rows x cols) block: a block's
    rounding error is uniform in ±step/2, step = amax/127, so its variance is step²/12 per
    element; summed over blocks and divided by the energy of x."""
    x = x.double()
    b, h, n, m = x.shape
    cols = cols or m
    err = 0.0
    for i in range(0, n, rows):
        for j in range(0, m, cols):
            blk = x[..., i:i + rows, j:j + cols]
            amax = blk.abs().amax(dim=(-1, -2))
            err += blk.shape[-1] * blk.shape[-2] * ((amax / 127) ** 2 / 12).sum().item()
    return math.sqrt(err / x.square().sum().item())


@pytest.mark.parametrize("causal", [False, True])
def test_sage_gradients_within_the_format_bound(causal):
    """SageBwd's dq, dk, dv against float64 autograd of exact attention.

    The bound, from the formats (errors modelled as independent zero-mean roundings, so relative
    RMS errors of the operands feeding a product add in quadrature), with the native tiles
    (Q tile 128, K tile 64) and the blocks each operand is scaled over:
      ε_S   = rms(S)·sqrt(ε_Q² + ε_K²)      INT8 Q, K (forward and recomputed S): an absolute logit
                                            error, hence a relative error of P = exp(S − lse)
      ε_out = sqrt(2·ε_fp8² + ε_S²)         FP8 P~ and V~ in the forward (D = rowsum(dO∘out))
      ε_dV  = sqrt(ε_S² + ε_P² + ε_dO²)     dV = Pᵀ dO, P per (Q tile, K tile), dO per Q tile
      ε_dQ  = sqrt(ε_S² + ε_out² + ε_dS² + ε_K²), ε_dK likewise with ε_Q
    dP = dO Vᵀ is FP32 natively (no FP16 term: it sits far below these). ε_int8 of a tensor is
    computed from its per-block amax (_eps_int8); the bound is 2x the model (a 2σ-style margin for
    the model's independence assumption). Measured here: about 0.04-0.06 against bounds near 0.1."""
    q, k, v = _qkv(1)
    dout = torch.randn(B, H, N, D, generator=torch.Generator().manual_seed(9))
    allowed = torch.ones(N, N, dtype=torch.bool).tril() if causal else None
    _, rdq, rdk, rdv, s, p = _exact(q, k, v, dout, allowed)
    out64 = p @ v.double()
    d64 = (dout.double() * out64).sum(-1, keepdim=True)
    ds = p * (dout.double() @ v.double().transpose(-1, -2) - d64)
    kc = k - k.mean(dim=2, keepdim=True)
    e_q, e_k, e_do = _eps_int8(q, 128), _eps_int8(kc, 64), _eps_int8(dout, 128)
    e_p, e_ds = _eps_int8(p, 128, 64), _eps_int8(ds, 128, 64)
    s_rms = s[torch.isfinite(s)].square().mean().sqrt().item()
    e_s = s_rms * math.hypot(e_q, e_k)
    e_out = math.sqrt(2 * EPS_FP8 ** 2 + e_s ** 2)
    bound = {"dq": 2 * math.sqrt(e_s ** 2 + e_out ** 2 + e_ds ** 2 + e_k ** 2),
             "dk": 2 * math.sqrt(e_s ** 2 + e_out ** 2 + e_ds ** 2 + e_q ** 2),
             "dv": 2 * math.sqrt(e_s ** 2 + e_p ** 2 + e_do ** 2)}
    _, dq, dk, dv = _grads(lambda a, b, c: sage_attention(a, b, c, causal=causal), q, k, v, dout)
    err = {"dq": _rel(dq, rdq), "dk": _rel(dk, rdk), "dv": _rel(dv, rdv)}
    for name in err:
        assert err[name] <= bound[name], (name, err[name], bound[name])
        assert err[name] > 1e-3, "the quantized path should differ from FP32 (is it quantizing?)"


def test_sage_unquantized_path_is_exact_to_fp32():
    """quantize=False runs the same tiles in FP32. Each gradient passes through about five
    chained FP32 reductions of length <= N; with rounding errors of random sign each adds
    about sqrt(N)·u, so 10·sqrt(N)·u (2x margin) bounds the relative error (measured ~5e-7)."""
    q, k, v = _qkv(2)
    dout = torch.randn(B, H, N, D)
    for causal in (False, True):
        allowed = torch.ones(N, N, dtype=torch.bool).tril() if causal else None
        rout, rdq, rdk, rdv, _, _ = _exact(q, k, v, dout, allowed)
        out, dq, dk, dv = _grads(lambda a, b, c: sage_attention(a, b, c, causal=causal, quantize=False), q, k, v, dout)
        for got, want in ((out, rout), (dq, rdq), (dk, rdk), (dv, rdv)):
            assert _rel(got, want) < 10 * math.sqrt(N) * U32


def test_sage_keeps_dtype_layout_and_partial_requires_grad():
    q, k, v = _qkv(3, n=128)
    qn, kn, vn = (t.transpose(1, 2).contiguous().to(torch.bfloat16) for t in (q, k, v))
    kn.requires_grad_(True)
    out = sage_attention(qn, kn, vn, layout="NHD")
    assert out.dtype == torch.bfloat16 and out.shape == qn.shape
    out.float().sum().backward()
    assert kn.grad is not None and kn.grad.dtype == torch.bfloat16 and qn.grad is None
    ref = sage_attention(*(t.float().transpose(1, 2) for t in (qn, kn, vn)))
    assert _rel(out.float().transpose(1, 2), ref) <= 2.0 ** -9  # only the output's bf16 rounding (u = 2^-9)


# ---------------------------------------------------------------- block-sparse

def _allowed(mask, n, causal):
    m = mask.bool().repeat_interleave(128, dim=2)[:, :, :n].repeat_interleave(64, dim=3)[..., :n]
    return m & torch.ones(n, n, dtype=torch.bool).tril() if causal else m


@pytest.mark.parametrize("causal", [False, True])
def test_block_sparse_equals_masked_attention(causal):
    """Against float64 autograd of attention with the dropped tiles at -inf. The forward is the
    native FP32 kernel and the backward FP32 torch: tolerance 10·sqrt(N)·u as for Sage's FP32
    path. The mask comes from SpargeAttention2's predictor, with one row of tiles dropped
    entirely to exercise rows that attend nothing (gradient 0)."""
    q, k, v = _qkv(4)
    dout = torch.randn(B, H, N, D)
    mask, sparsity = A.sparse_predict(q.numpy(), k.numpy(), causal=causal, topk=0.5)
    mask = torch.from_numpy(mask)
    mask[0, 1, 1] = 0
    assert 0 < sparsity < 1
    rout, rdq, rdk, rdv, _, _ = _exact(q, k, v, dout, _allowed(mask, N, causal))
    out, dq, dk, dv = _grads(lambda a, b, c: block_sparse_attention(a, b, c, mask, causal=causal), q, k, v, dout)
    for got, want in ((out, rout), (dq, rdq), (dk, rdk), (dv, rdv)):
        assert _rel(got, want) < 10 * math.sqrt(N) * U32
    assert dq[0, 1, 128:].abs().max() == 0


def test_block_sparse_all_ones_is_dense():
    q, k, v = _qkv(5)
    dout = torch.randn(B, H, N, D)
    ones = torch.ones(B, H, 2, 4, dtype=torch.bool)
    out, dq, dk, dv = _grads(lambda a, b, c: block_sparse_attention(a, b, c, ones), q, k, v, dout)
    rout, rdq, rdk, rdv, _, _ = _exact(q, k, v, dout)
    assert np.abs(out.numpy() - A.dense(q.numpy(), k.numpy(), v.numpy())).max() < 1e-6
    for got, want in ((dq, rdq), (dk, rdk), (dv, rdv)):
        assert _rel(got, want) < 10 * math.sqrt(N) * U32
    # The predicted-mask path runs too (its mask is a constant: no gradient reaches the predictor).
    block_sparse_attention(q, k, v, topk=0.5)


def test_block_sparse_gradcheck_float64():
    """float64 runs forward and backward in torch, so gradcheck's default tolerances apply.
    Small tiles (4 x 2) keep it fast; GQA (4 query heads on 2 kv heads), causal, and a mask with
    a dead row of tiles."""
    g = torch.Generator().manual_seed(6)
    q = torch.randn(1, 4, 8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(1, 4, 2, 5, generator=g) > 0.4
    mask[0, 0, 1] = False
    for causal in (False, True):
        f = lambda a, b, c: BlockSparseAttentionFunction.apply(a, b, c, mask, causal, None, "HND", 4, 2)
        assert torch.autograd.gradcheck(f, (q, k, v))


# ---------------------------------------------------------------- SLA2

def _sla(seed=7, critical=0.25):
    torch.manual_seed(seed)
    m = SLA2Attention(H, D, critical=critical)
    with torch.no_grad():  # a non-trivial state: routed by projections, a mix away from 1/2
        m.router_wq.add_(0.3 * torch.randn(D, D))
        m.router_wk.add_(0.3 * torch.randn(D, D))
        m.alpha_logit.copy_(torch.tensor([0.4, -0.7]))
        m.proj_w.add_(0.1 * torch.randn(D, D))
        m.proj_b.copy_(0.1 * torch.randn(D))
    return m


def _relaxed64(m, q, k, v, route, crit=None, alpha=None, proj_w=None, proj_b=None):
    r = torch.from_numpy(route).long()
    crit = (r == 2).double() if crit is None else crit
    return sla2_relaxed(q.double(), k.double(), v.double(), crit, r != 0,
                        m.alpha.detach().double() if alpha is None else alpha,
                        m.proj_w.detach().double() if proj_w is None else proj_w,
                        m.proj_b.detach().double() if proj_b is None else proj_b,
                        block_q=128, block_k=64, scale=None, feature_map="softmax")


def test_sla2_native_matches_the_relaxed_reference():
    """At the hard route, sla2_relaxed (the function the router's estimator differentiates) is
    the native forward, and float64 autograd of it gives the native backward's gradients, within
    the FP32 tolerance 10·sqrt(N)·u used above."""
    m = _sla()
    q, k, v = _qkv(8)
    dout = torch.randn(B, H, N, D)
    route = m.route(q, k)
    assert set(np.unique(route)) == {1, 2}
    ref = [t.detach().double().requires_grad_(True) for t in (q, k, v, m.alpha, m.proj_w, m.proj_b)]
    o64 = _relaxed64(m, *ref[:3], route, alpha=ref[3], proj_w=ref[4], proj_b=ref[5])
    o64.backward(dout.double())
    qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
    out = m(qq, kk, vv)
    out.backward(dout)
    assert _rel(out, o64) < 10 * math.sqrt(N) * U32
    dalpha = m.alpha_logit.grad / (m.alpha * (1 - m.alpha)).detach()  # through the sigmoid
    for got, want in ((qq.grad, ref[0].grad), (kk.grad, ref[1].grad), (vv.grad, ref[2].grad), (dalpha, ref[3].grad),
                      (m.proj_w.grad, ref[4].grad), (m.proj_b.grad, ref[5].grad)):
        assert _rel(got, want) < 10 * math.sqrt(N) * U32


def test_sla2_finite_differences_of_alpha_proj_and_router():
    """Central differences on a few coordinates.

    alpha, proj_w, proj_b: L = Σ dout∘O through the native FP32 forward, summed in float64. O is
    affine in each, so the difference has no truncation error, only rounding: per evaluation an
    output element of O = α·Oˢ + (1 − α)(Oˡ·Wpᵀ + bp) is off by at most (D + 3)·u·M, M = |α||Oˢ| +
    |1 − α|(|Oˡ|·|Wp|ᵀ + |bp|) (a length-D dot product, then the mix), so the difference is
    within 2·(D + 3)·u·Σ|dout|·M / (2h), the sum over the outputs the coordinate touches, plus
    the backward's own FP32 error (10·sqrt(N)·u of |g|). h = 0.5: affine, so h costs nothing.

    Router: the hard route is flat in Wq, Wk (the true loss does not move), so what is checked is
    the straight-through chain: ∂L/∂c (the relaxed tile weight) against central differences of
    sla2_relaxed in float64 (h = 1e-5: truncation O(h²), rounding 1e-16/h, so 1e-6 relative), and
    the router weights' gradient against central differences of Σ G∘R(Wq, Wk) with G = ∂L/∂c
    held fixed, R in float64 (the float32 gradient: pooled length-D products chained into a
    softmax, 4·D·u of the gradient's scale)."""
    m = _sla(critical=0.25)
    q, k, v = _qkv(10)
    g = torch.Generator().manual_seed(11)
    dout = torch.randn(B, H, N, D, generator=g)
    route = m.route(q, k)

    def loss(**over):
        p = {n: getattr(m, n).detach().numpy().copy() for n in ("proj_w", "proj_b")}
        p["alpha"] = m.alpha.detach().numpy().copy()
        for key, (idx, val) in over.items():
            p[key][idx] = val
        out = A.sla_forward(q.numpy(), k.numpy(), v.numpy(), route, p["alpha"], p["proj_w"], p["proj_b"],
                            critical=0.25)
        return float((out.astype(np.float64) * dout.numpy()).sum())

    out = m(q, k, v)  # gradients as the module computes them
    out.backward(dout)
    grads = {"alpha": (m.alpha_logit.grad / (m.alpha * (1 - m.alpha))).detach(), "proj_w": m.proj_w.grad,
             "proj_b": m.proj_b.grad}
    alpha = m.alpha.detach().view(1, H, 1, 1).double()
    o_s = torch.from_numpy(A.sla_forward(q.numpy(), k.numpy(), v.numpy(), route, np.ones(H, np.float32),
                                         m.proj_w.detach().numpy(), None, critical=0.25)).double()
    o_l = torch.from_numpy(A.sla_forward(q.numpy(), k.numpy(), v.numpy(), route, np.zeros(H, np.float32),
                                         np.eye(D, dtype=np.float32), None, critical=0.25)).double()
    mag = alpha.abs() * o_s.abs() + (1 - alpha).abs() * (o_l.abs() @ m.proj_w.detach().double().abs().T
                                                          + m.proj_b.detach().double().abs())
    weight = dout.double().abs() * mag
    h = 0.5
    for name, idx in (("alpha", (0,)), ("alpha", (1,)), ("proj_w", (3, 5)), ("proj_w", (60, 0)), ("proj_b", (7,))):
        base = getattr(m, name).detach().numpy()[idx]
        hi, lo = np.float32(base + h), np.float32(base - h)
        fd = (loss(**{name: (idx, hi)}) - loss(**{name: (idx, lo)})) / float(hi - lo)
        gval = float(grads[name][idx])
        # Outputs the coordinate does not touch are bit-identical in both runs and cancel: only
        # head h (alpha[h]) or output feature a (proj_w[a, :], proj_b[a]) carries rounding.
        touched = weight[:, idx[0]] if name == "alpha" else weight[..., idx[0]]
        rounding = (D + 3) * U32 * float(touched.sum())
        tol = 2 * rounding / float(hi - lo) + 10 * math.sqrt(N) * U32 * float(grads[name].abs().max())
        assert abs(fd - gval) <= tol, (name, idx, fd, gval, tol)

    # The router: ∂L/∂c by differences of the relaxed function.
    crit0 = (torch.from_numpy(route).long() == 2).double()
    c = crit0.clone().requires_grad_(True)
    (_relaxed64(m, q, k, v, route, crit=c) * dout.double()).sum().backward()
    dc = c.grad
    for tile in ((0, 0, 0, 1), (0, 1, 1, 3), (0, 0, 1, 2)):
        e = torch.zeros_like(crit0)
        e[tile] = 1e-5
        fd = ((_relaxed64(m, q, k, v, route, crit=crit0 + e) - _relaxed64(m, q, k, v, route, crit=crit0 - e))
              * dout.double()).sum() / 2e-5
        assert abs(fd - dc[tile]) <= 1e-6 * dc.abs().max(), (tile, fd, dc[tile])
    # ...and the router weights through R, with G = ∂L/∂c.
    wq, wk = m.router_wq.detach().double(), m.router_wk.detach().double()
    surrogate = lambda a, b: float((dc * sla2_router_scores(q.double(), k.double(), a, b)).sum())
    for wname, idx in (("router_wq", (2, 9)), ("router_wq", (40, 40)), ("router_wk", (5, 17))):
        e = torch.zeros(D, D, dtype=torch.float64)
        e[idx] = 1e-5
        if wname == "router_wq":
            fd = (surrogate(wq + e, wk) - surrogate(wq - e, wk)) / 2e-5
        else:
            fd = (surrogate(wq, wk + e) - surrogate(wq, wk - e)) / 2e-5
        gw = getattr(m, wname).grad
        assert abs(fd - float(gw[idx])) <= 4 * D * U32 * float(gw.abs().max()) + 1e-6 * abs(fd), (wname, idx)
    # The true loss is flat in the router (a nudge that keeps the route moves nothing).
    before = m(q, k, v).detach()
    with torch.no_grad():
        m.router_wq[2, 9] += 1e-4
    assert (m.route(q, k) == route).all() and torch.equal(m(q, k, v).detach(), before)


def test_sla2_trains_by_distillation():
    """30 Adam steps toward a dense attention teacher lower the MSE (all trainable parts move).
    N = 128 in 64 x 32 tiles (4 x 4 tiles, one critical per row) keeps it fast on two cores;
    the loss falls to about 0.7 of its start here, the rest being what random q, k leave to a
    one-tile softmax plus a linear branch."""
    m = SLA2Attention(H, D, critical=0.25, block_q=64, block_k=32)
    q, k, v = _qkv(12, n=128)
    teacher = torch.from_numpy(A.dense(q.numpy(), k.numpy(), v.numpy()))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    start = {n: p.detach().clone() for n, p in m.named_parameters()}
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(q, k, v), teacher)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    for n, p in m.named_parameters():
        assert not torch.equal(p.detach(), start[n]), n


# ---------------------------------------------------------------- bad input

def test_bad_input_names_the_argument():
    q, k, v = _qkv(13, n=128)
    with pytest.raises(SlipstreamError, match="for q"):
        sage_attention(q[0], k, v)
    bad = k.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(SlipstreamError, match="in k"):
        sage_attention(q, bad, v)
    with pytest.raises(SlipstreamError, match="for v|v of"):
        block_sparse_attention(q, k, v[:, :, :64], torch.ones(1, 2, 1, 2, dtype=torch.bool))
    with pytest.raises(SlipstreamError, match="block_mask"):
        block_sparse_attention(q, k, v, torch.ones(1, 2, 2, 2, dtype=torch.bool))
    with pytest.raises(SlipstreamError, match="layout"):
        sage_attention(q, k, v, layout="BHSD")
    m = SLA2Attention(4, D)
    with pytest.raises(SlipstreamError, match="4 heads"):
        m(q, k, v)
    nan_v = v.clone()
    nan_v[0, 1, 0, 0] = float("inf")
    with pytest.raises(SlipstreamError, match="in v"):
        SLA2Attention(H, D)(q, k, nan_v)
