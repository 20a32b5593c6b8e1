"""Compiles the Gluon kernels of libslipstream ahead of time into cubins, and writes the tables the
library launches them by (native/cuda/triton/cubin/sage-kernels.inc for the attention,
native/cuda/triton/cubin/gemm-kernels.inc for the NVFP4 x FP8 GEMM). Building the library needs
neither Python nor Triton: run this after changing a kernel or a variant, and commit its output.

    python3 native/cuda/triton/aot.py        # needs triton (3.6); no GPU: ptxas ships with Triton

Each attention variant fixes the head dim, the tile shape, the pipelining depth, the output dtype
and the accumulation; the shapes were chosen on an H100 and an H200 with bench/gpu/sage_probe.py
(bench/NOTES.md has the sweeps). The GEMM's (nvfp4_gemm.py's transposed kernel) was chosen on an
H200 with bench/gpu/fp4_probe.py.
"""

import hashlib
import sys
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.experimental.gluon._runtime import GluonASTSource

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nvfp4_gemm  # noqa: E402
import sage_attention  # noqa: E402

OUT = HERE / "cubin"
TARGET = GPUTarget("cuda", 90, 32)  # sm_90a: wgmma

# The launcher (native/cuda/attention/sage-sm90.cu) passes exactly these, in this order; kc and vt
# are TMA descriptors, each passed as Triton lowers a descriptor: the CUtensorMap, then the
# tensor's two sizes (i32) and two strides (i64, in elements).
SAGE_PARAMS = ["qc", "qs", "kc", "ks", "vt", "vs", "lsec", "out", "lse", "tiles", "tile_counts",
               "Hq", "Hk", "Nq", "Nk", "Nkp", "out_sb", "out_sh", "out_sn", "causal", "write_lse", "has_lsec",
               "tile_cols"]
# Alignment the launcher guarantees (bytes for pointers, a divisor for integers); lse is the
# caller's tensor and gets none.
SAGE_DIVISIBILITY = {"qc": 16, "qs": 16, "ks": 16, "vs": 16, "lsec": 16, "out": 16, "tiles": 16,
                     "tile_counts": 16, "Nkp": 16, "out_sb": 8, "out_sh": 8, "out_sn": 8, "tile_cols": 16}

# (D, BLOCK_M, BLOCK_N, num_warps, STAGES, SPARSE, FLUSH, PIPELINE, maxnreg (0: none)); the sparse
# kernels walk the 64-key tiles of the block mask's columns, D 128 two at a time (128-key steps, as
# its dense kernel: a step's fixed work, the O rescale among it, over twice the keys). The serial
# ones (PIPELINE False) are capped so that several CTAs share a multiprocessor: three at D 128 (168
# registers, 2 stages: 73,744 bytes of shared memory each), four at D 64 (128). D 256 is serial
# uncapped (216 registers, two CTAs: its O alone is 128 registers a thread); the pipelined loop
# there needs 3 stages (with 2 it waits for each copy as soon as it issues it, 1.5x slower) and then
# measured the same (14.2 ms against 14.0 on an H200). D 64 sparse keeps the pipelined loop (3
# stages).
SAGE_VARIANTS = [
    (64, 64, 128, 4, 2, False, True, False, 128),
    (128, 64, 128, 4, 2, False, True, False, 168),
    (256, 64, 64, 4, 2, False, False, False, 0),
    (64, 64, 64, 4, 3, True, True, True, 0),
    (128, 64, 128, 4, 2, True, True, False, 168),
    (256, 64, 64, 4, 2, True, False, False, 0),
]


def sage_signature(out_dtype, d, bn, sparse):
    """The kernel's parameter types; kc and vt are descriptors of [bn, d] and [d, bn] boxes in the
    NVMMA layouts of the kernel's K and V^T stages (sage_attention._qkv_smem). A sparse kernel of
    128-key tiles pairs 64-key tiles of its list: its boxes are 64 keys, and its V^T stage's
    swizzle is 64 bytes, so that each half of a stage is a swizzle block of its own."""
    from triton.experimental.gluon import language as gl
    paired = sage_attention._paired(sparse, bn)
    box = sage_attention.MASK_N.value if paired else bn
    k_layout = gl.NVMMASharedLayout.get_default_for([box, d], gl.int8)
    v_layout = (gl.NVMMASharedLayout(swizzle_byte_width=box, element_bitwidth=8, rank=2) if paired else
                gl.NVMMASharedLayout.get_default_for([d, bn], gl.float8e4nv))
    types = {"qc": "*i8", "qs": "*fp32", "kc": f"tensordesc<i8[{box}, {d}],{k_layout!r}>", "ks": "*fp32",
             "vt": f"tensordesc<fp8e4nv[{d}, {box}],{v_layout!r}>", "vs": "*fp32", "lsec": "*fp32",
             "out": out_dtype, "lse": "*fp32", "tiles": "*i16", "tile_counts": "*i32", "out_sb": "i64",
             "out_sh": "i64", "out_sn": "i64"}
    return {name: types.get(name, "i32") for name in SAGE_PARAMS}


def tma_boxes(md, elem_sizes):
    """Per descriptor (the attention's kc and vt, the GEMM's xd, wcd and wsd) what the launcher's
    cuTensorMapEncodeTiled needs: the box Triton copies by (rows, inner elements: at most the swizzle
    width, so a D 256 K tile is two boxes) and the swizzle (CUtensorMapSwizzle: 0 none, 1 32 B, 2
    64 B, 3 128 B). elem_sizes: the bytes of each descriptor's element, as the launcher encodes it."""
    out = []
    if len(md.tensordesc_meta) != len(elem_sizes):
        raise SystemExit(f"{md.name}: {len(md.tensordesc_meta)} descriptors, the launcher encodes {len(elem_sizes)}")
    for meta, size in zip(md.tensordesc_meta, elem_sizes):
        if meta["elem_size"] != size or meta["fp4_padded"]:
            raise SystemExit(f"{md.name}: unexpected descriptor {meta}")
        out += [*meta["block_size"], meta["swizzle"]]
    return out


