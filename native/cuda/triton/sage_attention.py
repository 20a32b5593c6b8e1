"""SageAttention2's forward for Hopper (sm_90a) in Gluon, Triton's explicit-layout language.

`aot.py` compiles this file ahead of time into the cubins libslipstream loads (sage-sm90.cu):
building the library needs no Python. It reads the buffers of sage-cuda.cuh that the CUDA
quantizers write (vt in the permuted key order, Nkp a multiple of BLOCK_N) and computes what the
CPU reference (native/src/attention/sage-forward.cpp) does, up to exp2 and summation order:
  S = int32(Qc.Kc^T) * qs_row * ks_group     (qs carries softmax scale * log2(e))
  P~ = 448 * 2^(S - m_run) in E4M3, l += the unrounded P~
  FLUSH:     acc = acc * 2^(m_old - m_new) + (P~.V~ of this tile in a fresh FP32 tile): two-level
             accumulation, since the FP8 MMA accumulates with a 13-bit mantissa
  not FLUSH: the MMA accumulates into acc itself (D 256, which has no registers for a second
             tile; bench/gpu.md measures what it costs in accuracy)
  out = acc * vs / l;  lse = (m + log2(l) - log2(448)) * ln2 + lsec

Why Gluon and not `tl.dot`: Triton waits for every wgmma at once and adds its own I2F; here each
wait and each register is ours. One warpgroup (64 query rows) a CTA, in one of two schedules:
  PIPELINE False (serial; most variants): per key tile j, wait for its copy, S_j = Q.K_j^T (INT8
    wgmma), softmax(S_j) -> P_j (FP8, in registers), P_j.V_j, each waited for in turn. One S tile
    lives, so aot.py caps the registers and several CTAs share a multiprocessor (three at D 128,
    four at D 64, two at D 256), overlapping one's MMAs with another's softmax: SageAttention2's
    Hopper trade, 1.18x faster than the pipelined schedule at D 128 on an H200.
  PIPELINE True: S_{j+1} is issued before softmax(S_j) and runs under it; two S tiles live (~250
    registers, two CTAs a multiprocessor) and the loop needs 3 stages.
Each step first refills the stage every warp is done with (a barrier, then one thread's copies).
K and V^T come by TMA (kc and vt are tensor descriptors: K as [B * Hk * Nkp, D] INT8 with
[BLOCK_N, D] boxes, V^T as [B * Hk * D, Nkp] E4M3 with [D, BLOCK_N] boxes, in the stages' NVMMA
layouts; aot.py's table tells the launcher each box and swizzle): per tile a thread then issues no
copy addresses, and the copy-group wait with its second barrier and proxy fence is one mbarrier
wait (644 SASS instructions a tile a thread against 679 with cp.async; 5% faster on an H200). Q is
copied once by cp.async. bench/NOTES.md has the measurements that chose this shape.
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma, \
    warpgroup_mma_wait

LOG2_448 = gl.constexpr(8.807354922057604)
LN2 = gl.constexpr(0.6931471805599453)
# An INT32 dot d with |d| < 2^22 added to the bits of 1.5 * 2^23 reads as the float 1.5 * 2^23 + d
# exactly, so the S accumulator starts at those bits and no I2F (quarter rate, on the pipe the
# exp2s already load) is needed. D <= 256: |d| <= 256 * 127^2 < 2^22.
MAGIC_BITS = gl.constexpr(0x4B400000)
MAGIC = gl.constexpr(12582912.0)
NEG_INF_BITS = gl.constexpr(-8388608)  # 0xFF800000, -inf's bits as an int32
MASK_N = gl.constexpr(64)  # keys a block-mask column covers: one entry of a sparse program's tile list
NO_KEY = gl.constexpr(1 << 30)  # a first key past any Nk: the columns it starts are masked


@gluon.jit
def _exp2_ftz(x):
    # One MUFU.EX2; gl.exp2 adds a denormal fix-up. P~ below 2^-126 is 0 in E4M3 anyway.
    return gl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=gl.float32, is_pure=True,
                                     pack=1)


@gluon.jit
def _keep_alive(x):
    # wgmma reads its register operand until the wait; a use after the wait keeps the compiler off
    # those registers (Triton 3.6's wait cannot carry 8-bit tensors itself).
    gl.inline_asm_elementwise("// keep $1", "=r,r", [x], dtype=gl.int8, is_pure=False, pack=4)


@gluon.jit
def _tile_start(tiles_row, j, SPARSE: gl.constexpr, BLOCK_N: gl.constexpr):
    if SPARSE:
        return gl.load(tiles_row + j).to(gl.int32) * BLOCK_N
    else:
        return j * BLOCK_N


@gluon.constexpr_function
def _paired(SPARSE, BLOCK_N):
    """A sparse kernel of 128-key steps: it takes its tile list (MASK_N-key entries) two at a time."""
    return bool(SPARSE) and BLOCK_N == 2 * MASK_N.value


@gluon.jit
def _pair_keys(tiles_row, j, n_list):
    """A paired sparse tile j (two list entries of MASK_N keys side by side): the first keys of
    entries 2j and 2j + 1, and the first key the second half is masked by. A pair whose second
    entry lies past the list copies its first tile twice (memory that exists) and masks the
    second copy whole (NO_KEY)."""
    s0 = gl.load(tiles_row + 2 * j).to(gl.int32) * MASK_N
    s1 = gl.load(tiles_row + gl.minimum(2 * j + 1, n_list - 1)).to(gl.int32) * MASK_N
    return s0, s1, gl.where(2 * j + 1 < n_list, s1, NO_KEY)


@gluon.jit
def _load_tile(kc, vt, k_smem, v_smem, ready, stage, kv, Nkp, start_n, start_2, D: gl.constexpr,
               BLOCK_N: gl.constexpr, PAIRED: gl.constexpr):
    """The K (INT8) and V^T (E4M3) tiles of keys [start_n, start_n + BLOCK_N) into a stage; PAIRED:
    MASK_N keys from start_n, then MASK_N from start_2 (the K and V^T descriptors' boxes are
    MASK_N keys, and the V^T stage's 64-byte swizzle makes each half its own swizzle block)."""
    bar = ready.index(stage)
    mbarrier.expect(bar, 2 * BLOCK_N * D)  # a byte an element
    if PAIRED:
        k_st = k_smem.index(stage)
        v_st = v_smem.index(stage)
        tma.async_copy_global_to_shared(kc, [kv * Nkp + start_n, 0], bar, k_st.slice(0, MASK_N, dim=0))
        tma.async_copy_global_to_shared(kc, [kv * Nkp + start_2, 0], bar, k_st.slice(MASK_N, MASK_N, dim=0))
        tma.async_copy_global_to_shared(vt, [kv * D, start_n], bar, v_st.slice(0, MASK_N, dim=1))
        tma.async_copy_global_to_shared(vt, [kv * D, start_2], bar, v_st.slice(MASK_N, MASK_N, dim=1))
    else:
        tma.async_copy_global_to_shared(kc, [kv * Nkp + start_n, 0], bar, k_smem.index(stage))
        tma.async_copy_global_to_shared(vt, [kv * D, start_n], bar, v_smem.index(stage))


@gluon.jit
def _tile_keys(tiles_row, j, n_list, SPARSE: gl.constexpr, BLOCK_N: gl.constexpr):
    """(start_n, start_2, start_hi) of key tile j: its first key, the first key of its second
    MASK_N keys, and the key its second half's columns are masked from (they differ only for a
    paired sparse tile, _pair_keys)."""
    if _paired(SPARSE, BLOCK_N):
        start_n, start_2, start_hi = _pair_keys(tiles_row, j, n_list)
    else:
        start_n = _tile_start(tiles_row, j, SPARSE, BLOCK_N)
        start_2 = start_n + MASK_N
        start_hi = start_2
    return start_n, start_2, start_hi


@gluon.jit
def _as_operand(p, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, p_layout: gl.constexpr):
    """P~ in E4M3 as the A operand of the P.V wgmma, without moving a byte between threads.

    In the S accumulator a thread holds, of each 32 keys, keys 16a + 8b + 2q + e (q = lane % 4;
    a, b, e in {0, 1}); as an A operand it holds k = 16a + 4q + 2b + e. Relabelling key
    16a + 8b + 2q + e as column 16a + 4q + 2b + e makes the two layouts one, and vt stores its
    keys in that order (sage-quant.cu's sm_90 permutation), so P.V sums the same products."""
    p = gl.reshape(p, [BLOCK_M, BLOCK_N // 32, 2, 2, 4, 2])
    p = gl.convert_layout(gl.reshape(gl.permute(p, [0, 1, 2, 4, 3, 5]), [BLOCK_M, BLOCK_N]), p_layout)
    # Four consecutive registers are four consecutive k: two cvt.e4m3x2 and one byte merge.
    return gl.inline_asm_elementwise(
        "{ .reg .b16 lo, hi; cvt.rn.satfinite.e4m3x2.f32 lo, $2, $1; cvt.rn.satfinite.e4m3x2.f32 hi, $4, $3; "
        "mov.b32 $0, {lo, hi}; }", "=r,f,f,f,f", [p], dtype=gl.float8e4nv, is_pure=True, pack=4)


@gluon.jit
def _group_max(x5, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr):
    """[M, H, 8, 4, 2] -> the maxima [M, H, 4] over the 16 values of each (row, h, q) a thread holds,
    as one chain of 15 (ptxas folds a chain's pairs into three-input VIMNMX3; the two-level reduce
    kept 32 independent pair maxima, of which it folded half)."""
    chain = gl.max(gl.reshape(gl.permute(x5, [0, 1, 3, 2, 4]), [BLOCK_M, BLOCK_N // 64, 4, 16]), 3)
    # The same registers in the layout a two-level reduce gives, which the group values broadcast
    # back over x5 with (its type only: the reduce itself is dead code).
    return gl.convert_layout(chain, gl.max(gl.max(x5, 4), 2).type.layout, assert_trivial=True)


@gluon.jit
def _key_scales(ks_head, start_n, start_2, SPARSE: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
                s_layout: gl.constexpr):
    """K's scales of a tile, one per (64-key group h, quad index q) as _softmax's group maxima hold
    them ([BLOCK_N // 64, 4]). Loaded before the tile's S is issued: read after its wait, as it
    was, the load's latency was the softmax's first stall (ncu, D 128: 2% of the warps' samples)."""
    shape = gl.reshape(gl.full([BLOCK_M, BLOCK_N], 0.0, gl.float32, s_layout), [BLOCK_M, BLOCK_N // 64, 8, 4, 2])
    g_layout: gl.constexpr = _group_max(shape, BLOCK_M, BLOCK_N).type.layout  # the type only: no code
    k_layout: gl.constexpr = gl.SliceLayout(0, g_layout)
    hh = gl.arange(0, BLOCK_N // 64, layout=gl.SliceLayout(1, k_layout))
    qq = gl.arange(0, 4, layout=gl.SliceLayout(0, k_layout))
    # The group's first key: past Nk it is padding (scale 0) and so is the whole group; 1e-30
    # keeps c1 > 0 so that masked scores stay -inf rather than 0 * -inf.
    if _paired(SPARSE, BLOCK_N):
        first = gl.where(hh == 0, start_n, start_2)
    else:
        first = start_n + 64 * hh
    return gl.maximum(gl.load(ks_head + first[:, None] + 2 * qq[None, :]), 1e-30)


@gluon.jit
def _softmax(s_int, ks_g, start_n, start_hi, qs_safe, m_i, l_i, rows, Nk, shift, causal, SPARSE: gl.constexpr,
             MASKED: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, s_layout: gl.constexpr):
    """P~ (FP32, s_layout) of one tile, its rescale alpha of the running state, and the new m, l.

    K's INT8 scale is one per (64-key tile, key mod 8 // 2) under every granularity the CUDA path
    takes (block_k 64; sage-quant.cu), and key mod 8 // 2 is the lane's quad index q in the S
    accumulator: each thread's scores of 64 keys share one K scale. So the exponent is one FFMA
    of the raw accumulator bits, c1 * bits + c0, with c1 = qs * ks and c0 folding the magic
    offset and the row max, per (row, 64 keys) instead of per score.

    The group maxima are taken on the bits as integers: every score's float lies in [2^23, 2^24)
    and a masked one is -inf, so the integers order as the floats do, and a chain of integer
    maxima becomes Hopper's three-input VIMNMX3 (D 128: 36 instructions a tile for 60 maxima)."""
    if MASKED:
        c = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        if _paired(SPARSE, BLOCK_N):
            cols = gl.where(c < MASK_N, start_n + c, start_hi + (c - MASK_N))
        else:
            cols = start_n + c
        keep = (cols[None, :] < Nk) & ((cols[None, :] <= rows[:, None] + shift) | (causal == 0))
        s_int = gl.where(keep, s_int, NEG_INF_BITS)
    # key = 64 h + 8 i + 2 q + e: h and i in registers, q across the quad's lanes, e the pair.
    i5 = gl.reshape(s_int, [BLOCK_M, BLOCK_N // 64, 8, 4, 2])
    b5 = i5.to(gl.float32, bitcast=True)  # 1.5 * 2^23 + S_int, exactly
    group_max = _group_max(i5, BLOCK_M, BLOCK_N).to(gl.float32, bitcast=True)  # [M, H, 4], in each thread
    g_layout: gl.constexpr = group_max.type.layout
    r_layout: gl.constexpr = gl.SliceLayout(1, gl.SliceLayout(2, g_layout))
    qs_g = gl.convert_layout(qs_safe, r_layout)
    # The row max of S = qs * ks * (bits - MAGIC); qs > 0, so qs times the max of ks * (bits - MAGIC).
    zmax = gl.max(gl.max((group_max - MAGIC) * ks_g[None, :, :], 2), 1)
    m_new = gl.maximum(m_i, qs_safe * gl.convert_layout(zmax, gl.SliceLayout(1, s_layout)))
    # A row that has seen only masked keys keeps m = -inf: alpha 1, P~ 0, never inf - inf.
    m_use = gl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = gl.where(m_i == float("-inf"), 1.0, _exp2_ftz(m_i - m_use))
    c1 = qs_g[:, None, None] * ks_g[None, :, :]
    c0 = (LOG2_448 - gl.convert_layout(m_use, r_layout))[:, None, None] - c1 * MAGIC
    p5 = _exp2_ftz(c1[:, :, None, :, None] * b5 + c0[:, :, None, :, None])
    p = gl.convert_layout(gl.reshape(p5, [BLOCK_M, BLOCK_N]), s_layout)
    l_new = l_i * alpha + gl.sum(p, 1)
    return p, alpha, m_new, l_new


@gluon.jit
def _pv(p_op, v_tile, acc, alpha, s_tok, WITH_S: gl.constexpr, FLUSH: gl.constexpr):
    """acc rescaled by alpha plus P.V of one tile; with WITH_S also waits for S_{j+1} (s_tok)."""
    if FLUSH:
        pv_tok = warpgroup_mma(p_op, v_tile, acc, use_acc=False, is_async=True)
        if WITH_S:
            s_next, pv = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok, pv_tok])
        else:
            s_next = s_tok
            pv = warpgroup_mma_wait(num_outstanding=0, deps=[pv_tok])
        acc = acc * alpha + pv
    else:
        pv_tok = warpgroup_mma(p_op, v_tile, acc * alpha, is_async=True)
        if WITH_S:
            s_next, acc = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok, pv_tok])
        else:
            s_next = s_tok
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[pv_tok])
    _keep_alive(p_op)
    return s_next, acc


@gluon.jit
def _step(j, s_int, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head,
          tiles_row, n_end, n_full, qs_safe, rows, Nk, shift, causal,
          D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, SPARSE: gl.constexpr,
          STAGES: gl.constexpr, s_layout: gl.constexpr, p_layout: gl.constexpr, row_o: gl.constexpr,
          FLUSH: gl.constexpr, MASKED: gl.constexpr):
    """Tile j with S_j = s_int in registers: returns S_{j+1} (issued first, under the softmax)."""
    gl.static_assert(not _paired(SPARSE, BLOCK_N), "paired sparse tiles run the serial loop")
    start_n = _tile_start(tiles_row, j, SPARSE, BLOCK_N)
    ks_g = _key_scales(ks_head, start_n, start_n + MASK_N, SPARSE, BLOCK_M, BLOCK_N, s_layout)
    # Tile j + STAGES - 1 goes to the stage of tile j - 1, whose MMAs every warp has waited for.
    gl.thread_barrier()
    nxt = j + STAGES - 1
    if nxt < n_end:
        ahead = _tile_start(tiles_row, nxt, SPARSE, BLOCK_N)
        _load_tile(kc, vt, k_smem, v_smem, ready, nxt % STAGES, kv, Nkp, ahead, ahead, D, BLOCK_N, False)
    mbarrier.wait(ready.index((j + 1) % STAGES), ((j + 1) // STAGES) & 1)

    s_tok = warpgroup_mma(q_smem, k_smem.index((j + 1) % STAGES).permute((1, 0)), magic, is_async=True)
    p, alpha, m_i, l_i = _softmax(s_int, ks_g, start_n, start_n, qs_safe, m_i, l_i, rows, Nk, shift, causal, SPARSE,
                                  MASKED, BLOCK_M, BLOCK_N, s_layout)
    p_op = _as_operand(p, BLOCK_M, BLOCK_N, p_layout)
    s_next, acc = _pv(p_op, v_smem.index(j % STAGES).permute((1, 0)), acc, gl.convert_layout(alpha, row_o)[:, None],
                      s_tok, True, FLUSH)
    return s_next, acc, m_i, l_i


@gluon.jit
def _qkv_smem(BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, D: gl.constexpr, STAGES: gl.constexpr,
              SPARSE: gl.constexpr):
    """Shared memory for Q (INT8 [BLOCK_M, D]) and STAGES stages of K (INT8 [BLOCK_N, D]) and V^T
    (FP8 [D, BLOCK_N]), in the layouts wgmma reads (a paired sparse tile's V^T: the layout of
    aot.py's v_layout, whose swizzle blocks are the pair's halves)."""
    q_smem = gl.allocate_shared_memory(gl.int8, [BLOCK_M, D], gl.NVMMASharedLayout.get_default_for([BLOCK_M, D], gl.int8))
    k_smem = gl.allocate_shared_memory(gl.int8, [STAGES, BLOCK_N, D],
                                       gl.NVMMASharedLayout.get_default_for([BLOCK_N, D], gl.int8))
    if _paired(SPARSE, BLOCK_N):
        v_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=MASK_N, element_bitwidth=8, rank=2)
    else:
        v_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([D, BLOCK_N], gl.float8e4nv)
    v_smem = gl.allocate_shared_memory(gl.float8e4nv, [STAGES, D, BLOCK_N], v_layout)
    return q_smem, k_smem, v_smem


@gluon.jit
def _key_tiles(tiles, tile_counts, tile_cols, bh, pid_m, first, Nq, Nk, causal, SPARSE: gl.constexpr,
               BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr):
    """(tiles_row, n_full, n_end, n_list) of the program's query rows [first, first + BLOCK_M): the
    first n_full key tiles need no mask, those up to n_end do (SPARSE: from the compacted tile list
    of n_list entries; BLOCK_N = 2 MASK_N takes them two at a time, a pair needing no mask when
    both of its entries need none)."""
    tiles_row = tiles
    if SPARSE:
        t = bh.to(gl.int64) * gl.num_programs(0) + pid_m
        tiles_row = tiles + t * tile_cols
        n_full = gl.load(tile_counts + 2 * t)
        n_end = gl.load(tile_counts + 2 * t + 1)
        n_list = n_end
        if _paired(SPARSE, BLOCK_N):
            n_full = n_full // 2
            n_end = (n_end + 1) // 2
    else:
        n_end = gl.cdiv(Nk, BLOCK_N)
        n_full = Nk // BLOCK_N
        if causal:
            shift = Nk - Nq
            seen = gl.maximum(gl.minimum(first + BLOCK_M, Nq) + shift, 0)  # keys the last row sees
            n_end = gl.minimum(n_end, gl.cdiv(seen, BLOCK_N))
            n_full = gl.minimum(n_full, gl.maximum(first + shift + 1, 0) // BLOCK_N)
        n_list = n_end
    return tiles_row, n_full, n_end, n_list


@gluon.jit
def _finish_tile(s_int, acc, m_i, l_i, v_tile, ks_g, start_n, start_hi, qs_safe, rows, Nk, shift, causal,
                 SPARSE: gl.constexpr, MASKED: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
                 FLUSH: gl.constexpr, s_layout: gl.constexpr, p_layout: gl.constexpr, row_o: gl.constexpr):
    """The softmax of a tile's waited-for S and its P.V, waited for (no next S to issue): returns
    acc, m_i, l_i."""
    p, alpha, m_i, l_i = _softmax(s_int, ks_g, start_n, start_hi, qs_safe, m_i, l_i, rows, Nk, shift, causal, SPARSE,
                                  MASKED, BLOCK_M, BLOCK_N, s_layout)
    p_op = _as_operand(p, BLOCK_M, BLOCK_N, p_layout)
    _, acc = _pv(p_op, v_tile, acc, gl.convert_layout(alpha, row_o)[:, None], s_int, False, FLUSH)
    return acc, m_i, l_i


@gluon.jit
def _tiles_pipelined(acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head, tiles_row, n_end,
                     n_full, qs_safe, rows, Nk, shift, causal, D: gl.constexpr, BLOCK_M: gl.constexpr,
                     BLOCK_N: gl.constexpr, SPARSE: gl.constexpr, STAGES: gl.constexpr, s_layout: gl.constexpr,
                     p_layout: gl.constexpr, row_o: gl.constexpr, FLUSH: gl.constexpr):
    """Key tiles 0 .. n_end - 1 (n_end > 0) with S_{j+1} issued under softmax_j: returns acc, m_i, l_i."""
    # Step j copies tile j + STAGES - 1 and then waits for tile j + 1: with 2 stages that is the copy
    # just issued, whose whole latency the CTA then waits out (1.5x slower at D 256 on an H200).
    gl.static_assert(STAGES >= 3, "the pipelined loop needs 3 stages or more")
    mbarrier.wait(ready.index(0), 0)
    s_tok = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), magic, is_async=True)
    s_int = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok])
    n_plain = gl.minimum(n_full, n_end - 1)
    for j in range(0, n_plain):
        s_int, acc, m_i, l_i = _step(j, s_int, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp,
                                     ks_head, tiles_row, n_end, n_full, qs_safe, rows, Nk, shift, causal, D, BLOCK_M,
                                     BLOCK_N, SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH, False)
    for j in range(n_plain, n_end - 1):
        s_int, acc, m_i, l_i = _step(j, s_int, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp,
                                     ks_head, tiles_row, n_end, n_full, qs_safe, rows, Nk, shift, causal, D, BLOCK_M,
                                     BLOCK_N, SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH, True)
    # The last tile, masked whether it needs it or not (once a program: not worth a second copy).
    last = n_end - 1
    start_n = _tile_start(tiles_row, last, SPARSE, BLOCK_N)
    return _finish_tile(s_int, acc, m_i, l_i, v_smem.index(last % STAGES).permute((1, 0)),
                        _key_scales(ks_head, start_n, start_n + MASK_N, SPARSE, BLOCK_M, BLOCK_N, s_layout), start_n,
                        start_n, qs_safe, rows, Nk, shift, causal, SPARSE, True, BLOCK_M, BLOCK_N, FLUSH, s_layout,
                        p_layout, row_o)


@gluon.jit
def _step_serial(j, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head, tiles_row, n_end,
                 n_list, qs_safe, rows, Nk, shift, causal, D: gl.constexpr, BLOCK_M: gl.constexpr,
                 BLOCK_N: gl.constexpr, SPARSE: gl.constexpr, STAGES: gl.constexpr, s_layout: gl.constexpr,
                 p_layout: gl.constexpr, row_o: gl.constexpr, FLUSH: gl.constexpr, MASKED: gl.constexpr):
    """Tile j in order: S_j waited for, its softmax, P_j.V_j waited for. One S tile lives at a time
    and none is carried over the loop, which is what lets aot.py's register cap fit more CTAs."""
    PAIRED: gl.constexpr = _paired(SPARSE, BLOCK_N)
    start_n, start_2, start_hi = _tile_keys(tiles_row, j, n_list, SPARSE, BLOCK_N)
    if D <= 128:  # under the S MMA's wait
        ks_g = _key_scales(ks_head, start_n, start_2, SPARSE, BLOCK_M, BLOCK_N, s_layout)
    gl.thread_barrier()  # every warp has retired tile j - 1's MMAs: its stage takes tile j + STAGES - 1
    nxt = j + STAGES - 1
    if nxt < n_end:
        ahead, ahead_2, _ = _tile_keys(tiles_row, nxt, n_list, SPARSE, BLOCK_N)
        _load_tile(kc, vt, k_smem, v_smem, ready, nxt % STAGES, kv, Nkp, ahead, ahead_2, D, BLOCK_N, PAIRED)
    mbarrier.wait(ready.index(j % STAGES), (j // STAGES) & 1)
    s_tok = warpgroup_mma(q_smem, k_smem.index(j % STAGES).permute((1, 0)), magic, is_async=True)
    s_int = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok])
    if D > 128:  # D 256 (two CTAs an SM, 216 registers) measured 2% slower with the early load
        ks_g = _key_scales(ks_head, start_n, start_2, SPARSE, BLOCK_M, BLOCK_N, s_layout)
    return _finish_tile(s_int, acc, m_i, l_i, v_smem.index(j % STAGES).permute((1, 0)), ks_g, start_n, start_hi,
                        qs_safe, rows, Nk, shift, causal, SPARSE, MASKED, BLOCK_M, BLOCK_N, FLUSH, s_layout, p_layout,
                        row_o)


@gluon.jit
def _tiles_serial(acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head, tiles_row, n_end,
                  n_full, n_list, qs_safe, rows, Nk, shift, causal, D: gl.constexpr, BLOCK_M: gl.constexpr,
                  BLOCK_N: gl.constexpr, SPARSE: gl.constexpr, STAGES: gl.constexpr, s_layout: gl.constexpr,
                  p_layout: gl.constexpr, row_o: gl.constexpr, FLUSH: gl.constexpr):
    """Key tiles 0 .. n_end - 1, each in order (_step_serial): returns acc, m_i, l_i."""
    n_plain = gl.minimum(n_full, n_end)
    for j in range(0, n_plain):
        acc, m_i, l_i = _step_serial(j, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head,
                                     tiles_row, n_end, n_list, qs_safe, rows, Nk, shift, causal, D, BLOCK_M, BLOCK_N,
                                     SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH, False)
    for j in range(n_plain, n_end):
        acc, m_i, l_i = _step_serial(j, acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv, Nkp, ks_head,
                                     tiles_row, n_end, n_list, qs_safe, rows, Nk, shift, causal, D, BLOCK_M, BLOCK_N,
                                     SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH, True)
    return acc, m_i, l_i


@gluon.jit
def _write_out(acc, m_i, l_i, vs, lsec, out, lse, kv, b, h, first, q_rows, row_ok, Nq, out_sb, out_sh, out_sn,
               write_lse, has_lsec, D: gl.constexpr, BLOCK_M: gl.constexpr, row_o: gl.constexpr,
               col_o: gl.constexpr):
    """O = acc * V's channel scales / l to out (rows [first, first + BLOCK_M)), and the LSE."""
    rows_o = first + gl.arange(0, BLOCK_M, layout=row_o)
    offs_d = gl.arange(0, D, layout=col_o)
    vscale = gl.load(vs + kv * D + offs_d)
    l_o = gl.convert_layout(l_i, row_o)
    inv_l = gl.where(l_o > 0.0, 1.0 / l_o, 0.0)
    o = acc * vscale[None, :] * inv_l[:, None]
    o_ptrs = (out + b.to(gl.int64) * out_sb + h.to(gl.int64) * out_sh + rows_o.to(gl.int64)[:, None] * out_sn
              + offs_d[None, :])
    gl.store(o_ptrs, o.to(out.dtype.element_ty), mask=(rows_o < Nq)[:, None])
    if write_lse:
        corr = gl.load(lsec + q_rows, mask=row_ok & (has_lsec != 0), other=0.0)
        lse_v = gl.where(l_i > 0.0, (m_i + gl.log2(l_i) - LOG2_448) * LN2 + corr, float("-inf"))
        gl.store(lse + q_rows, lse_v, mask=row_ok)


@gluon.jit
def sage_attention_fwd(qc, qs, kc, ks, vt, vs, lsec, out, lse, tiles, tile_counts,
                       Hq, Hk, Nq, Nk, Nkp, out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tile_cols,
                       D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
                       SPARSE: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr,
                       FLUSH: gl.constexpr, PIPELINE: gl.constexpr):
    """One program per (BLOCK_M query rows, batch * head); out's dtype (bf16 or fp16) is its
    pointer's. Bottom-right causality: row r sees keys <= r + Nk - Nq.

    SPARSE: program t = bh * cdiv(Nq, BLOCK_M) + pid_m computes the key tiles (of MASK_N keys)
    listed in tiles[t * tile_cols :], ascending, int16: tile_counts[2t] of them need no mask (whole
    tile below Nk and causally visible to every row), then up to tile_counts[2t + 1] that do; with
    BLOCK_N = 2 MASK_N two list entries a step (_pair_keys). Dense: every tile, the first that need
    no mask, then the rest.

    PIPELINE: S_{j+1} is issued under softmax_j (two S tiles live); else tiles run in order."""
    gl.static_assert(not SPARSE or BLOCK_N == MASK_N or BLOCK_N == 2 * MASK_N, "sparse steps are 1 or 2 list entries")
    pid_m = gl.program_id(0)
    bh = gl.program_id(1)
    b = bh // Hq
    h = bh % Hq
    hk = h // (Hq // Hk)
    kv = (b * Hk + hk).to(gl.int64)

    # wgmma layouts: S (INT32, k = 32 per instruction) and O (FP32 from FP8) tiled over the warps
    # along rows; P enters the second MMA from registers.
    warps: gl.constexpr = [num_warps, 1]
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=warps, instr_shape=[16, BLOCK_N, 32])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=warps, instr_shape=[16, D, 32])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=4)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    col_o: gl.constexpr = gl.SliceLayout(0, o_layout)

    ld_q: gl.constexpr = gl.BlockedLayout([1, 16], [32 * 16 // D, D // 16], [num_warps, 1], [1, 0])

    q_smem, k_smem, v_smem = _qkv_smem(BLOCK_M, BLOCK_N, D, STAGES, SPARSE)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)

    # Q by cp.async, 16 bytes a thread along D.
    first = pid_m * BLOCK_M
    q_rows_ld = first + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, ld_q))
    d_ld = gl.arange(0, D, layout=gl.SliceLayout(0, ld_q))
    q_ptrs = qc + (bh.to(gl.int64) * Nq + q_rows_ld)[:, None] * D + d_ld[None, :]
    async_copy.async_copy_global_to_shared(q_smem, q_ptrs, mask=(q_rows_ld < Nq)[:, None])
    async_copy.commit_group()
    ks_head = ks + kv * Nkp
    kv32 = kv.to(gl.int32)  # TMA coordinates are 32-bit (B * Hk * Nkp rows: the launcher checks)

    shift = Nk - Nq
    tiles_row, n_full, n_end, n_list = _key_tiles(tiles, tile_counts, tile_cols, bh, pid_m, first, Nq, Nk, causal,
                                                  SPARSE, BLOCK_M, BLOCK_N)
    gl.thread_barrier()  # the mbarriers' init before any TMA or wait
    for i in gl.static_range(STAGES - 1):
        if i < n_end:
            start_n, start_2, _ = _tile_keys(tiles_row, i, n_list, SPARSE, BLOCK_N)
            _load_tile(kc, vt, k_smem, v_smem, ready, i, kv32, Nkp, start_n, start_2, D, BLOCK_N,
                       _paired(SPARSE, BLOCK_N))

    rows = first + gl.arange(0, BLOCK_M, layout=row_s)
    row_ok = rows < Nq
    q_rows = bh.to(gl.int64) * Nq + rows
    qs_safe = gl.maximum(gl.load(qs + q_rows, mask=row_ok, other=0.0), 1e-30)
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, row_s)
    l_i = gl.zeros([BLOCK_M], gl.float32, row_s)
    acc = gl.zeros([BLOCK_M, D], gl.float32, o_layout)
    magic = gl.full([BLOCK_M, BLOCK_N], MAGIC_BITS, gl.int32, s_layout)

    if n_end > 0:
        async_copy.wait_group(0)
        gl.thread_barrier()
        fence_async_shared()  # Q came through the generic proxy; wgmma reads through the async one
        # Two loops, the tiles that need no mask first: one loop testing j >= n_full per tile was
        # if-converted in the sparse kernels (the mask's compares and selects on every tile: 557
        # instructions a 64-key tile where the unmasked body is ~430).
        if PIPELINE:
            acc, m_i, l_i = _tiles_pipelined(acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv32, Nkp,
                                             ks_head, tiles_row, n_end, n_full, qs_safe, rows, Nk, shift, causal, D,
                                             BLOCK_M, BLOCK_N, SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH)
        else:
            acc, m_i, l_i = _tiles_serial(acc, m_i, l_i, q_smem, k_smem, v_smem, ready, magic, kc, vt, kv32, Nkp,
                                          ks_head, tiles_row, n_end, n_full, n_list, qs_safe, rows, Nk, shift, causal, D,
                                          BLOCK_M, BLOCK_N, SPARSE, STAGES, s_layout, p_layout, row_o, FLUSH)
    async_copy.wait_group(0)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(ready.index(i))

    _write_out(acc, m_i, l_i, vs, lsec, out, lse, kv, b, h, first, q_rows, row_ok, Nq, out_sb, out_sh, out_sn,
               write_lse, has_lsec, D, BLOCK_M, row_o, col_o)
