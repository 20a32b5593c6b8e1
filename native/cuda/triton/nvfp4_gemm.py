"""NVFP4-weight x FP8-activation GEMM for Hopper (sm_90a) in Gluon, for large M.

    y[m, n] = sum_k xq[m, k] * wq[n, k] * xs[m] / (colpow[n] * global)  (+ bias[n])

computed as y^T = W x^T in tiles of BLOCK_N = 16 * num_warps weight rows (64 a warpgroup) x BLOCK_M
tokens, taken by persistent programs (one an SM); the decoded weight is wgmma's A operand, in
registers, and x its B operand, from shared memory. The weight is decoded straight into the registers
wgmma reads: no decoded tile goes through shared memory (no stores, fence or barrier before the MMA).

x: E4M3 [M, 128 * nchunks] with per-token scales xs [M] (fp32), its columns permuted within each
128-column chunk, x_perm[m, 128c + p] = xq[m, 128c + XPERM(p)], XPERM(32s + 16a + 4q + j) =
32q + 8s + 4a + j (why: the comment on the A fragment below), rows zero-padded to whole chunks, read
through a TMA descriptor (xd). The weight is the planned NVFP4 layout of native/cuda/gemm/fp4-cuda.cuh:
tiles of 8 rows x 128 K at (nt * nchunks + c) * 576 bytes, row g's 16 code words at 64 g (word w =
columns 8w .. 8w+7: magnitude of column i in bits 4i .. 4i+2, its sign at bit 8i+7 for i < 4 and
8(i-4)+3 for i >= 4), row g's 8 E4M3 block scales at 512 + 8 g. Block scales may be negative (any
E4M3 byte but NaN).

Why decode to FP8 rather than to 16 bits: Hopper's FP8 wgmma has twice the rate of BF16 and x is
FP8 already. E2M1 x E4M3 has up to 5 significant bits and E4M3 keeps 4, so the decoded weight is
rounded once (nearest even), after a per-column power of two colpow[n] has put the column's largest
|e2m1 * scale| at or below 448 (E4M3's top): that keeps every column's values in E4M3's normal
range without changing any mantissa, and colpow comes back out in the epilogue, exactly.

Pipeline: one chunk of K (128) per step, the raw weight tiles (codes, scales) of a step and its
x tile copied by TMA (three boxes behind one mbarrier a stage: no copy addresses or masks in the
threads, whose issue time is the step's; ncu had the weight's cp.async addresses waiting on the
copies before them) into one of STAGES (>= 3) stages, STAGES - 2 steps ahead, the ring running on
from a program's tile into its next (the next tile's first copies land during this one's last
steps and epilogue: 4% at M 4,096 against one program a tile). Per step i, with wgmma i-1 still
running:
    wait for step i's copies; barrier (every warpgroup has retired wgmma i-2: its stage is free)
    the copies of step i + STAGES - 2 into that stage
    decode step i's weight rows into registers; issue wgmma i; retire wgmma i-1
The loop runs two steps a trip (see the comment in the kernel), an odd K getting one all-zero step.

Decode: a thread owns 4 code words of each of two weight rows (16 contiguous bytes of a row, one
warp reading a whole raw tile). For each of its blocks it first makes the block's eight possible
values, E4M3(e2m1 magnitude * scale * colpow) (FP16 products, exact, then one rounding), as two
4-byte tables; a code word's eight magnitudes then pick their bytes with two PRMTs, and the code's
sign bits, which sit where E4M3 keeps its signs (bit 8i+7 of the word) or 4 bits lower, are XORed
in. Per weight that is about a third of the instructions of multiplying and converting each one
(SASS: 2,288 instructions a step against 2,600; 0.439 against 0.482 ms at 4,096 x 8,192 x 8,192 on
an H200, bench/NOTES.md).

`python3 native/cuda/triton/nvfp4_gemm.py` compiles the variants for sm_90a (no GPU needed) and
prints registers, spills and shared memory; native/cuda/triton/aot.py compiles the library's;
bench/gpu/fp4_probe.py measures them on a GPU.
"""

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait

