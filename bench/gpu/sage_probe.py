"""Kernel-only probe of the Hopper attention kernel (native/cuda/triton/sage_attention.py),
JIT-compiled on the GPU machine in several tile shapes on the same quantized inputs, next to cuDNN
SDPA in the same run: the tool that chose aot.py's variants. bench/gpu/run.sh measures the library.

    python3 bench/gpu/sage_probe.py --d 128 --variants "64,128,4,3;64,64,4,3"
    (BLOCK_M, BLOCK_N, warps, STAGES[, maxnreg (0: none)[, FLUSH 0/1[, PIPELINE 0/1]]] per variant)

Quantization here is torch's (per-row INT8 Q, smooth-K with one scale per 64 keys and key mod 8 //
2, per-channel FP8 V, laid out as sage-cuda.cuh says); times exclude it.
"""

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native" / "cuda" / "triton"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import card, time_ms  # noqa: E402

LOG2E = 1.4426950408889634


def inputs(h, n, d, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    pos = torch.arange(n, device="cuda", dtype=torch.float32)[:, None] / 64
    om = torch.randn(h, 1, d, device="cuda", generator=g)
    ph = torch.rand(h, 1, d, device="cuda", generator=g) * 6.283
    field = torch.cos(pos * om + ph) * 1.4
    outlier = torch.where(torch.arange(d, device="cuda") % 16 == 3, 4.0, 1.0)
    q = (field + 0.5 * torch.randn(h, n, d, device="cuda", generator=g)) * outlier
    k = (field + 0.5 * torch.randn(h, n, d, device="cuda", generator=g)) * outlier + 3.0
    v = torch.randn(h, n, d, device="cuda", generator=g) ** 3
    return [t[None].to(torch.bfloat16) for t in (q, k, v)]


def quantize(q, k, v, block=128):
    b, h, n, d = q.shape
    nkp = (n + block - 1) // block * block
    scale = d ** -0.5
    qf = q.float().reshape(b * h, n, d)
    qa = qf.abs().amax(-1).clamp_min(1e-12) / 127
    qc = torch.round(qf / qa[..., None]).to(torch.int8).contiguous()
    qs = (qa * scale * LOG2E).reshape(-1).contiguous()
    kf = k.float().reshape(b * h, n, d)
    kf = kf - kf.mean(1, keepdim=True)
    kp = torch.zeros(b * h, nkp, d, device="cuda")
    kp[:, :n] = kf
    # One scale per (64 keys, key mod 8 // 2): sage-quant.cu's THREAD granularity for K.
    kg = kp.reshape(b * h, nkp // 64, 8, 4, 2, d)
    ka = kg.abs().amax(dim=(2, 4, 5), keepdim=True).clamp_min(1e-12) / 127
    kc = torch.round(kg / ka).to(torch.int8).reshape(b * h, nkp, d).contiguous()
    ks = ka.expand(-1, -1, 8, -1, 2, 1).reshape(b * h, nkp).contiguous()
    ks[:, n:] = 0
    vf = v.float().reshape(b * h, n, d)
    vs = (vf.abs().amax(1).clamp_min(1e-12) / 448).contiguous()
    vt = torch.zeros(b * h, d, nkp, dtype=torch.float8_e4m3fn, device="cuda")
    vt[:, :, :n] = (vf / vs[:, None, :]).transpose(1, 2).to(torch.float8_e4m3fn)
    return qc, qs, kc, ks.reshape(-1), vt, vs.reshape(-1), nkp


def launch(kernel, bufs, h, n, d, bm, causal, constexprs, warps, write_lse=True):
    """JIT-launches a dense attention kernel with sage_attention_fwd's parameters on bufs once, then
    times it: (out, lse, ms, "registers / spilled bytes")."""
    qc, qs, kc, ks, vt, vs, nkp = bufs
    out = torch.empty(1, h, n, d, dtype=torch.bfloat16, device="cuda")
    lse = torch.empty(h * n, device="cuda")
    dummy = torch.zeros(16, dtype=torch.int32, device="cuda")
    grid = (triton_cdiv(n, bm), h)
    vt_arg = vt[:, :, key_order(vt.shape[-1])].contiguous()
    kd, vd = descriptors(kc, vt_arg, d, constexprs["BLOCK_N"])
    args = (qc, qs, kd, ks, vd, vs, lse, out, lse, dummy.view(torch.int16), dummy,
            h, h, n, n, nkp, out.stride(0), out.stride(1), out.stride(2), int(causal), int(write_lse), 0, 16)
    fn = lambda: kernel[grid](*args, D=d, BLOCK_M=bm, SPARSE=False, num_warps=warps, **constexprs)  # noqa: E731
    compiled = fn()
    torch.cuda.synchronize()
    o, l = out.clone(), lse.clone()
    return o, l, time_ms(fn, warmup=2, reps=7), f"{compiled.n_regs} regs / {compiled.n_spills} spilled"


def descriptors(kc, vt, d, bn):
    """kc [BH, Nkp, D] and vt [BH, D, Nkp] as the kernel's TMA descriptors (what sage-sm90.cu encodes)."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    nkp = kc.shape[1]
    kd = TensorDescriptor.from_tensor(kc.view(-1, d), [bn, d], gl.NVMMASharedLayout.get_default_for([bn, d], gl.int8))
    vd = TensorDescriptor.from_tensor(vt.view(-1, nkp), [d, bn],
                                      gl.NVMMASharedLayout.get_default_for([d, bn], gl.float8e4nv))
    return kd, vd


def run(kernel, bufs, h, n, d, bm, bn, warps, stages, causal=False, extra=()):
    opts = {"BLOCK_N": bn, "STAGES": stages, "FLUSH": bool(extra[1]) if len(extra) > 1 else True,
            "PIPELINE": bool(extra[2]) if len(extra) > 2 else True}
    if len(extra) > 0 and extra[0]:
        opts["maxnreg"] = extra[0]
    out, _, ms, regs = launch(kernel, bufs, h, n, d, bm, causal, opts, warps, write_lse=False)
    return out, ms, regs


def key_order(nkp):
    """Position k' of each 32 keys holds key 16a + 8b + 2q + e for k' = 16a + 4q + 2b + e
    (sage-cuda.cuh's vt_key_of_position; sage_attention._as_operand)."""
    k = torch.arange(nkp, device="cuda")
    c, r = k // 32, k % 32
    a, q, b, e = r // 16, (r // 4) % 4, (r // 2) % 2, r % 2
    return c * 32 + a * 16 + b * 8 + q * 2 + e


def triton_cdiv(a, b):
    return (a + b - 1) // b


def reference_rows(q, k, v, rows, causal=False):
    qd = q[0, :, rows].double()
    s = qd @ k[0].double().transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        keys = torch.arange(k.shape[2], device="cuda")
        s = s.masked_fill(keys[None, None, :] > rows[None, :, None], float("-inf"))
    return torch.softmax(s, -1) @ v[0].double()


def problem(h, n, d, causal=False):
    """One shape's inputs quantized as the kernels take them, float64 reference attention on 64
    rows, and cuDNN's time (printed): (bufs, rows, ref, ops, cuDNN ms)."""
    q, k, v = inputs(h, n, d)
    bufs = quantize(q, k, v)
    rows = torch.linspace(0, n - 1, 64, device="cuda").long()
    ref = reference_rows(q, k, v, rows, causal=causal)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        t_cudnn = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), warmup=2, reps=7)
    ops = 4 * h * n * n * d // (2 if causal else 1)
    print(f"D {d} H {h} N {n}{' causal' if causal else ''}: cuDNN {t_cudnn:.2f} ms "
          f"({ops / t_cudnn / 1e9:.0f} TFLOPS)")
    return bufs, rows, ref, ops, t_cudnn


def accuracy(o, rows, ref):
    """Relative L1 and cosine of the output's reference rows against float64."""
    got = o[0, :, rows].double()
    rel = ((got - ref).abs().sum() / ref.abs().sum()).item()
    return rel, F.cosine_similarity(got.flatten(), ref.flatten(), 0).item()


def probe_args(variants, causal=False):
    """The probes' command line (head dims, N, H, the variants; --causal where the probe has it),
    parsed, with the card and versions printed."""
    import triton
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, nargs="+", default=[128])
    ap.add_argument("--n", type=int, default=32760)
    ap.add_argument("--h", type=int, default=12)
    if causal:
        ap.add_argument("--causal", action="store_true")
    ap.add_argument("--variants", default=variants)
    args = ap.parse_args()
    name, drv = card()
    print(f"{name}, driver {drv}, torch {torch.__version__}, triton {triton.__version__}")
    return args


def main():
    args = probe_args("64,128,4,3")
    import sage_attention
    for d in args.d:
        h, n = args.h, args.n
        bufs, rows, ref, ops, t_cudnn = problem(h, n, d)
        base = None
        for spec in args.variants.split(";"):
            bm, bn, warps, stages, *extra = (int(x) for x in spec.split(","))
            try:
                o, t, regs = run(sage_attention.sage_attention_fwd, bufs, h, n, d, bm, bn, warps, stages, extra=extra)
            except Exception as e:  # noqa: BLE001 - a variant that does not compile is reported
                print(f"  {spec}: failed: {type(e).__name__}: {str(e)[-400:]}")
                continue
            rel, cos = accuracy(o, rows, ref)
            agree = ""
            if base is None:
                base = o
            else:
                agree = f", max |diff| vs first {(o.float() - base.float()).abs().max().item():.3e}"
            print(f"  {spec}: {t:.2f} ms, {ops / t / 1e9:.0f} TOPS, {t_cudnn / t:.2f}x cuDNN, "
                  f"rel L1 {rel:.2e}, cos {cos:.6f}, {regs}{agree}", flush=True)


if __name__ == "__main__":
    main()
