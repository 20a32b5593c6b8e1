"""Warp-specialized variant of sage_attention.py's Hopper kernel (same buffers, same parameters).

sage_attention.py runs one warpgroup per 64 query rows and makes every thread also issue the
cp.async of the next K/V tiles; per 64 x 128 tile a thread then spends, besides the softmax, two CTA
barriers and the copy addressing, and the two CTAs of an SM each fetch every K/V tile from L2. Here
a CTA owns BLOCK_M = 128 query rows and gl.warp_specialize splits it into three partitions:
  - consumer warpgroup 0 (the default partition, num_warps = 4) and consumer warpgroup 1 (a
    worker of 4 warps), 64 rows each: per key tile exactly sage_attention._step's math (INT8
    Q.K^T of tile j + 1 issued before the softmax of tile j, FP8 P from registers into the P.V
    wgmma, the FFMA of raw accumulator bits), reading K and V from a STAGES-deep shared ring that
    both share;
  - the producer (PRODUCER_WARPS warps, PRODUCER_REGS registers a thread): Q once, then the K and
    V^T tiles by cp.async; every producer thread arrives on the stage's `full` barrier when its
    own copies have landed (cp.async.mbarrier.arrive.noinc), and waits on the stage's `empty`
    barrier before refilling it.
Why two consumer partitions rather than one of 8 warps: gluon puts a bar.sync of the whole
partition before every mbarrier.wait that follows another wait on the same barrier array (Triton's
guard against a warp running a phase ahead), and its mbarrier.arrive is a bar.sync of the partition
plus one elected arrive. In one 8-warp partition both would lock the two warpgroups together every
tile; per warpgroup the wait's bar.sync is 128 threads that wgmma keeps aligned anyway. The
consumers release a stage per thread (cp.async.mbarrier.arrive.noinc with no copies of their own
pending fires at once; `empty` counts all 256 consumer threads), so no barrier for that.

Options (constexprs; aot.py must pass them all, as the AST source does not apply defaults):
  PINGPONG       the warpgroups take turns issuing their wgmmas (named barriers PP_BAR and PP_BAR
                 + 1 through inline PTX: gluon exposes none), so that one's softmax runs while the
                 tensor cores work on the other's tiles
  CONSUMER_REGS  warpgroup 1's registers (setmaxnreg); warpgroup 0 gets what Triton leaves
                 (240 with PRODUCER_REGS 24, 232 with 32)
  LOAD_ROWS      the producer copies a tile in slices of this many rows, so that only one slice's
                 addresses are live in its few registers (Triton's membar puts a bar.sync of the
                 producer's warps between slices of one buffer; that costs only the producer)
  UNROLL         2: two tiles an iteration, S_{j+2} in the registers S_j leaves (no S moves);
                 spills 1.5 KB at D 128 in Triton 3.6, kept for a later compiler
Launch: grid (cdiv(Nq, BLOCK_M), B * Hq) as the current kernel, 4 + 4 + PRODUCER_WARPS warps padded
to whole warpgroups (metadata num_warps 12; setmaxnreg works per warpgroup); aot.py's table carries
BLOCK_M 128 and the warp count to the launcher, and compact_tiles builds the block-sparse lists per
128 rows from that BLOCK_M (the sparse kernels walk 64-key tiles as before).
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, warpgroup_mma, \
    warpgroup_mma_wait

from sage_attention import (MAGIC_BITS, _as_operand, _keep_alive, _key_tiles, _last_tile, _pv, _qkv_smem,
                            _softmax, _tile_start, _write_out)

PP_BAR = gl.constexpr(12)  # named barriers 12 and 13; Triton's own partition barriers use low ids


@gluon.jit
def _named_barrier(bar_id, SYNC: gl.constexpr):
    # Both consumer warpgroups (256 threads) meet at bar_id: bar.sync waits there, bar.arrive only
    # counts this warp in and goes on.
    if SYNC:
        gl.inline_asm_elementwise("bar.sync $1, 256; mov.u32 $0, 0;", "=r,r", [bar_id], dtype=gl.int32,
                                  is_pure=False, pack=1)
    else:
        gl.inline_asm_elementwise("bar.arrive $1, 256; mov.u32 $0, 0;", "=r,r", [bar_id], dtype=gl.int32,
                                  is_pure=False, pack=1)


@gluon.jit
def _release(empty, stage):
    # Every consumer thread arrives once (the barrier counts all of them): no partition-wide
    # bar.sync, and each thread arrives only after its own wgmma wait, so the stage is free once
    # all have.
    async_copy.mbarrier_arrive(empty.index(stage), increment_count=False)


@gluon.jit
def _producer(q_smem, k_smem, v_smem, full, empty, qc, kc_head, vt_head, q_row0, first, Nq, Nkp, tiles_row, n_end,
              D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, SPARSE: gl.constexpr,
              STAGES: gl.constexpr, PW: gl.constexpr, ROWS: gl.constexpr):
    # cp.async moves 16 bytes a thread along the contiguous dimension; a tile goes in slices of ROWS
    # rows so that only one slice's addresses are live at a time (the producer has few registers).
    ld_kq: gl.constexpr = gl.BlockedLayout([1, 16], [32 * 16 // D, D // 16], [PW, 1], [1, 0])
    ld_v: gl.constexpr = gl.BlockedLayout([1, 16], [32 * 16 // BLOCK_N, BLOCK_N // 16], [PW, 1], [1, 0])
    d_ld = gl.arange(0, D, layout=gl.SliceLayout(0, ld_kq))
    q_r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, ld_kq))
    for r0 in gl.static_range(0, BLOCK_M, ROWS):
        rows = first + r0 + q_r
        async_copy.async_copy_global_to_shared(q_smem.slice(r0, ROWS, dim=0),
                                               qc + (q_row0 + r0 + q_r)[:, None] * D + d_ld[None, :],
                                               mask=(rows < Nq)[:, None])
    k_r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, ld_kq))
    v_r = gl.arange(0, ROWS, layout=gl.SliceLayout(1, ld_v))
    n_ld = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, ld_v))
    for j in range(n_end):
        s = j % STAGES
        # Round r of stage s waits for the consumers' release of round r - 1; the first round's
        # wait (parity 1, "the phase before the first") passes at once.
        mbarrier.wait(empty.index(s), ((j // STAGES) & 1) ^ 1)
        start_n = _tile_start(tiles_row, j, SPARSE, BLOCK_N)
        k_tile = kc_head + start_n * D  # BLOCK_N whole rows: one contiguous block
        for r0 in gl.static_range(0, BLOCK_N, ROWS):
            async_copy.async_copy_global_to_shared(k_smem.index(s).slice(r0, ROWS, dim=0),
                                                   k_tile + (r0 + k_r)[:, None] * D + d_ld[None, :])
        v_tile = vt_head + start_n
        for r0 in gl.static_range(0, D, ROWS):
            async_copy.async_copy_global_to_shared(v_smem.index(s).slice(r0, ROWS, dim=0),
                                                   v_tile + (r0 + v_r)[:, None] * Nkp + n_ld[None, :])
        # Fires when this thread's copies (Q's too, for tile 0) have landed.
        async_copy.mbarrier_arrive(full.index(s), increment_count=False)


@gluon.jit
def _tile(j, s_int, acc, m_i, l_i, my_q, k_smem, v_smem, full, empty, magic, ks_head, tiles_row, n_full, qs_safe, rows,
          Nk, shift, causal, my_bar, other_bar, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, SPARSE: gl.constexpr,
          STAGES: gl.constexpr, FLUSH: gl.constexpr, PINGPONG: gl.constexpr, s_layout: gl.constexpr,
          p_layout: gl.constexpr, row_o: gl.constexpr):
    """Tile j with S_j = s_int in registers (sage_attention._step without the loads): returns S_{j+1}."""
    nxt = j + 1
    mbarrier.wait(full.index(nxt % STAGES), (nxt // STAGES) & 1)
    fence_async_shared()  # cp.async wrote through the generic proxy; wgmma reads through the async one
    if PINGPONG:
        _named_barrier(my_bar, True)
    s_tok = warpgroup_mma(my_q, k_smem.index(nxt % STAGES).permute((1, 0)), magic, is_async=True)
    p, alpha, m_i, l_i = _softmax(s_int, ks_head, _tile_start(tiles_row, j, SPARSE, BLOCK_N), qs_safe, m_i, l_i, rows,
                                  Nk, shift, causal, j >= n_full, BLOCK_M, BLOCK_N, s_layout)
    p_op = _as_operand(p, BLOCK_M, BLOCK_N, p_layout)
    if PINGPONG:
        s_int, acc = _pv_pingpong(p_op, v_smem.index(j % STAGES).permute((1, 0)), acc,
                                  gl.convert_layout(alpha, row_o)[:, None], s_tok, other_bar, FLUSH)
    else:
        s_int, acc = _pv(p_op, v_smem.index(j % STAGES).permute((1, 0)), acc, gl.convert_layout(alpha, row_o)[:, None],
                         s_tok, True, FLUSH)
    _release(empty, j % STAGES)
    return s_int, acc, m_i, l_i


@gluon.jit
def _consumer(q_smem, k_smem, v_smem, full, empty, qs, ks_head, vs, lsec, out, lse, q_row0, kv, b, h, first, Nq, Nk,
              out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tiles_row, n_full, n_end,
              D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, SPARSE: gl.constexpr,
              STAGES: gl.constexpr, FLUSH: gl.constexpr, PINGPONG: gl.constexpr, UNROLL: gl.constexpr,
              WG: gl.constexpr):
    """Warpgroup WG's BLOCK_M rows (64) of the CTA, from row `first` (already offset by WG)."""
    warps: gl.constexpr = [BLOCK_M // 16, 1]
    my_q = q_smem.slice(WG * BLOCK_M, BLOCK_M, dim=0)
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=warps, instr_shape=[16, BLOCK_N, 32])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=warps, instr_shape=[16, D, 32])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=4)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    col_o: gl.constexpr = gl.SliceLayout(0, o_layout)

    shift = Nk - Nq
    rows = first + gl.arange(0, BLOCK_M, layout=row_s)
    row_ok = rows < Nq
    q_rows = q_row0 + rows - first
    qs_safe = gl.maximum(gl.load(qs + q_rows, mask=row_ok, other=0.0), 1e-30)
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, row_s)
    l_i = gl.zeros([BLOCK_M], gl.float32, row_s)
    acc = gl.zeros([BLOCK_M, D], gl.float32, o_layout)
    magic = gl.full([BLOCK_M, BLOCK_N], MAGIC_BITS, gl.int32, s_layout)
    my_bar = PP_BAR + WG
    other_bar = PP_BAR + 1 - WG
    if PINGPONG:
        if WG == 1:
            if n_end > 1:  # warpgroup 0 issues first; its n_end - 1 turns need as many arrivals
                _named_barrier(other_bar, False)

    if n_end > 0:
        mbarrier.wait(full.index(0), 0)
        fence_async_shared()  # cp.async wrote through the generic proxy; wgmma reads through the async one
        s_tok = warpgroup_mma(my_q, k_smem.index(0).permute((1, 0)), magic, is_async=True)
        s_int = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok])
        if UNROLL == 2:
            # Two tiles an iteration: S_{j+2} can land in the registers S_j leaves, so the loop
            # carries S without the register moves a one-tile body needs.
            for j2 in range(0, (n_end - 1) // 2):
                j = 2 * j2
                s_int, acc, m_i, l_i = _tile(j, s_int, acc, m_i, l_i, my_q, k_smem, v_smem, full, empty, magic, ks_head,
                                             tiles_row, n_full, qs_safe, rows, Nk, shift, causal, my_bar, other_bar,
                                             BLOCK_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, s_layout, p_layout,
                                             row_o)
                s_int, acc, m_i, l_i = _tile(j + 1, s_int, acc, m_i, l_i, my_q, k_smem, v_smem, full, empty, magic,
                                             ks_head, tiles_row, n_full, qs_safe, rows, Nk, shift, causal, my_bar,
                                             other_bar, BLOCK_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, s_layout,
                                             p_layout, row_o)
            if (n_end - 1) % 2 == 1:
                s_int, acc, m_i, l_i = _tile(n_end - 2, s_int, acc, m_i, l_i, my_q, k_smem, v_smem, full, empty, magic,
                                             ks_head, tiles_row, n_full, qs_safe, rows, Nk, shift, causal, my_bar,
                                             other_bar, BLOCK_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, s_layout,
                                             p_layout, row_o)
        else:
            for j in range(0, n_end - 1):
                s_int, acc, m_i, l_i = _tile(j, s_int, acc, m_i, l_i, my_q, k_smem, v_smem, full, empty, magic, ks_head,
                                             tiles_row, n_full, qs_safe, rows, Nk, shift, causal, my_bar, other_bar,
                                             BLOCK_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, s_layout, p_layout,
                                             row_o)
        if PINGPONG:
            if WG == 0:
                if n_end > 1:  # warpgroup 1's last hand-over: n_end arrivals in all, n_end syncs
                    _named_barrier(my_bar, True)
        acc, m_i, l_i = _last_tile(s_int, acc, m_i, l_i, v_smem, ks_head, tiles_row, n_end, n_full, qs_safe, rows, Nk,
                                   shift, causal, BLOCK_M, BLOCK_N, SPARSE, STAGES, FLUSH, s_layout, p_layout, row_o)

    _write_out(acc, m_i, l_i, vs, lsec, out, lse, kv, b, h, first, q_rows, row_ok, Nq, out_sb, out_sh, out_sn,
               write_lse, has_lsec, D, BLOCK_M, row_o, col_o)


@gluon.jit
def _pv_pingpong(p_op, v_tile, acc, alpha, s_tok, other_bar, FLUSH: gl.constexpr):
    """_pv, with the other warpgroup let through to its wgmmas as soon as this one's are issued."""
    if FLUSH:
        pv_tok = warpgroup_mma(p_op, v_tile, acc, use_acc=False, is_async=True)
        _named_barrier(other_bar, False)
        s_next, pv = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok, pv_tok])
        acc = acc * alpha + pv
    else:
        pv_tok = warpgroup_mma(p_op, v_tile, acc * alpha, is_async=True)
        _named_barrier(other_bar, False)
        s_next, acc = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok, pv_tok])
    _keep_alive(p_op)
    return s_next, acc