TILE_WORDS = gl.constexpr(144)  # 576 bytes: 512 of codes, 64 of scales
SCALE_WORD = gl.constexpr(128)  # the scales' first word within a tile
BLOCK_K = gl.constexpr(128)  # one chunk: a raw tile is one K step


@gluon.jit
def _f16_pair(x):
    return gl.inline_asm_elementwise("{ .reg .b16 h; cvt.rn.f16.f32 h, $1; mov.b32 $0, {h, h}; }", "=r,f", [x],
                                     dtype=gl.int32, is_pure=True, pack=1)


# An FP8 A fragment (k_width 4) gives thread (g, q) = (lane / 4, lane % 4) of warp w the rows
# 16w + g and 16w + g + 8 and, of MMA k-step s (32 columns), the positions 32s + 16a + 4q + j
# (a, j: 0..1, 0..3). The planned tile hands lane 4g + q of a warp row g's code words 4q .. 4q+3
# (16 contiguous bytes: one tile is one warp's 512-byte load), word u decoding to columns
# 8u .. 8u+3 (lo) and 8u+4 .. 8u+7 (hi). So word 4q + s goes to k-step s, lo to a = 0 and hi to
# a = 1: MMA position p = 32s + 16a + 4q + j multiplies weight column
#     XPERM(p) = 32q + 8s + 4a + j      (within each 128-column chunk)
# and x's column XPERM(p) must sit at B's position p. A 16-byte-granular copy cannot gather it (a
# word's two halves land in different threads' 16-byte groups of any such permutation), so x comes
# pre-permuted (x_perm[m, 128c + p] = x[m, 128c + XPERM(p)], rows padded to whole chunks with zeros,
# K = 128 * nchunks): then x's tiles are plain boxes of a TMA copy.

# PTX: the byte tables of one block whose (scale * colpow, scale * colpow) pair is in `s`: E4M3 of
# the magnitudes 0..3 times it into `lut0`, of 4..7 into `lut1`. Needs .b32 p, e01 .. e67 holding
# the magnitudes' FP16 pairs (0, 0.5), (1, 1.5), (2, 3), (4, 6), and .b16 c0 .. c3.
def _block_tables(s, lut0, lut1):
    cvts = "".join(f"mul.rn.f16x2 p, {s}, {e};\ncvt.rn.satfinite.e4m3x2.f16x2 c{i}, p;\n"
                   for i, e in enumerate(("e01", "e23", "e45", "e67")))
    return cvts + f"mov.b32 {lut0}, {{c0, c1}};\nmov.b32 {lut1}, {{c2, c3}};\n"


# One E4M3 scale pair ($4: blocks 2q, 2q+1 of a row) -> each block's eight decoded magnitudes
# E4M3(e2m1[i] * scale * colpow) as byte tables (lut0: i = 0..3, lut1: 4..7): the products and
# their rounding are made once per block of 16 weights, not once per weight. Outputs: block 2q's
# lut0, lut1, then block 2q+1's. scale * colpow ($5: an FP16 pair) is clamped to +-65504 (FP16's
# largest finite) so that an all-zero block with a large scale stays finite: 0 * inf would be NaN;
# any block with a non-zero code has |scale * colpow| <= 896 by colpow's choice.
_SCALE_TABLES_ASM = gl.constexpr("""{
.reg .b32 a, big, nbig, s0, s1, p, e01, e23, e45, e67;
.reg .b16 c0, c1, c2, c3;
mov.b32 e01, 0x38000000;
mov.b32 e23, 0x3E003C00;
mov.b32 e45, 0x42004000;
mov.b32 e67, 0x46004400;
cvt.rn.f16x2.e4m3x2 a, $4;
mul.rn.f16x2 a, a, $5;
mov.b32 big, 0x7BFF7BFF;
mov.b32 nbig, 0xFBFFFBFF;
min.f16x2 a, a, big;
max.f16x2 a, a, nbig;
prmt.b32 s0, a, a, 0x1010;
prmt.b32 s1, a, a, 0x3232;
""" + _block_tables("s0", "$0", "$1") + _block_tables("s1", "$2", "$3") + "}")