def compile_kernel(fn, signature, params, divisibility, constexprs, warps, maxnreg=0):
    """One Gluon kernel to a cubin for sm_90a, with the launchers' guarantees as divisibility hints."""
    sig = dict(signature, **{k: "constexpr" for k in constexprs})
    attrs = {(params.index(n),): [["tt.divisibility", v]] for n, v in divisibility.items()}
    src = GluonASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    options = {"num_warps": warps, **({"maxnreg": maxnreg} if maxnreg else {})}
    k = triton.compile(src, target=TARGET, options=options)
    md = k.metadata
    if md.global_scratch_size or md.profile_scratch_size or md.num_ctas != 1:
        raise SystemExit(f"{md.name}: the launchers pass no scratch and launch no clusters")
    return k.asm["cubin"], md


def compile_sage(d, bm, bn, warps, stages, sparse, flush, pipeline, maxnreg, out_dtype):
    constexprs = {"D": d, "BLOCK_M": bm, "BLOCK_N": bn, "SPARSE": sparse, "STAGES": stages, "FLUSH": flush,
                  "PIPELINE": pipeline, "num_warps": warps}
    return compile_kernel(sage_attention.sage_attention_fwd, sage_signature(out_dtype, d, bn, sparse), SAGE_PARAMS,
                          SAGE_DIVISIBILITY, constexprs, warps, maxnreg)


# nvfp4_gemm_t_fwd: (BLOCK_M, STAGES, GROUP_M, num_warps), x in the kernel's permuted column order
# (XPERM, see nvfp4_gemm.py). Each is compiled twice: for any N, and for N a multiple of 16 (the
# output stores then go 16 bytes at a time).
GEMM_VARIANTS = [(256, 4, 8, 8)]


def compile_gemm(bm, stages, group_m, warps, out_dtype, n16):
    constexprs = {"BLOCK_M": bm, "STAGES": stages, "GROUP_M": group_m, "num_warps": warps}
    div = dict(nvfp4_gemm.DIVISIBILITY, **({"N": 16} if n16 else {}))
    return compile_kernel(nvfp4_gemm.nvfp4_gemm_t_fwd, nvfp4_gemm.signature(out_dtype, bm, warps), nvfp4_gemm.PARAMS,
                          div, constexprs, warps)


def write_table(name, params, columns, rows):
    header = [
        "// Generated by native/cuda/triton/aot.py with Triton " + triton.__version__ + "; do not edit.",
        f"// {{{columns}}}; parameters: " + ", ".join(params) + ", then Triton's two scratch pointers (null: the",
        "// kernels use none).",
        *rows,
    ]
    tmp = OUT / f"{name}.tmp"
    tmp.write_text("\n".join(header) + "\n")
    tmp.replace(OUT / name)


def save(name, cubin, md, fields):
    """Writes cubin/NAME.cubin; returns its table row: name, kernel, fields, warps, shared bytes."""
    (OUT / f"{name}.cubin").write_bytes(cubin)
    print(f"{name}: {len(cubin)} bytes, {md.shared} bytes of shared memory, {md.num_warps} warps")
    values = ", ".join(str(f) for f in [*fields, md.num_warps, md.shared])
    return (f'    {{"{name}", "{md.name}", {values}}},  // sha256 {hashlib.sha256(cubin).hexdigest()[:16]}, '
            f'{len(cubin)} bytes')


def main():
    OUT.mkdir(exist_ok=True)
    for old in [*OUT.glob("*.cubin"), *OUT.glob("*.inc")]:
        old.unlink()
    rows = []
    for d, bm, bn, warps, stages, sparse, flush, pipeline, maxnreg in SAGE_VARIANTS:
        for dtype, bf16 in (("*bf16", 1), ("*fp16", 0)):
            cubin, md = compile_sage(d, bm, bn, warps, stages, sparse, flush, pipeline, maxnreg, dtype)
            name = f"sage-d{d}-{'sparse' if sparse else 'dense'}-{'bf16' if bf16 else 'fp16'}"
            rows.append(save(name, cubin, md, [d, bm, bn, int(sparse), bf16, *tma_boxes(md, (1, 1))]))
    write_table("sage-kernels.inc", SAGE_PARAMS, "cubin (native/cuda/triton/cubin/NAME.cubin), kernel, D, BLOCK_M, "
                "BLOCK_N, sparse, bf16 out, K box rows, K box inner, K swizzle, V^T box rows, V^T box inner, "
                "V^T swizzle, warps, dynamic shared bytes", rows)
    rows = []
    for bm, stages, group_m, warps in GEMM_VARIANTS:
        for dtype, bf16 in (("*bf16", 1), ("*fp16", 0)):
            for n16 in (True, False):
                cubin, md = compile_gemm(bm, stages, group_m, warps, dtype, n16)
                name = f"nvfp4-gemm-m{bm}-{'n16' if n16 else 'nany'}-{'bf16' if bf16 else 'fp16'}"
                rows.append(save(name, cubin, md, [bm, 16 * warps, int(n16), bf16, *tma_boxes(md, (1, 4, 4))]))
    write_table("gemm-kernels.inc", nvfp4_gemm.PARAMS, "cubin, kernel, BLOCK_M (tokens), BLOCK_N (weight rows), N a "
                "multiple of 16, bf16 out, then rows, inner and swizzle of the boxes of x (E4M3), the weight's codes "
                "and its scales (int32), warps, dynamic shared bytes", rows)


if __name__ == "__main__":
    main()
