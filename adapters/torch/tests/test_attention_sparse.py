"""SpargeAttention2 prediction and sparse attention through ctypes, against float64 numpy."""

import numpy as np
import pytest

from slipstream_torch import attention as A
from slipstream_torch._lib import SlipstreamError

U32 = 2.0 ** -24  # FP32 unit roundoff


def _dense64(q, k, v, causal):
    """Float64 softmax attention, HND, GQA, causal bottom-right aligned."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    nq, nk = q.shape[2], k.shape[2]
    if causal:
        s = np.where(np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq, s, -np.inf)
    m = s.max(-1, keepdims=True)
    p = np.exp(s - np.where(np.isinf(m), 0, m))  # a row that attends nothing gets output 0
    return (p / np.maximum(p.sum(-1, keepdims=True), 1e-300)) @ v


@pytest.mark.parametrize("nq,nk,d", [(70, 150, 40), (150, 70, 80), (96, 96, 128)])
def test_nothing_dropped_is_dense(nq, nk, d):
    rng = np.random.default_rng(nq + d)
    q = rng.uniform(-1, 1, (1, 4, nq, d)).astype(np.float32)
    k = rng.uniform(-1, 1, (1, 2, nk, d)).astype(np.float32)
    v = rng.uniform(-1, 1, (1, 2, nk, d)).astype(np.float32)
    out, mask, sparsity = A.sparse(q, k, v, causal=True, block_q=32, block_k=16, topk=1.0)
    assert sparsity == 0.0 and mask.shape == (1, 4, -(-nq // 32), -(-nk // 16))
    # FP32 vs exact: (4·D·u·smax + (Nk + 2)·u)·max|v|, smax = scale·Σ|q_d k_d| <= sqrt(D) here.
    bound = 4 * d * U32 * np.sqrt(d) + (nk + 2) * U32
    assert np.abs(out - _dense64(q, k, v, True)).max() <= bound


def test_hybrid_is_the_union():
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.normal(size=(1, 2, 100, 16)).astype(np.float32)
        k = rng.normal(size=(1, 2, 100, 16)).astype(np.float32)
        opts = dict(block_q=8, block_k=8, sim_threshold=-1.0)
        a, sa = A.sparse_predict(q, k, topk=0.2, **opts)
        p, sp = A.sparse_predict(q, k, topk=0.0, topp=0.6, **opts)
        h, sh = A.sparse_predict(q, k, topk=0.2, topp=0.6, **opts)
        assert np.array_equal(h, a | p) and sh <= min(sa, sp)


def test_bad_input():
    q = np.zeros((1, 2, 10, 8), np.float32)
    with pytest.raises(SlipstreamError, match=r"expected sparse.topk > 0 or sparse.topp > 0"):
        A.sparse_predict(q, q, topk=0.0)
    with pytest.raises(SlipstreamError, match=r"expected a value in \[0, 1\] for sparse.topp, got 2"):
        A.sparse(q, q, q, topp=2.0)
    with pytest.raises(SlipstreamError, match=r"expected a float32 array for q, got float64"):
        A.sparse_predict(q.astype(np.float64), q)
    with pytest.raises(SlipstreamError, match=r"for a sparse option, got 'top_k'"):
        A.sparse_predict(q, q, top_k=0.5)
    with pytest.raises(SlipstreamError) as e:
        A.sparse(q, np.zeros((1, 3, 10, 8), np.float32), np.zeros((1, 3, 10, 8), np.float32))
    assert e.value.code == "SLIP_STATUS_SHAPE_MISMATCH"