# Code word ($2) and its block's tables ($3, $4) -> E4M3 of columns 0..3 ($0) and 4..7 ($1). PRMT
# reads four 4-bit selectors, so the magnitudes of columns 4..7 are shifted down first, and the
# selectors' bit 3 (PRMT's sign-replicate mode) is masked off with the signs. The tables carry the
# scale's sign, so the codes' signs are XORed in (rounding to nearest even is symmetric: flipping
# the sign after the conversion is exact).
_DECODE_ASM = gl.constexpr("""{
.reg .b32 m, m2, s, t;
and.b32 m, $2, 0x77777777;
shr.u32 m2, m, 16;
prmt.b32 t, $3, $4, m;
and.b32 s, $2, 0x80808080;
xor.b32 $0, t, s;
prmt.b32 t, $3, $4, m2;
shl.b32 s, $2, 4;
and.b32 s, s, 0x80808080;
xor.b32 $1, t, s;
}""")


@gluon.jit
def _issue_x_t(i, slot, xd, bar, off_m, x_smem):
    # Odd K's padding step's x box lies past K, which TMA fills with zeros (as the rows past M).
    tma.async_copy_global_to_shared(xd, [off_m, i * BLOCK_K], bar.index(slot), x_smem.index(slot))


@gluon.jit
def _issue_w_t(i, slot, wcd, wsd, bar, tile0, c_smem, s_smem, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr):
    # The step's whole transaction (x's box too, issued after this) is expected here, once: the
    # stage's barrier completes when all three boxes have landed. Tiles past N and odd K's padding
    # step lie outside the weight's tensor, which TMA fills with zeros (zero codes decode to zero).
    b = bar.index(slot)
    mbarrier.expect(b, BLOCK_M * BLOCK_K + BLOCK_N // 8 * TILE_WORDS * 4)
    tma.async_copy_global_to_shared(wcd, [tile0, i * TILE_WORDS], b, c_smem.index(slot))
    tma.async_copy_global_to_shared(wsd, [tile0, i * TILE_WORDS + SCALE_WORD], b, s_smem.index(slot))


@gluon.jit
def _per_word(block_a, block_b, num_warps: gl.constexpr, code_l: gl.constexpr):
    """Per-block values [warp, h, g, q] of blocks 2q (a) and 2q+1 (b) -> one per code word [warp, h,
    g, 4q + s] (word 4q + s takes block 2q + s // 2: joins append the minor index, so the inner join
    is s // 2); no data moves between threads."""
    inner = gl.join(block_a, block_b)
    per = gl.reshape(gl.join(inner, inner), [num_warps, 2, 8, 16])
    return gl.convert_layout(per, code_l, assert_trivial=True)


@gluon.jit
def _decode_t(c_stage, s_stage, cpow2, BLOCK_N: gl.constexpr, num_warps: gl.constexpr, code_l: gl.constexpr,
              sc_l: gl.constexpr, dot_l: gl.constexpr):
    """Raw tile of one step (shared) -> the E4M3 A operand [BLOCK_N, 128] of this step, in registers.

    Code words as [warp, h, g, u] (weight row 16 warp + 8h + g, word u), each thread its 8 words
    (u = 4q .. 4q+3 of two rows); the scales as 16-bit pairs [warp, h, g, q]."""
    # The stages are TMA's [tiles, words] boxes, unswizzled: the same bytes as [warp, h, g, word].
    plain: gl.constexpr = gl.SwizzledSharedLayout(vec=1, per_phase=1, max_phase=1, order=[3, 2, 1, 0])
    words = c_stage._reinterpret(gl.int32, [num_warps, 2, 8, 16], plain).load(code_l)
    sp = s_stage._reinterpret(gl.int16, [num_warps, 2, 8, 4], plain).load(sc_l)
    t0a, t1a, t0b, t1b = gl.inline_asm_elementwise(_SCALE_TABLES_ASM, "=r,=r,=r,=r,h,r", [sp, cpow2],
                                                   dtype=(gl.int32, gl.int32, gl.int32, gl.int32), is_pure=True,
                                                   pack=1)
    lut0 = _per_word(t0a, t0b, num_warps, code_l)
    lut1 = _per_word(t1a, t1b, num_warps, code_l)
    lo, hi = gl.inline_asm_elementwise(_DECODE_ASM, "=r,=r,r,r,r", [words, lut0, lut1], dtype=(gl.int32, gl.int32),
                                       is_pure=True, pack=1)
    # [.., q, s] x a -> [row, s, a, q]: 32-bit group 8s + 4a + q is MMA positions 32s + 16a + 4q + 0..3.
    lo = gl.reshape(lo, [num_warps, 2, 8, 4, 4])
    hi = gl.reshape(hi, [num_warps, 2, 8, 4, 4])
    g4 = gl.reshape(gl.permute(gl.join(lo, hi), [0, 1, 2, 4, 5, 3]), [BLOCK_N, 32])
    # Each group as four byte positions (the same word four times; the asm keeps the first).
    g2 = gl.join(g4, g4)
    b = gl.reshape(gl.join(g2, g2), [BLOCK_N, 128])
    b = gl.convert_layout(b, dot_l, assert_trivial=True)
    return gl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r,r,r,r", [b], dtype=gl.float8e4nv, is_pure=True,
                                     pack=4)


