"""SLA2 through ctypes: forward against a float64 numpy re-implementation, native gradients
against float64 central differences of it, and refused arguments."""

import numpy as np
import pytest

from slipstream_torch import attention as A
from slipstream_torch._lib import SlipstreamError

U32 = 2.0 ** -24


def _phi(x, fmap):
    if fmap == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return np.where(x > 0, x + 1, np.exp(x)) if fmap == "elu" else np.maximum(x, 0)


def _sla64(q, k, v, route, alpha, w, b, bq, bk, fmap):
    """From the definition, HND with B = 1; the ABI's scale is FP32: 1/sqrt(D) rounded to float."""
    hq, nq, d = q.shape[1:]
    g = hq // k.shape[1]
    scale = float(np.float32(1 / np.sqrt(d)))
    out = np.zeros(q.shape)
    for h in range(hq):
        kh, vh = k[0, h // g], v[0, h // g]
        for i in range(nq):
            r = route[0, h, i // bq][np.arange(k.shape[2]) // bk]
            s = scale * kh @ q[0, h, i]
            crit, marg = r == 2, r == 1
            e = np.exp(s[crit] - s[crit].max())
            os = e @ vh[crit] / e.sum()
            pq, pk = _phi(q[0, h, i], fmap), _phi(kh[marg], fmap)
            den = (pk @ pq).sum()
            ol = (pk @ pq) @ vh[marg] / den if den > 0 else np.zeros(d)
            out[0, h, i] = alpha[h] * os + (1 - alpha[h]) * (w @ ol + b)
    return out


def _case(seed, hq=2, hk=1, nq=10, nk=13, d=6):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)
    return f(1, hq, nq, d), f(1, hk, nk, d), f(1, hk, nk, d), rng.uniform(0.2, 0.8, hq).astype(np.float32), \
        0.5 * f(d, d), 0.1 * f(d)


@pytest.mark.parametrize("fmap,d", [("softmax", 40), ("elu", 80), ("relu", 128)])
def test_forward_matches_float64(fmap, d):
    q, k, v, alpha, w, b = _case(d, hq=4, hk=2, nq=37, nk=45, d=d)
    opts = dict(block_q=8, block_k=8, critical=0.34, negligible=0.33, feature_map=fmap)
    route, sparsity = A.sla_route(q, k, **opts)
    assert sparsity == pytest.approx(1 - 2 / 6)
    out = A.sla_forward(q, k, v, route, alpha, w, b, **opts)
    ref = _sla64(*(x.astype(np.float64) for x in (q, k, v)), route, alpha.astype(np.float64),
                 w.astype(np.float64), b.astype(np.float64), 8, 8, fmap)
    # float64 inside, one FP32 rounding out: u·|ref| (+1e-10·max|ref| for reassociation).
    assert np.all(np.abs(out - ref) <= U32 * np.abs(ref) + 1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("fmap", ["softmax", "elu", "relu"])
def test_gradients_match_float64_differences(fmap):
    q, k, v, alpha, w, b = _case(7)
    opts = dict(block_q=4, block_k=3, critical=0.4, negligible=0.2, feature_map=fmap)
    route, _ = A.sla_route(q, k, **opts)
    dout = np.random.default_rng(8).normal(size=q.shape).astype(np.float32)
    g = A.sla_backward(q, k, v, route, alpha, w, b, dout, **opts)
    params = {n: x.astype(np.float64) for n, x in dict(q=q, k=k, v=v, alpha=alpha, w=w, b=b).items()}
    loss = lambda p: float((dout * _sla64(p["q"], p["k"], p["v"], route, p["alpha"], p["w"], p["b"], 4, 3, fmap)).sum())
    names = dict(q="dq", k="dk", v="dv", alpha="dalpha", w="dproj_w", b="dproj_b")
    h = 1e-6  # central differences: truncation ~1e-12, cancellation ~1e-16·|L|/h ~ 1e-9
    for n, x in params.items():
        for idx in np.ndindex(x.shape):
            p = {m: y.copy() for m, y in params.items()}
            p[n][idx] += h
            lp = loss(p)
            p[n][idx] -= 2 * h
            fd = (lp - loss(p)) / (2 * h)
            gn = g[names[n]][idx]
            assert abs(gn - fd) <= U32 * abs(fd) + 1e-7, (n, idx, gn, fd)


def test_bad_input():
    q, k, v, alpha, w, b = _case(9)
    route, _ = A.sla_route(q, k, block_q=4, block_k=3, critical=0.4)
    with pytest.raises(SlipstreamError, match=r"expected no causal") as e:
        A.sla_forward(q, k, v, route, alpha, w, b, causal=True, block_q=4, block_k=3)
    assert e.value.code == "SLIP_STATUS_UNSUPPORTED"
    with pytest.raises(SlipstreamError, match=r"for feature_map, got 'tanh'"):
        A.sla_route(q, k, feature_map="tanh")
    with pytest.raises(SlipstreamError, match=r"alpha"):
        A.sla_forward(q, k, v, route, alpha[:1], w, b, block_q=4, block_k=3)
    with pytest.raises(SlipstreamError, match=r"expected a uint8 array for route"):
        A.sla_forward(q, k, v, route.astype(np.int32), alpha, w, b, block_q=4, block_k=3)
    with pytest.raises(SlipstreamError, match=r"expected slip_sla_route values"):
        A.sla_forward(q, k, v, route + 3, alpha, w, b, block_q=4, block_k=3)
    with pytest.raises(SlipstreamError, match=r"dout"):
        A.sla_backward(q, k, v, route, alpha, w, b, dout=q[:, :, :5].copy(), block_q=4, block_k=3)