@gluon.jit
def sage_attention_fwd(qc, qs, kc, ks, vt, vs, lsec, out, lse, tiles, tile_counts,
                       Hq, Hk, Nq, Nk, Nkp, out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tile_cols,
                       D: gl.constexpr, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
                       SPARSE: gl.constexpr, STAGES: gl.constexpr, num_warps: gl.constexpr,
                       FLUSH: gl.constexpr, PINGPONG: gl.constexpr = False, PRODUCER_WARPS: gl.constexpr = 4,
                       PRODUCER_REGS: gl.constexpr = 24, LOAD_ROWS: gl.constexpr = 32,
                       CONSUMER_REGS: gl.constexpr = 240, UNROLL: gl.constexpr = 1):
    """sage_attention.sage_attention_fwd's contract, BLOCK_M = 128 rows a program. num_warps (4)
    is the default partition's: warpgroup 0; warpgroup 1 and the producer come on top."""
    gl.static_assert(BLOCK_M == 32 * num_warps, "two warpgroups of num_warps warps, 16 rows a warp")
    pid_m = gl.program_id(0)
    bh = gl.program_id(1)
    b = bh // Hq
    h = bh % Hq
    hk = h // (Hq // Hk)
    kv = (b * Hk + hk).to(gl.int64)
    first = pid_m * BLOCK_M
    q_row0 = bh.to(gl.int64) * Nq + first

    q_smem, k_smem, v_smem = _qkv_smem(BLOCK_M, BLOCK_N, D, STAGES)
    full = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(full.index(i), count=32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=2 * 32 * num_warps)  # every thread of both warpgroups

    tiles_row, n_full, n_end = _key_tiles(tiles, tile_counts, tile_cols, bh, pid_m, first, Nq, Nk, causal, SPARSE,
                                          BLOCK_M, BLOCK_N)

    # Warpgroup 0 is the default partition, warpgroup 1 and the producer are workers: two
    # partitions, not one of 8 warps, because gluon's mbarrier.wait gets a bar.sync of its whole
    # partition before it (a chain of waits on one barrier array) and that would lock the two
    # warpgroups together every tile.
    WG_M: gl.constexpr = BLOCK_M // 2
    ks_head = ks + kv * Nkp
    gl.warp_specialize([
        (_consumer, (q_smem, k_smem, v_smem, full, empty, qs, ks_head, vs, lsec, out, lse, q_row0, kv, b, h, first, Nq,
                     Nk, out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tiles_row, n_full, n_end,
                     D, WG_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, UNROLL, 0)),
        (_consumer, (q_smem, k_smem, v_smem, full, empty, qs, ks_head, vs, lsec, out, lse, q_row0 + WG_M, kv, b, h,
                     first + WG_M, Nq, Nk, out_sb, out_sh, out_sn, causal, write_lse, has_lsec, tiles_row, n_full,
                     n_end, D, WG_M, BLOCK_N, SPARSE, STAGES, FLUSH, PINGPONG, UNROLL, 1)),
        (_producer, (q_smem, k_smem, v_smem, full, empty, qc, kc + kv * Nkp * D, vt + kv * D * Nkp, q_row0, first, Nq,
                     Nkp, tiles_row, n_end, D, BLOCK_M, BLOCK_N, SPARSE, STAGES, PRODUCER_WARPS, LOAD_ROWS)),
    ], [num_warps, PRODUCER_WARPS], [CONSUMER_REGS, PRODUCER_REGS])