@gluon.jit
def _step_t(i, g, acc, num_steps, next_steps, xd, wcd, wsd, bar, off_m, tile0, next_m, next_tile0, x_smem, c_smem,
            s_smem, cpow2, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
            num_warps: gl.constexpr, code_l: gl.constexpr, sc_l: gl.constexpr, dot_l: gl.constexpr):
    # Step i's boxes landed; after the barrier every warpgroup has retired wgmma i-2 and read its
    # stage's weight, so that stage takes step i + STAGES - 2. (The copies are TMA's and x is read by
    # wgmma, both in the async proxy; the weight is read by the threads after the mbarrier wait,
    # which orders TMA's writes before them: no proxy fence.) i is the step within the tile, g the
    # program's step count, which the stages and their phases follow across tiles; the copies of the
    # tile's last steps' turns are the next tile's first ones (next_steps is 0 after the last tile).
    slot = g % STAGES
    mbarrier.wait(bar.index(slot), (g // STAGES) & 1)
    gl.thread_barrier()
    nxt = i + STAGES - 2
    nslot = (g + STAGES - 2) % STAGES
    if nxt < num_steps:
        _issue_w_t(nxt, nslot, wcd, wsd, bar, tile0, c_smem, s_smem, BLOCK_M, BLOCK_N)
        _issue_x_t(nxt, nslot, xd, bar, off_m, x_smem)
    elif nxt < num_steps + next_steps:
        _issue_w_t(nxt - num_steps, nslot, wcd, wsd, bar, next_tile0, c_smem, s_smem, BLOCK_M, BLOCK_N)
        _issue_x_t(nxt - num_steps, nslot, xd, bar, next_m, x_smem)
    a = _decode_t(c_smem.index(slot), s_smem.index(slot), cpow2, BLOCK_N, num_warps, code_l, sc_l, dot_l)
    acc = warpgroup_mma(a, x_smem.index(slot).permute((1, 0)), acc, is_async=True)
    # Retires wgmma i-1: its operand registers and x stage are free from here on.
    return warpgroup_mma_wait(num_outstanding=1, deps=[acc])


@gluon.jit
def nvfp4_gemm_t_fwd(xd, wcd, wsd, xs, colpow, gscale, bias, out, M, N, nchunks, has_bias,
                     BLOCK_M: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
                     num_warps: gl.constexpr):
    """y[m, n] (the module docstring's product) as y^T tiles of BLOCK_N = 16 * num_warps weight rows
    (64 a warpgroup) x BLOCK_M tokens, the program taking tiles pid, pid + nprog, ... in
    _tile_origin's grouped order. xd is a TMA descriptor of x_perm
    (XPERM order, [M, 128 * nchunks], boxes of BLOCK_M x 128), wcd and wsd of the planned weight
    (signature()); out's dtype (bf16 or fp16) is its pointer's; gscale points at the global (fp32).

    Per step i (one chunk of K), with wgmma i-1 still running:
        wait for step i's copies; barrier (every warpgroup has retired wgmma i-2: its stage is free)
        the copies of step i + STAGES - 2 into that stage
        decode step i's weight rows into registers; issue wgmma i; retire wgmma i-1"""
    gl.static_assert(STAGES >= 3)
    gl.static_assert(num_warps % 4 == 0)
    BLOCK_N: gl.constexpr = 16 * num_warps
    pid = gl.program_id(0)
    nprog = gl.num_programs(0)
    num_tiles = gl.cdiv(M, BLOCK_M) * gl.cdiv(N, BLOCK_N)

    acc_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                    instr_shape=[16, BLOCK_M, 32])
    dot_l: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=acc_l, k_width=4)
    # [warp, h, g, word]: a lane's 16 contiguous bytes of a row, both of its rows in registers.
    code_l: gl.constexpr = gl.BlockedLayout([1, 1, 1, 4], [1, 1, 8, 4], [num_warps, 1, 1, 1], [3, 2, 1, 0])
    sc_l: gl.constexpr = gl.BlockedLayout([1, 1, 1, 1], [1, 1, 8, 4], [num_warps, 1, 1, 1], [3, 2, 1, 0])

    x_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_M, BLOCK_K], gl.float8e4nv)
    w_sl: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=2)
    x_smem = gl.allocate_shared_memory(gl.float8e4nv, [STAGES, BLOCK_M, BLOCK_K], x_sl)
    bar = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(bar.index(i), count=1)
    c_smem = gl.allocate_shared_memory(gl.int32, [STAGES, BLOCK_N // 8, SCALE_WORD], w_sl)
    s_smem = gl.allocate_shared_memory(gl.int32, [STAGES, BLOCK_N // 8, TILE_WORDS - SCALE_WORD], w_sl)
    r3_l: gl.constexpr = gl.SliceLayout(3, sc_l)
    w3 = gl.arange(0, num_warps, layout=gl.SliceLayout(1, gl.SliceLayout(2, r3_l)))
    h3 = gl.arange(0, 2, layout=gl.SliceLayout(0, gl.SliceLayout(2, r3_l)))
    g3 = gl.arange(0, 8, layout=gl.SliceLayout(0, gl.SliceLayout(1, r3_l)))

    num_steps = (nchunks + 1) // 2 * 2
    # The first stages' weight copies go out first: x and xs are the quantizer's output, launched
    # just before this kernel with programmatic dependent launch (gemm_sm90), so this grid starts
    # while the quantizer's last CTAs run and waits here for all of them (a no-op when launched
    # plainly); the weight does not depend on them.
    off_m, off_n = _tile_origin(pid, M, N, BLOCK_M, BLOCK_N, GROUP_M)
    gl.thread_barrier()  # the mbarriers' init before any TMA or wait
    for i in gl.static_range(STAGES - 2):
        if i < num_steps:
            _issue_w_t(i, i, wcd, wsd, bar, off_n // 8, c_smem, s_smem, BLOCK_M, BLOCK_N)
    gl.inline_asm_elementwise("griddepcontrol.wait; // $0", "=r", [], dtype=gl.int32, is_pure=False, pack=1)
    for i in gl.static_range(STAGES - 2):
        if i < num_steps:
            _issue_x_t(i, i, xd, bar, off_m, x_smem)

    # Persistent: the program takes tiles pid, pid + nprog, ... (the grid is at most one program
    # an SM), and its copy ring runs on from one tile into the next, so that the next tile's first
    # copies land during this one's last steps and epilogue instead of after them.
    g = 0  # the program's steps so far: its stages' count
    for t in range(pid, num_tiles, nprog):
        off_m, off_n = _tile_origin(t, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        next_m, next_n = _tile_origin(t + nprog, M, N, BLOCK_M, BLOCK_N, GROUP_M)
        next_steps = gl.where(t + nprog < num_tiles, num_steps, 0)
        # Weight row off_n + 16 w + 8 h + g is row g of tile off_n / 8 + 2w + h.
        tile0 = off_n // 8
        next_tile0 = next_n // 8
        # The column power of the thread's two rows, an FP16 pair (1 past N: those codes are zero).
        n3 = off_n + 16 * w3[:, None, None] + 8 * h3[None, :, None] + g3[None, None, :]
        cpow2 = gl.expand_dims(_f16_pair(gl.load(colpow + n3, mask=n3 < N, other=1.0)), 3)

        acc = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, acc_l)
        # Two steps per trip: PTX names a value computed in a loop body once, so in a rolled loop the
        # decode of step i+1 would write the very registers that wgmma i still reads, and ptxas would
        # serialize every wgmma (C7513/C7515). Unrolled, consecutive steps' operands are distinct
        # registers. What ptxas must not see either: a conditional step (a path that repeats one copy
        # of the step with its wgmma in flight), or a path that skips every wgmma into the final wait
        # (the zero accumulator then counts as written inside the pipeline). So the first two steps
        # come before the loop, and an odd K gets one all-zero padding step (copies masked: zero fill).
        acc = _step_t(0, g, acc, num_steps, next_steps, xd, wcd, wsd, bar, off_m, tile0, next_m, next_tile0, x_smem,
                      c_smem, s_smem, cpow2, BLOCK_M, BLOCK_N, STAGES, num_warps, code_l, sc_l, dot_l)
        acc = _step_t(1, g + 1, acc, num_steps, next_steps, xd, wcd, wsd, bar, off_m, tile0, next_m, next_tile0,
                      x_smem, c_smem, s_smem, cpow2, BLOCK_M, BLOCK_N, STAGES, num_warps, code_l, sc_l, dot_l)
        for j in range(1, num_steps // 2):
            acc = _step_t(2 * j, g + 2 * j, acc, num_steps, next_steps, xd, wcd, wsd, bar, off_m, tile0, next_m,
                          next_tile0, x_smem, c_smem, s_smem, cpow2, BLOCK_M, BLOCK_N, STAGES, num_warps, code_l,
                          sc_l, dot_l)
            acc = _step_t(2 * j + 1, g + 2 * j + 1, acc, num_steps, next_steps, xd, wcd, wsd, bar, off_m, tile0,
                          next_m, next_tile0, x_smem, c_smem, s_smem, cpow2, BLOCK_M, BLOCK_N, STAGES, num_warps,
                          code_l, sc_l, dot_l)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc])
        g += num_steps

        # Row factors in the accumulator's layout (two rows a thread), then through shared memory to a
        # layout whose threads run along n, where y's stores are 16 contiguous bytes.
        inv_g = 1.0 / gl.load(gscale)
        ns = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, acc_l))
        col_s = gl.fdiv(gl.full([BLOCK_N], 1.0, gl.float32, gl.SliceLayout(1, acc_l)),
                        gl.load(colpow + ns, mask=ns < N, other=1.0), ieee_rounding=False) * inv_g
        acc = acc * col_s[:, None]
        TN: gl.constexpr = BLOCK_N // 8
        st_l: gl.constexpr = gl.BlockedLayout([8, 1], [TN, 32 // TN], [1, num_warps], [0, 1])
        HALF: gl.constexpr = BLOCK_M // 2
        left, right = gl.split(gl.permute(gl.reshape(acc, [BLOCK_N, 2, HALF]), [0, 2, 1]))
        _epilogue_t(gl.convert_layout(left, st_l), xs, bias, out, off_m, off_n, M, N, has_bias, BLOCK_N, HALF, st_l)
        _epilogue_t(gl.convert_layout(right, st_l), xs, bias, out, off_m + HALF, off_n, M, N, has_bias, BLOCK_N, HALF,
                    st_l)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(bar.index(i))


@gluon.jit
def _tile_origin(t, M, N, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, GROUP_M: gl.constexpr):
    """Tile t's first token and weight row, in grouped order: GROUP_M token tiles walk N together so
    that their x rows and the weight stay in L2."""
    grid_m = gl.cdiv(M, BLOCK_M)
    grid_n = gl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * grid_n
    first_m = (t // per_group) * GROUP_M
    rows_in_group = gl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (t % per_group) % rows_in_group
    pid_n = (t % per_group) // rows_in_group
    return pid_m * BLOCK_M, pid_n * BLOCK_N


@gluon.jit
def _epilogue_t(v, xs, bias, out, off_m, off_n, M, N, has_bias, BN: gl.constexpr, BM: gl.constexpr,
                st_l: gl.constexpr):
    ns = off_n + gl.arange(0, BN, layout=gl.SliceLayout(1, st_l))
    ms = off_m + gl.arange(0, BM, layout=gl.SliceLayout(0, st_l))
    n_ok = ns < N
    m_ok = ms < M
    xsv = gl.load(xs + ms, mask=m_ok, other=0.0)
    bv = gl.load(bias + ns, mask=n_ok & (has_bias != 0), other=0.0)
    y = v * xsv[None, :] + bv[:, None]
    o_ptrs = out + ms.to(gl.int64)[None, :] * N + ns[:, None]
    gl.store(o_ptrs, y.to(out.dtype.element_ty), mask=n_ok[:, None] & m_ok[None, :])


# ---------------------------------------------------------------- ahead-of-time compile (no GPU)

PARAMS = ["xd", "wcd", "wsd", "xs", "colpow", "gscale", "bias", "out", "M", "N", "nchunks", "has_bias"]
DIVISIBILITY = {"xs": 16, "colpow": 16, "gscale": 16, "bias": 16, "out": 16}


def signature(out_dtype, block_m, warps):
    """The kernel's parameter types; xd is a descriptor of [block_m, 128] boxes of x_perm in the
    NVMMA layout of the kernel's x stages, wcd and wsd of the planned weight seen as int32
    [tiles, 144 * nchunks]: boxes of a step's codes (2 * warps tiles x 128 words) and scales
    (x 16 words), unswizzled."""
    x_layout = gl.NVMMASharedLayout.get_default_for([block_m, 128], gl.float8e4nv)
    w_layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=2)
    tiles = 2 * warps
    types = {"xd": f"tensordesc<fp8e4nv[{block_m}, 128],{x_layout!r}>",
             "wcd": f"tensordesc<i32[{tiles}, 128],{w_layout!r}>", "wsd": f"tensordesc<i32[{tiles}, 16],{w_layout!r}>",
             "xs": "*fp32", "colpow": "*fp32", "gscale": "*fp32", "bias": "*fp32", "out": out_dtype}
    return {name: types.get(name, "i32") for name in PARAMS}


# (BLOCK_M, STAGES, GROUP_M, num_warps); BLOCK_N = 16 * num_warps. aot.py's
# GEMM_VARIANTS are the library's.
T_VARIANTS = [(256, 4, 8, 8), (256, 5, 8, 8), (128, 4, 8, 8), (256, 3, 8, 4)]


def _compile(fn, constexprs, warps, out_dtype):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    sig = signature(out_dtype, constexprs["BLOCK_M"], warps)
    sig.update({k: "constexpr" for k in constexprs})
    attrs = {(PARAMS.index(n),): [["tt.divisibility", v]] for n, v in DIVISIBILITY.items()}
    src = GluonASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})


def compile_t_variant(bm, stages, group_m, warps, out_dtype="*bf16"):
    return _compile(nvfp4_gemm_t_fwd, {"BLOCK_M": bm, "STAGES": stages, "GROUP_M": group_m, "num_warps": warps},
                    warps, out_dtype)


def main():
    import re
    import subprocess
    import tempfile
    from pathlib import Path

    import triton
    bindir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    for v in T_VARIANTS:
        for dt in ("*bf16", "*fp16"):
            k = compile_t_variant(*v, out_dtype=dt)
            with tempfile.TemporaryDirectory() as d:
                ptx = Path(d) / "k.ptx"
                ptx.write_text(k.asm["ptx"])
                info = subprocess.run([str(bindir / "ptxas"), "-arch=sm_90a", "-v", str(ptx), "-o",
                                       str(Path(d) / "k.cubin")], capture_output=True, text=True).stderr
            regs = re.search(r"Used (\d+) registers", info)
            spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
            # C7513/C7515: ptxas serialized the wgmmas, the pipelining is lost.
            tag = "[wgmma serialized] " if "C751" in info else ""
            print(f"{tag}{v} {dt[1:]}: {regs.group(1) if regs else '?'} registers, spills "
                  f"{spill.group(1) + '/' + spill.group(2) if spill else '?'} (store/load bytes), "
                  f"{k.metadata.shared} bytes of shared memory")


if __name__ == "__main__":
    main()
