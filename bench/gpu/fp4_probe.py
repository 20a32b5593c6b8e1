"""Kernel-only probe of the Hopper NVFP4 x FP8 GEMM (nvfp4_gemm_t_fwd of native/cuda/triton/
nvfp4_gemm.py: y^T = W x^T, the decoded weight as wgmma's register operand), JIT-compiled on the
GPU machine in several tile shapes, next to torch._scaled_mm (cuBLAS FP8, with and without fast
accumulation) and a BF16 matmul of the same shape in the same run.

    python3 bench/gpu/fp4_probe.py [--variants "256,4;256,5;256,3,8,4"] [--out table.md] [--quick]
    BLOCK_M (tokens), STAGES[, GROUP_M (8)[, num_warps (8)]] per variant; BLOCK_N = 16 * num_warps
    weight rows.

x is handed over pre-permuted within each 128-column chunk (x_perm[m, 128c + p] = xq[m, 128c +
XPERM(p)], XPERM(32s + 16a + 4q + j) = 32q + 8s + 4a + j, rows zero-padded to whole chunks, K =
128 * nchunks), as the library's quantizer writes it.

The weight is a random matrix quantized to NVFP4 in torch (E2M1 codes, E4M3 scales per 16, one fp32
global) and packed into the planned tile layout of native/cuda/gemm/fp4-cuda.cuh; colpow (the
per-column power of two the kernel's E4M3 decode needs) is computed here from the scales. Some
checks negate about half of the block scales (and their codes' signs: the same weight) and give
row 0 an all-zero block with scale -448 next to small scales (scale * colpow overflows FP16 there),
since the codec allows any E4M3 scale byte but NaN. x is random BF16 quantized per token to E4M3.
Times exclude the quantization; L2 is flushed (256 MB memset) before each timed call.
"""

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native" / "cuda" / "triton"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import card, time_ms  # noqa: E402

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def quantize_weight(n, k, seed=0, neg_scales=False):
    """A random [n, k] weight (rows of different magnitude, a few outliers) in NVFP4: codes uint8
    [n, k] (bit 3 sign, bits 0..2 magnitude), scales float8_e4m3fn [n, k / 16], global (float).
    neg_scales: negative scales too (see the module docstring)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    row_mag = torch.exp(torch.randn(n, 1, device="cuda", generator=g))
    w = torch.randn(n, k, device="cuda", generator=g) * row_mag
    w = torch.where(torch.rand(n, k, device="cuda", generator=g) < 1e-3, w * 8, w)
    glob = 448.0 * 6.0 / w.abs().max().item()
    blocks = w.reshape(n, k // 16, 16) * glob
    scale = (blocks.abs().amax(-1) / 6.0).to(torch.float8_e4m3fn)
    sf = scale.float().clamp_min(1e-30)
    v = blocks / sf[..., None]
    table = torch.tensor(E2M1, device="cuda")
    mid = (table[1:] + table[:-1]) / 2
    mag = torch.bucketize(v.abs().clamp_max(6.0), mid, right=False)  # ties go down: good enough here
    codes = (mag | ((v < 0).to(torch.int64) << 3)).to(torch.uint8).reshape(n, k)
    if neg_scales:
        flip = torch.rand(n, k // 16, device="cuda", generator=g) < 0.5
        sf = scale.float()
        sf = torch.where(flip, -sf, sf)  # exact in E4M3
        codes = codes ^ (flip.repeat_interleave(16, -1).to(torch.uint8) << 3)
        # Row 0: scales of 1/16 (colpow 2^10 or more) and block 0 all zero with scale -448, whose
        # scale * colpow is -inf in FP16 unless clamped (0 * -inf: NaN).
        sf[0] = 0.0625
        sf[0, 0] = -448.0
        codes[0, :16] = 0
        scale = sf.to(torch.float8_e4m3fn)
    return codes, scale, glob


def dequantize_weight(codes, scale, glob):
    table = torch.tensor(E2M1, device="cuda", dtype=torch.float64)
    c = codes.long()
    val = table[c & 7] * torch.where(c >= 8, -1.0, 1.0).double()
    n, k = codes.shape
    return (val.reshape(n, k // 16, 16) * scale.double()[..., None]).reshape(n, k) / glob


def pack_tiles(codes, scale):
    """The planned layout: tile (nt, c) of 8 rows x 128 columns at (nt * nchunks + c) * 576 bytes;
    row g's 16 code words at 64 g (word w: columns 8w .. 8w+7, magnitude of column i at bits
    4i .. 4i+2, sign at 8i+7 (i < 4) or 8(i-4)+3 (i >= 4)); row g's 8 scales at 512 + 8 g."""
    n, k = codes.shape
    nt, nc = (n + 7) // 8, (k + 127) // 128
    cp = torch.zeros(nt * 8, nc * 128, dtype=torch.int64, device="cuda")
    cp[:n, :k] = codes.long()
    sp = torch.zeros(nt * 8, nc * 8, dtype=torch.uint8, device="cuda")
    sp[:n, :k // 16] = scale.view(torch.uint8)
    c8 = cp.reshape(nt * 8, nc * 16, 8)  # [row, word, column in word]
    i = torch.arange(8, device="cuda")
    mag_shift = 4 * i
    sign_shift = torch.where(i < 4, 8 * i + 7, 8 * (i - 4) + 3)
    words = (((c8 & 7) << mag_shift) | ((c8 >> 3) << sign_shift)).sum(-1)  # disjoint bits: sum is OR
    words = torch.where(words >= 2 ** 31, words - 2 ** 32, words).to(torch.int32)
    code_bytes = words.view(torch.uint8).reshape(nt, 8, nc, 64).permute(0, 2, 1, 3).reshape(nt, nc, 512)
    scale_bytes = sp.reshape(nt, 8, nc, 8).permute(0, 2, 1, 3).reshape(nt, nc, 64)
    return torch.cat([code_bytes, scale_bytes], -1).reshape(-1).contiguous()


def column_powers(codes, scale):
    """colpow[n]: the largest power of two (<= 2^15, so that it is an FP16 normal) with
    max_k |e2m1 * scale| * colpow <= 448 (scales may be negative); 1 for an all-zero row."""
    table = torch.tensor(E2M1, device="cuda")
    n, k = codes.shape
    prod = (table[codes.long() & 7].reshape(n, k // 16, 16) * scale.float()[..., None]).abs()
    mx = prod.reshape(n, k).amax(-1)
    e = torch.floor(torch.log2(448.0 / mx.clamp_min(1e-30))).clamp(-14, 15)
    return torch.where(mx > 0, torch.exp2(e), torch.ones_like(mx)).float().contiguous()


def quantize_x(x):
    xs = (x.float().abs().amax(-1) / 448.0).clamp_min(1e-12)
    xq = (x.float() / xs[:, None]).to(torch.float8_e4m3fn)
    return xq.contiguous(), xs.contiguous()


def xperm_index(device="cuda"):
    """XPERM: position p of a 128-column chunk of the transposed kernel's x holds column XPERM(p)."""
    p = torch.arange(128, device=device)
    s, a, q, j = p // 32, (p // 16) % 2, (p // 4) % 4, p % 4
    return 32 * q + 8 * s + 4 * a + j


def permute_x(xq, nchunks):
    """xq [M, K] E4M3 -> [M, 128 * nchunks] in the transposed kernel's order, zero-padded."""
    m, k = xq.shape
    pad = torch.zeros(m, nchunks * 128, dtype=torch.uint8, device=xq.device)
    pad[:, :k] = xq.view(torch.uint8)
    return pad.view(m, nchunks, 128)[:, :, xperm_index(xq.device)].reshape(m, nchunks * 128).contiguous().view(
        torch.float8_e4m3fn)


class Problem:
    def __init__(self, m, k, n, seed=0, with_bias=False, neg_scales=False):
        self.m, self.k, self.n = m, k, n
        codes, scale, glob = quantize_weight(n, k, seed, neg_scales)
        self.codes, self.scale, self.glob = codes, scale, glob
        self.tiles = pack_tiles(codes, scale).view(torch.int32)
        self.colpow = column_powers(codes, scale)
        self.gscale = torch.tensor([glob], dtype=torch.float32, device="cuda")
        g = torch.Generator(device="cuda").manual_seed(seed + 1)
        self.x = (torch.randn(m, k, device="cuda", generator=g) * 2).to(torch.bfloat16)
        self.xq, self.xs = quantize_x(self.x)
        self.bias = (torch.randn(n, device="cuda", generator=g) if with_bias
                     else torch.zeros(1, device="cuda"))
        self.has_bias = int(with_bias)
        self.nchunks = (k + 127) // 128
        self._xperm = None

    @property
    def xperm(self):
        if self._xperm is None:
            self._xperm = permute_x(self.xq, self.nchunks)
        return self._xperm

    def reference(self, rows):
        """float64 (FP8 x dequantized) @ (dequantized weight)^T (+ bias), and the BF16 matmul of the
        unquantized x with the dequantized weight, for the given rows."""
        w = dequantize_weight(self.codes, self.scale, self.glob)
        xd = self.xq[rows].double() * self.xs[rows].double()[:, None]
        ref = xd @ w.T
        bf = (self.x[rows] @ w.to(torch.bfloat16).T).double()
        if self.has_bias:
            ref = ref + self.bias.double()
            bf = bf + self.bias.double()
        return ref, bf


def launch(kernel, p, bm, stages, group_m=8, warps=8, out_dtype=torch.bfloat16):
    """BLOCK_N = 16 * warps weight rows x bm tokens per program; x permuted ([M, 128 * nchunks]), by TMA."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    out = torch.empty(p.m, p.n, dtype=out_dtype, device="cuda")
    # Persistent: one program an SM at most, each taking every grid-th tile.
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    grid = (min(triton_cdiv(p.m, bm) * triton_cdiv(p.n, 16 * warps), sms),)
    xd = TensorDescriptor.from_tensor(p.xperm, [bm, 128], gl.NVMMASharedLayout.get_default_for([bm, 128], gl.float8e4nv))
    # The planned weight as int32 [tiles, 144 nchunks]: a step's codes and scales are two boxes of it.
    w2 = p.tiles.view(-1, p.nchunks * 144)
    w_layout = gl.NVMMASharedLayout(swizzle_byte_width=0, element_bitwidth=32, rank=2)
    wcd = TensorDescriptor.from_tensor(w2, [2 * warps, 128], w_layout)
    wsd = TensorDescriptor.from_tensor(w2, [2 * warps, 16], w_layout)
    args = (xd, wcd, wsd, p.xs, p.colpow, p.gscale, p.bias, out, p.m, p.n, p.nchunks, p.has_bias)
    fn = lambda: kernel[grid](*args, BLOCK_M=bm, STAGES=stages, GROUP_M=group_m, num_warps=warps)  # noqa: E731
    return out, fn


def triton_cdiv(a, b):
    return (a + b - 1) // b


def rel_l2(got, ref):
    return ((got.double() - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def parse_variants(spec):
    out = []
    for v in spec.split(";"):
        f = [int(x) for x in v.split(",")]
        if not 2 <= len(f) <= 4:
            raise SystemExit(f"variant {v!r}: BLOCK_M,STAGES[,GROUP_M[,num_warps]]")
        defaults = [None, None, 8, 8]
        out.append(tuple(f + defaults[len(f):]))
    return out


def variant_label(v):
    return "nvfp4 " + ",".join(map(str, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default="256,4;256,5;256,3,8,4",
                    help="BLOCK_M,STAGES[,GROUP_M[,num_warps]] per variant, ';' between variants")
    ap.add_argument("--out", default=None)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="speed at K = N = 8192 only, fewer checks")
    args = ap.parse_args()
    import triton
    import nvfp4_gemm
    variants = parse_variants(args.variants)

    def make(v, p, out_dtype=torch.bfloat16):
        return launch(nvfp4_gemm.nvfp4_gemm_t_fwd, p, *v, out_dtype=out_dtype)
    name, drv = card()
    lines = [f"{name}, driver {drv}, torch {torch.__version__}, triton {triton.__version__}", ""]
    print(lines[0], flush=True)
    flush_buf = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    flush = flush_buf.zero_

    # Correctness, edges included: (M, K, N, bias, output dtype, negative scales).
    checks = [(300, 1040, 1000, True, torch.bfloat16, False), (129, 4096, 4096, False, torch.bfloat16, False),
              (4096, 4096, 4096, False, torch.bfloat16, False), (77, 1024, 1008, True, torch.float16, False),
              (300, 1040, 1000, True, torch.bfloat16, True), (77, 1152, 1008, False, torch.float16, True)]
    if not args.quick:
        checks.append((4096, 8192, 8192, False, torch.bfloat16, False))
    lines += ["| M | K | N | scales | variant | out | rel L2 vs fp64 ref | rel L2 vs bf16 (unquantized x) "
              "| ref vs bf16 |", "|---|---|---|---|---|---|---|---|---|"]
    broken = set()
    for m, k, n, with_bias, odt, neg in checks:
        p = Problem(m, k, n, seed=m + k + n, with_bias=with_bias, neg_scales=neg)
        sc = "+-" if neg else "+"
        rows = torch.arange(m, device="cuda") if m <= 1024 else torch.linspace(0, m - 1, 256, device="cuda").long()
        ref, bf = p.reference(rows)
        for v in variants:
            vs = variant_label(v)
            try:
                out, fn = make(v, p, out_dtype=odt)
                fn()
                torch.cuda.synchronize()
            except Exception as e:  # noqa: BLE001 - a variant that does not compile or run is reported
                broken.add(v)
                msg = f"failed: {type(e).__name__}: {str(e)[-300:]}".replace("\n", " ")
                lines.append(f"| {m} | {k} | {n} | {sc} | {vs} | {str(odt)[6:]} | {msg} | | |")
                print(lines[-1], flush=True)
                continue
            got = out[rows]
            nan = "" if torch.isfinite(out.float()).all() else " (non-finite!)"
            lines.append(f"| {m} | {k} | {n} | {sc} | {vs} | {str(odt)[6:]} | {rel_l2(got, ref):.3e}{nan} | "
                         f"{rel_l2(got, bf):.3e} | {rel_l2(bf, ref):.3e} |")
            print(lines[-1], flush=True)
        del p
        torch.cuda.empty_cache()

    # Speed.
    lines += ["", "| M | K | N | kernel | ms | TFLOPS | vs _scaled_mm | vs _scaled_mm fast | vs bf16 |",
              "|---|---|---|---|---|---|---|---|---|"]
    shapes = [(4096, 8192, 8192)] if args.quick else [(4096, 4096, 4096), (4096, 8192, 8192)]
    for m, k, n in shapes:
        p = Problem(m, k, n, seed=1)
        flops = 2.0 * m * n * k
        wq8 = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda")
        t_sm = time_ms(lambda: torch._scaled_mm(p.xq, wq8.t(), one, one, out_dtype=torch.bfloat16), warmup=3,
                       reps=args.reps, before=flush)
        t_smf = time_ms(lambda: torch._scaled_mm(p.xq, wq8.t(), one, one, out_dtype=torch.bfloat16,
                                                 use_fast_accum=True), warmup=3, reps=args.reps, before=flush)
        wb = wq8.to(torch.bfloat16)
        t_bf = time_ms(lambda: p.x @ wb.T, warmup=3, reps=args.reps, before=flush)

        def row(label, t):
            return (f"| {m} | {k} | {n} | {label} | {t:.3f} | {flops / t / 1e9:.0f} | {t_sm / t:.2f}x | "
                    f"{t_smf / t:.2f}x | {t_bf / t:.2f}x |")
        for label, t in (("torch._scaled_mm fp8", t_sm), ("torch._scaled_mm fp8 fast accum", t_smf),
                         ("torch.matmul bf16", t_bf)):
            lines.append(row(label, t))
            print(lines[-1], flush=True)
        for v in variants:
            if v in broken:
                continue
            try:
                _, fn = make(v, p)
                t = time_ms(fn, warmup=3, reps=args.reps, before=flush)
            except Exception as e:  # noqa: BLE001
                lines.append(f"| {m} | {k} | {n} | {variant_label(v)} | failed: {type(e).__name__} | | | | |")
                print(lines[-1], flush=True)
                continue
            lines.append(row(variant_label(v), t))
            print(lines[-1], flush=True)
        del p, wq8, wb
        torch.cuda.empty_cache()

    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
