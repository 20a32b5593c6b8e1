"""GPU side of the linear benchmark: libslipstream's NVFP4-weight GEMMs on CUDA (W4A16 and W4A8, one
plan, slip_linear_plan_run_as) next to torch.matmul in bf16 and torch._scaled_mm in FP8, measured in
the same run on the same card, and their accuracy against float64. Run by bench/gpu/run.sh on a
GPU machine; writes markdown.

    SLIPSTREAM_LIB=build-gpu/libslipstream.so python3 bench/gpu/gemm.py --out gemm.md [--quick] [--no-flush]

Weights: random normal [N, K], quantized to NVFP4 on the GPU by the small torch quantizer below
(compressed-tensors' recipe: global = 448*6/amax(W), one E4M3 scale amax16/6*global per 16 columns,
codes by nearest E2M1). Activations: random normal bf16 with a few large channels. Times: CUDA
events around each call (the GPU kept busy ahead of it, so host overhead is out), median of repeats
after warm-up, L2 flushed before each (so weights come from HBM, as in a model whose weights don't
all fit in L2); ours includes quantizing x (W4A8).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
from slipstream_torch.gemm_cuda import CudaLinearPlan  # noqa: E402
from measure import card, time_ms as gpu_time_ms  # noqa: E402  (bench/gpu/measure.py)

DEV = "cuda"
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def quantize_nvfp4(w: torch.Tensor):
    """float32 [N, K] (K a multiple of 16) -> codes uint8 [N, K/2], scales float8_e4m3fn [N, K/16],
    global float32 [1]; weight = e2m1(code) * scale / global."""
    n, k = w.shape
    g = (448.0 * 6.0 / w.abs().max().float()).reshape(1)
    blocks = w.float().view(n, k // 16, 16)
    s = (blocks.abs().amax(-1) / 6.0 * g).clamp(max=448.0).to(torch.float8_e4m3fn)
    sd = s.float()[..., None]
    q = torch.where(sd > 0, blocks * g / torch.where(sd > 0, sd, 1.0), 0.0)
    mid = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], device=w.device)
    code = torch.bucketize(q.abs().clamp(max=6.0), mid).to(torch.uint8) | ((q < 0).to(torch.uint8) << 3)
    code = code.view(n, k)
    return (code[:, 0::2] | (code[:, 1::2] << 4)).contiguous(), s.contiguous(), g.contiguous()


def dequantize_nvfp4(codes, scales, g) -> torch.Tensor:
    """The float64 [N, K] weight the codes stand for."""
    n = codes.shape[0]
    c = torch.stack([codes & 15, codes >> 4], -1).view(n, -1).long()
    lut = torch.tensor(E2M1, dtype=torch.float64, device=codes.device)
    v = lut[c & 7] * (1 - 2 * (c >> 3)).double()
    return (v.view(n, -1, 16) * scales.double()[..., None] / g.double()).view(n, -1)


def e4m3_weight(codes, scales, g):
    """The float64 weight the FP8 tensor-core kernel multiplies: each e2m1 * scale times its row's
    power of two colpow (the largest <= 2^15 keeping the row's magnitudes within 448), rounded to
    E4M3 nearest even, divided by colpow and the global."""
    n = codes.shape[0]
    c = torch.stack([codes & 15, codes >> 4], -1).view(n, -1).long()
    lut = torch.tensor(E2M1, dtype=torch.float64, device=codes.device)
    mag = (lut[c & 7].view(n, -1, 16) * scales.double()[..., None]).view(n, -1)
    mx = mag.abs().amax(-1)  # scales may be negative: the codec allows either sign
    e = torch.floor(torch.log2(448.0 / mx.clamp_min(1e-300))).clamp(-14, 15)
    colpow = torch.where(mx > 0, torch.exp2(e), torch.ones_like(mx))[:, None]
    w8 = (mag * colpow).float().to(torch.float8_e4m3fn).double() * (1 - 2 * (c >> 3)).double()
    return w8 / colpow / g.double()


def fp8_tensor_cores(m):
    """Whether W4A8 of m rows runs on sm_90's FP8 tensor-core kernel."""
    return m > 64 and torch.cuda.get_device_capability() == (9, 0)


def gemv_kernel(m, n):
    """The label of the kernel a W4A16 product of m rows runs on (m <= 64): plan_launch's rule in
    native/cuda/gemm/fp4-gemm.cu, mirrored for the table only."""
    if torch.cuda.get_device_capability() == (9, 0) and m <= 16:
        sms, tiles = torch.cuda.get_device_properties(0).multi_processor_count, (n + 7) // 8
        if -(-tiles // 8) * 8 >= 7 * sms or (m <= 8 and -(-tiles // 4) * 8 >= 7 * sms):
            return "streamed"
    return "skinny"


def make_x(m, k, dtype, seed):
    gen = torch.Generator(device=DEV).manual_seed(seed)
    x = torch.randn(m, k, device=DEV, generator=gen)
    x[:, torch.arange(7, k, 97, device=DEV)] *= 8.0  # a few outlier channels, as activations have
    return x.to(dtype)


def fp8_rows(x: torch.Tensor) -> torch.Tensor:
    """x with each row through E4M3 as SLIP_ACT_FP8 defines it (native/src/gemm/act.cpp): s = amax / 448
    and each element RNE_sat(x / s), both quotients IEEE float32 ones; float64 codes times s. Each
    quotient is taken in float64 and rounded once to float32, which is the float32 quotient (53 >=
    2 x 24 + 2 bits). Not torch's float32 `amax / 448.0`: on CUDA a division by a Python number
    multiplies by its rounded reciprocal, and where x / s is within an ulp of an E4M3 tie (amax 3.875:
    ~30 of 4,096 randn elements) that scale sends the code the other way (1% of such a row's norm)."""
    xd = x.double()
    amax = xd.abs().amax(-1, keepdim=True)
    s = (amax / torch.full_like(amax, 448.0)).float().double()  # tensor by tensor: a true division
    q = torch.where(s > 0, xd / torch.where(s > 0, s, 1.0), 0.0).float().clamp(-448, 448).to(torch.float8_e4m3fn)
    return q.double() * s


def rel_l2(y, ref):
    return ((y.double() - ref).norm() / ref.norm()).item()


def time_ms(fn, flush, warmup=5, reps=30):
    """Median over reps of the GPU time of one call (measure.time_ms: host overhead kept out); with
    flush, L2 is overwritten before each."""
    return gpu_time_ms(fn, warmup, reps, flush.zero_ if flush is not None else None)


def per_tensor_fp8(t):
    """t (float32 or float64) as torch._scaled_mm's per-tensor E4M3 operand: (codes, scale), the
    scale amax / 448 in float32."""
    s = (t.abs().max() / 448.0).float()
    return (t / s).float().to(torch.float8_e4m3fn), s


def scaled_mm_from_bf16(x, w8, sw):
    """torch._scaled_mm from bf16 activations, as a torch user quantizes them for it: per-tensor scale
    amax / 448, divide, cast to E4M3 (the comparison for our W4A8, which also starts from bf16 x)."""
    sx = x.abs().amax().float() / 448.0
    x8 = (x.float() / sx).to(torch.float8_e4m3fn)
    return torch._scaled_mm(x8, w8.T, scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)


def accuracy(lines, shapes):
    lines += ["## Accuracy against float64 (the dequantized NVFP4 weight times x as given)", "",
              "| M, K, N | x | bias | kernel | W4A16 rel L2 | W4A8 rel L2 | W4A8 vs fp64 of its own numerics |",
              "|---|---|---|---|---:|---:|---:|"]
    for i, (m, k, n, dtype, with_bias) in enumerate(shapes):
        gen = torch.Generator(device=DEV).manual_seed(100 + i)
        w = torch.randn(n, k, device=DEV, generator=gen)
        codes, scales, g = quantize_nvfp4(w)
        wd = dequantize_nvfp4(codes, scales, g)
        x = make_x(m, k, dtype, 200 + i)
        bias = torch.randn(n, device=DEV, generator=gen) if with_bias else None
        rows = torch.arange(m, device=DEV) if m <= 256 else torch.linspace(0, m - 1, 256, device=DEV).round().long()
        ref = x[rows].double() @ wd.T + (bias.double() if with_bias else 0)
        w8 = e4m3_weight(codes, scales, g) if fp8_tensor_cores(m) else wd
        ref8 = fp8_rows(x[rows]) @ w8.T + (bias.double() if with_bias else 0)
        with CudaLinearPlan(codes, scales, g) as plan:
            y16 = plan(x, bias)[rows]
            y8 = plan(x, bias, activations="fp8")[rows]
        kernel = gemv_kernel(m, n) if m <= 64 else "tiled; W4A8 FP8 wgmma" if fp8_tensor_cores(m) else "tiled"
        lines.append(f"| {m}, {k}, {n} | {str(dtype).replace('torch.', '')} | {'yes' if with_bias else 'no'} | {kernel} | "
                     f"{rel_l2(y16, ref):.2e} | {rel_l2(y8, ref):.2e} | {rel_l2(y8, ref8):.2e} |")
        print(lines[-1], flush=True)
    lines.append("")


def speed(lines, ms, kns, flush):
    lines += ["## Speed (K = N; weight bytes: ours 4.5 bits per weight, bf16 16, FP8 8)", "",
              "| M | K = N | kernel | ms | TFLOPS | weight GB/s | speed vs bf16 matmul |",
              "|---:|---:|---|---:|---:|---:|---:|"]
    for kn in kns:
        gen = torch.Generator(device=DEV).manual_seed(kn)
        w = torch.randn(kn, kn, device=DEV, generator=gen)
        codes, scales, g = quantize_nvfp4(w)
        wd = dequantize_nvfp4(codes, scales, g)
        w16 = wd.to(torch.bfloat16)
        w8, sw = per_tensor_fp8(wd)
        del wd, w
        plan = CudaLinearPlan(codes, scales, g)
        ours_bytes = plan.weight_bytes
        for m in ms:
            x = make_x(m, kn, torch.bfloat16, m)
            x8, sx = per_tensor_fp8(x.float())
            y = torch.empty(m, kn, dtype=torch.bfloat16, device=DEV)
            flops = 2.0 * m * kn * kn
            runs = [("ours W4A16", ours_bytes, lambda: plan(x, out=y)),
                    ("ours W4A8 (x quantized in the call)", ours_bytes, lambda: plan(x, activations="fp8", out=y)),
                    ("torch.matmul bf16", 2 * kn * kn, lambda: torch.matmul(x, w16.T)),
                    ("torch._scaled_mm FP8 (per-tensor)", kn * kn,
                     lambda: torch._scaled_mm(x8, w8.T, scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16)),
                    ("torch._scaled_mm FP8 (per-tensor, fast accumulation)", kn * kn,
                     lambda: torch._scaled_mm(x8, w8.T, scale_a=sx, scale_b=sw, out_dtype=torch.bfloat16,
                                              use_fast_accum=True)),
                    ("torch._scaled_mm FP8 with x quantized in the call (per-tensor amax, divide, cast)", kn * kn,
                     lambda: scaled_mm_from_bf16(x, w8, sw))]
            if m <= 16:
                # What reading our weight's bytes costs anyway: torch's own memory-bound kernels on a
                # tensor of that size (no TFLOPS: not our product).
                same = torch.empty(ours_bytes // 2, dtype=torch.bfloat16, device=DEV)
                kk = ours_bytes // (2 * kn)
                w_same, x_same = same[:kn * kk].view(kn, kk).normal_(), make_x(m, kk, torch.bfloat16, m)
                copy_to = torch.empty_like(same)
                runs += [(f"floor: torch.matmul bf16 on a weight of our bytes ([{kn}, {kk}])", ours_bytes,
                          lambda: torch.matmul(x_same, w_same.T)),
                         ("floor: torch copy of our bytes (read and write)", ours_bytes, lambda: copy_to.copy_(same))]
            times = {}
            for label, _, fn in runs:
                try:
                    times[label] = time_ms(fn, flush)
                except RuntimeError as e:  # a backend that refuses the shape is reported, not fatal
                    print(f"{label} refused M={m}: {str(e).splitlines()[0]}", flush=True)
                    times[label] = float("nan")
            base = times["torch.matmul bf16"]
            for label, nbytes, _ in runs:
                t = times[label]
                tflops = "—" if label.startswith("floor:") else f"{flops / t / 1e9:.1f}"
                lines.append(f"| {m} | {kn} | {label} | {t:.4f} | {tflops} | {nbytes / t / 1e6:.0f} | {base / t:.2f}× |")
                print(lines[-1], flush=True)
            del x, x8, y
            if m <= 16:
                del same, w_same, x_same, copy_to
        plan.close()
        del w16, w8, codes, scales
        torch.cuda.empty_cache()
    lines.append("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="small shapes only (a check, not the table)")
    ap.add_argument("--no-flush", action="store_true", help="leave L2 warm between timed calls")
    a = ap.parse_args()
    name, drv = card()
    cc = torch.cuda.get_device_capability()
    flush = None if a.no_flush else torch.empty(256 << 20, dtype=torch.uint8, device=DEV)
    one = torch.empty(1, device=DEV)
    floor_us = time_ms(one.zero_, flush) * 1e3
    lines = ["# GPU linear benchmark (NVFP4 weights)", "",
             "Generated by `bench/gpu/run.sh` (bench/gpu/gemm.py) on the GPU machine; do not edit by hand.", "",
             f"- Card: {name} (sm_{cc[0]}{cc[1]}), driver {drv}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
             f"{datetime.date.today().isoformat()}",
             "- Ours: libslipstream's CUDA linear plan of an NVFP4 weight (`slip_linear_plan_run_as`): W4A16 decodes the "
             "weight exactly to bf16 on chip (mma.sync m16n8k16, FP32 accumulation); W4A8 first quantizes x per token "
             "to E4M3 (scale amax/448) and multiplies the exact bf16 images of both. M <= 64: memory-bound GEMVs, "
             "on sm_90 at M <= 16 with columns for every SM the streamed kernel (the weight copied by cp.async.bulk "
             "into a ring of shared memory), else the skinny kernel (K split over CTAs when the columns are few); "
             "larger M: 128 x 256 tiles, 3 cp.async stages. On sm_90, "
             "W4A8 at M > 64 runs on FP8 tensor cores instead (native/cuda/triton/nvfp4_gemm.py's transposed kernel: "
             "the weight decoded in registers to E4M3 after a per-column power of two, wgmma with fast accumulation; x "
             "quantized in the call into the kernel's column order, then read by TMA; the GEMM launched as the "
             "quantizer's programmatic dependent).",
             "- torch: `torch.matmul` in bf16 on the dequantized weight, `torch._scaled_mm` FP8 E4M3 with per-tensor "
             "scales (x quantized outside the timed call; the last row quantizes bf16 x in the call as a torch user "
             "would, as our W4A8 does). TFLOPS = 2·M·N·K / time; weight GB/s = bytes of the weight "
             "in its format / time.",
             f"- L2 {'flushed (256 MB memset) before every timed call' if flush is not None else 'left warm'}; a spin kernel "
             "queued ahead of each keeps host overhead out of the interval (bench/gpu/measure.py).",
             f"- The harness's own floor: a one-element kernel (`zero_`) measures {floor_us:.1f} us between the events in "
             "this run; the floor rows time torch kernels that only read (and copy) our weight's bytes.",
             ""]
    acc_shapes = [(1, 4096, 4096, torch.bfloat16, False), (16, 4096, 4096, torch.bfloat16, True),
                  (4096, 4096, 4096, torch.bfloat16, False), (16, 4096, 4096, torch.float16, False),
                  (512, 4096, 4096, torch.float16, True), (5, 1040, 1003, torch.bfloat16, True),
                  (37, 272, 520, torch.float16, False), (64, 2064, 200, torch.bfloat16, True),
                  (65, 1040, 1003, torch.bfloat16, True), (300, 8192, 136, torch.float16, False)]
    ms, kns = (1, 16, 4096), (4096, 8192)
    if a.quick:
        acc_shapes = [s for s in acc_shapes if s[0] * s[1] * s[2] <= 1 << 31]
        ms, kns = (1, 16, 1024), (4096,)
    accuracy(lines, acc_shapes)
    speed(lines, ms, kns, flush)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
