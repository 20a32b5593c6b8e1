"""SageAttention2's forward for Hopper (sm_90a) in Triton: INT8 QK^T and FP8 P.V on wgmma.

Triton lowers the two `tl.dot`s to warpgroup MMAs (wgmma s8 and e4m3); the hand-written kernel in
sage-forward.cu is limited to mma.sync. `aot.py` compiles this file ahead of time into the cubins
libslipstream loads (sage-sm90.cu): building the library needs no Python.

It reads the buffers of sage-cuda.cuh that the CUDA quantizers write, with vt in plain transposed
key order and Nkp a multiple of BLOCK_N, and computes what the CPU reference
(native/src/attention/sage-forward.cpp) does, up to exp2 and summation order:
  S = int32(Qc.Kc^T) * qs_row * ks_col          (qs carries softmax scale * log2(e))
  P~ = 448 * 2^(S - m_run) in E4M3, l += the unrounded P~
  FLUSH:     acc = acc * 2^(m_old - m_new) + (P~.V~ of this tile in the FP8 MMA's accumulator)
  not FLUSH: the MMA accumulates into acc itself (one level: no second register tile, which D 256
             cannot afford; bench/gpu.md measures what it costs in accuracy)
  out = acc * vs / l;  lse = (m + log2(l) - log2(448)) * ln2 + lsec
"""

import triton
import triton.language as tl

LOG2_448 = tl.constexpr(8.807354922057604)
LN2 = tl.constexpr(0.6931471805599453)
# An INT32 dot d with |d| < 2^22 added to the bits of 1.5 * 2^23 reads as the float 1.5 * 2^23 + d
# exactly: one integer add and one FMA turn it into a float on the full-rate pipe (I2F runs at a
# quarter of that rate, as slow as the exp2 that already bounds this kernel). D <= 256: |d| <=
# 256 * 127^2 < 2^22.
MAGIC_BITS = tl.constexpr(0x4B400000)
MAGIC = tl.constexpr(12582912.0)


@triton.jit
def _exp2_ftz(x):
    # One MUFU.EX2; Triton's exp2 adds a denormal fix-up. P~ below 2^-126 is 0 in E4M3 anyway.
    return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=tl.float32,
                                     is_pure=True, pack=1)


