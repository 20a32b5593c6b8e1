"""slipstream_torch.attention dense and block-sparse against a float64 numpy softmax.

Bound (derived in native/test/test-attention-dense.cpp; u = 2^-24): per output element
|o - ref| <= (2E + (2Nk + 2Nk/64 + 12)u) * sum_j pi_ij |v_jd|, with E = (D + 6) u scale max_j sum_d |q k|.
"""

import numpy as np
import pytest

from slipstream_torch import attention
from slipstream_torch._lib import SlipstreamError

U = 2.0**-24


def reference(q, k, v, causal=False, mask=None, keep=None, bq=1, bk=1):
    """HND float64; returns out, lse and the per-element bound."""
    B, Hq, Nq, D = q.shape
    Hk, Nk = k.shape[1], k.shape[2]
    kk = np.repeat(k.astype(np.float64), Hq // Hk, axis=1)
    vv = np.repeat(v.astype(np.float64), Hq // Hk, axis=1)
    scale = 1 / np.sqrt(D)
    s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), kk) * scale
    absdot = np.einsum("bhid,bhjd->bhij", np.abs(q.astype(np.float64)), np.abs(kk)) * scale
    E = (D + 6) * U * absdot.max(axis=-1, keepdims=True)
    allowed = np.ones(s.shape, dtype=bool)
    if causal:
        allowed &= np.arange(Nk)[None, :] <= np.arange(Nq)[:, None] + (Nk - Nq)
    if mask is not None:
        allowed &= np.broadcast_to(mask.astype(bool), s.shape)
    if keep is not None:
        allowed &= np.repeat(np.repeat(keep.astype(bool), bq, axis=2)[:, :, :Nq], bk, axis=3)[..., :Nk]
    s = np.where(allowed, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        p = np.exp(s - m)
    p = np.nan_to_num(p)
    l = p.sum(axis=-1, keepdims=True)
    pi = np.divide(p, l, out=np.zeros_like(p), where=l > 0)
    out = pi @ vv
    bound = (2 * E + (2 * Nk + 2 * Nk / 64 + 12) * U) * (pi @ np.abs(vv))
    with np.errstate(divide="ignore"):
        lse = np.where(l[..., 0] > 0, m[..., 0] + np.log(np.where(l[..., 0] > 0, l[..., 0], 1)), -np.inf)
    return out, lse, bound


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, shape).astype(np.float32)


@pytest.mark.parametrize("D", [40, 80, 160, 256])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_matches_reference_gqa(D, causal):
    q, k, v = rand(1, 4, 70, D, seed=1), rand(1, 2, 100, D, seed=2), rand(1, 2, 100, D, seed=3)
    out, lse = attention.dense(q, k, v, causal=causal, return_lse=True)
    ref, ref_lse, bound = reference(q, k, v, causal=causal)
    assert np.all(np.abs(out - ref) <= bound)
    np.testing.assert_allclose(lse, ref_lse, rtol=0, atol=1e-4)


def test_nhd_equals_hnd_and_masked_rows_are_zero():
    q, k, v = rand(2, 3, 50, 64, seed=4), rand(2, 1, 20, 64, seed=5), rand(2, 1, 20, 64, seed=6)
    hnd, lse = attention.dense(q, k, v, causal=True, return_lse=True)
    nhd = attention.dense(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), layout="NHD", causal=True)
    np.testing.assert_array_equal(nhd.transpose(0, 2, 1, 3), hnd)
    # Nq = 50 > Nk = 20: rows i < 30 attend nothing.
    assert np.all(hnd[:, :, :30] == 0) and np.all(np.isneginf(lse[:, :, :30]))


def test_bool_mask_and_varlen():
    q, k, v = rand(1, 2, 33, 40, seed=7), rand(1, 2, 65, 40, seed=8), rand(1, 2, 65, 40, seed=9)
    mask = np.random.default_rng(0).random((1, 1, 33, 65)) < 0.7
    out = attention.dense(q, k, v, mask=mask)
    ref, _, bound = reference(q, k, v, mask=mask)
    assert np.all(np.abs(out - ref) <= bound)
    # varlen of two sequences == each sequence alone (bit for bit).
    cq, ck = np.array([0, 13, 33], np.int32), np.array([0, 40, 65], np.int32)
    qv, kv, vv = (x[0].transpose(1, 0, 2).copy() for x in (q, k, v))
    o = attention.dense(qv, kv, vv, cu_seqlens_q=cq, cu_seqlens_k=ck, causal=True)
    for b in range(2):
        one = attention.dense(qv[None, cq[b]:cq[b + 1]], kv[None, ck[b]:ck[b + 1]], vv[None, ck[b]:ck[b + 1]], layout="NHD", causal=True)
        np.testing.assert_array_equal(o[cq[b]:cq[b + 1]], one[0])


def test_block_sparse():
    q, k, v = rand(1, 2, 150, 64, seed=10), rand(1, 2, 200, 64, seed=11), rand(1, 2, 200, 64, seed=12)
    dense = attention.dense(q, k, v, causal=True)
    keep = np.ones((1, 2, 3, 4), np.uint8)
    out, density = attention.block_sparse(q, k, v, keep, block_q=64, block_k=64, causal=True)
    np.testing.assert_array_equal(out, dense)
    assert density == 1.0
    keep = (np.random.default_rng(1).random((1, 2, 5, 7)) < 0.4).astype(np.uint8)
    out, density = attention.block_sparse(q, k, v, keep, block_q=32, block_k=32, causal=True)
    ref, _, bound = reference(q, k, v, causal=True, keep=keep, bq=32, bk=32)
    assert np.all(np.abs(out - ref) <= bound)
    assert 0 < density < 1


def test_errors_name_the_argument():
    q, k, v = rand(1, 2, 8, 16), rand(1, 2, 8, 16), rand(1, 2, 8, 16)
    with pytest.raises(SlipstreamError, match="for q"):
        attention.dense(q.astype(np.float64), k, v)
    with pytest.raises(SlipstreamError, match="expected .* for k, got"):
        attention.dense(q, rand(1, 2, 8, 17), v)
    with pytest.raises(SlipstreamError, match="head dim"):
        big = rand(1, 1, 2, 300)
        attention.dense(big, big, big)
    with pytest.raises(SlipstreamError, match="for layout"):
        attention.dense(q, k, v, layout="BHSD")
    with pytest.raises(SlipstreamError, match="in mask") as e:
        attention.dense(q, k, v, mask=np.full((1, 1, 8, 8), np.nan, np.float32))
    assert e.value.code == "SLIP_STATUS_NON_FINITE"
    with pytest.raises(SlipstreamError, match="for block_mask"):
        attention.block_sparse(q, k, v, np.ones((1, 2, 2, 2), np.uint8), block_q=3, block_k=3)