@triton.jit
def _attend_tile(acc, l_i, m_i, q, qs_safe, rows, k_ptrs, ks_ptrs, v_ptrs, start_n, Nk, shift, causal,
                 D: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, FLUSH: tl.constexpr):
    kc_tile = tl.load(k_ptrs + start_n * D)
    ks_tile = tl.load(ks_ptrs + start_n)
    vt_tile = tl.load(v_ptrs + start_n).to(tl.float8e4nv, bitcast=True)
    s_int = tl.dot(q, tl.trans(kc_tile))
    bits = (s_int + MAGIC_BITS).to(tl.float32, bitcast=True)
    # z = S_int * ks; S = qs * z, and the row max of S is qs times the row max of z because qs >= 0
    # (qs_safe > 0 keeps 0 * -inf out).
    z = bits * ks_tile[None, :] - MAGIC * ks_tile[None, :]
    if MASKED:
        cols = start_n + tl.arange(0, BLOCK_N)
        keep = (cols[None, :] < Nk) & ((cols[None, :] <= rows[:, None] + shift) | (causal == 0))
        z = tl.where(keep, z, float("-inf"))
    m_new = tl.maximum(m_i, qs_safe * tl.max(z, 1))
    if MASKED:
        # A row that has seen only masked keys keeps m = -inf: alpha 1, P~ 0, never inf - inf.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.where(m_i == float("-inf"), 1.0, _exp2_ftz(m_i - m_use))
    else:
        m_use = m_new
        alpha = _exp2_ftz(m_i - m_use)
    p = _exp2_ftz(qs_safe[:, None] * z + (LOG2_448 - m_use)[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    if FLUSH:
        acc = acc * alpha[:, None] + tl.dot(p.to(tl.float8e4nv), tl.trans(vt_tile))
    else:
        acc = tl.dot(p.to(tl.float8e4nv), tl.trans(vt_tile), acc * alpha[:, None])
    return acc, l_i, m_new


@triton.jit
def sage_attention_fwd(qc, qs, kc, ks, vt, vs, lsec, out, lse, tiles, tile_counts,
                       Hq, Hk, Nq, Nk, Nkp, out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tile_cols,
                       D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       SPARSE: tl.constexpr, FLUSH: tl.constexpr):
    """One program per (BLOCK_M query rows, batch * head); out's dtype (bf16 or fp16) is its
    pointer's. Bottom-right causality: row r sees keys <= r + Nk - Nq.

    SPARSE: program t = bh * cdiv(Nq, BLOCK_M) + pid_m computes the key tiles (of BLOCK_N keys)
    listed in tiles[t * tile_cols :], ascending, int16: tile_counts[2t] of them need no mask (whole
    tile below Nk and causally visible to every row), then up to tile_counts[2t + 1] that do.
    Dense: every tile, the first that need no mask, then the rest."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // Hq
    h = bh % Hq
    hk = h // (Hq // Hk)
    kv = (b * Hk + hk).to(tl.int64)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    offs_n = tl.arange(0, BLOCK_N)
    row_ok = rows < Nq
    q_rows = bh.to(tl.int64) * Nq + rows
    q = tl.load(qc + q_rows[:, None] * D + offs_d[None, :], mask=row_ok[:, None], other=0)
    qs_safe = tl.maximum(tl.load(qs + q_rows, mask=row_ok, other=0.0), 1e-30)

    k_ptrs = kc + (kv * Nkp + offs_n)[:, None] * D + offs_d[None, :]
    ks_ptrs = ks + kv * Nkp + offs_n
    v_ptrs = vt + (kv * D + offs_d)[:, None] * Nkp + offs_n[None, :]

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    shift = Nk - Nq

    if SPARSE:
        t = bh.to(tl.int64) * tl.num_programs(0) + pid_m
        listed = tiles + t * tile_cols
        n_full = tl.load(tile_counts + 2 * t)
        n_end = tl.load(tile_counts + 2 * t + 1)
        for i in range(0, n_full):
            start_n = tl.load(listed + i).to(tl.int32) * BLOCK_N
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, qs_safe, rows, k_ptrs, ks_ptrs, v_ptrs, start_n, Nk,
                                         shift, causal, D, BLOCK_N, False, FLUSH)
        for i in range(n_full, n_end):
            start_n = tl.load(listed + i).to(tl.int32) * BLOCK_N
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, qs_safe, rows, k_ptrs, ks_ptrs, v_ptrs, start_n, Nk,
                                         shift, causal, D, BLOCK_N, True, FLUSH)
    else:
        first = pid_m * BLOCK_M
        n_end = tl.cdiv(Nk, BLOCK_N)
        n_full = Nk // BLOCK_N
        if causal:
            seen = tl.maximum(tl.minimum(first + BLOCK_M, Nq) + shift, 0)  # keys the last row sees
            n_end = tl.minimum(n_end, tl.cdiv(seen, BLOCK_N))
            n_full = tl.minimum(n_full, tl.maximum(first + shift + 1, 0) // BLOCK_N)
        for j in range(0, n_full):
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, qs_safe, rows, k_ptrs, ks_ptrs, v_ptrs, j * BLOCK_N, Nk,
                                         shift, causal, D, BLOCK_N, False, FLUSH)
        for j in range(n_full, n_end):
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, qs_safe, rows, k_ptrs, ks_ptrs, v_ptrs, j * BLOCK_N, Nk,
                                         shift, causal, D, BLOCK_N, True, FLUSH)

    vscale = tl.load(vs + kv * D + offs_d)
    inv_l = tl.where(l_i > 0.0, 1.0 / l_i, 0.0)
    o = acc * vscale[None, :] * inv_l[:, None]
    o_ptrs = out + b.to(tl.int64) * out_sb + h.to(tl.int64) * out_sh + rows.to(tl.int64)[:, None] * out_sn + offs_d[None, :]
    tl.store(o_ptrs, o.to(out.dtype.element_ty), mask=row_ok[:, None])
    if write_lse:
        corr = tl.load(lsec + q_rows, mask=row_ok & (has_lsec != 0), other=0.0)
        lse_v = tl.where(l_i > 0.0, (m_i + tl.log2(l_i) - LOG2_448) * LN2 + corr, float("-inf"))
        tl.store(lse + q_rows, lse_v, mask=row_ok)
