"""GPU side of the attention benchmark (issue 5): libslipstream's CUDA SageAttention2 kernel next to
torch SDPA (cuDNN and FlashAttention-2 backends) measured in the same run on the same inputs, its
accuracy against float64, its agreement with the CPU reference emulation, and the block-sparse
kernel's speedup over our dense one. Run by bench/gpu/run.sh on a GPU machine; writes markdown.

    SLIPSTREAM_LIB=build-gpu/libslipstream.so python3 bench/gpu/attention.py --out gpu.md [--quick]

Inputs: the synthetic DiT/LLM activations of bench/attention-inputs.ts (the same construction:
local attention on a video grid or a sequence, one outlier channel in 16, a large key mean, heavy-
tailed values), drawn with torch's generator. Times: CUDA events around each call, median of
repeats after warm-up; our time includes quantizing Q, K and V (the whole slip_attn_sage call).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
from slipstream_torch import attention as cpu_attn  # noqa: E402
from slipstream_torch import ops  # noqa: E402,F401  (registers torch.ops.slipstream)
from measure import card, time_ms  # noqa: E402  (bench/gpu/measure.py)

DEV = "cuda"


def grid_coords(n: int, kind: str) -> torch.Tensor:
    i = torch.arange(n, device=DEV, dtype=torch.float32)
    if kind == "llm":
        return (i / 8)[:, None]
    w, h = 40, 24
    return torch.stack([torch.div(i, w * h, rounding_mode="floor"), torch.div(i, w, rounding_mode="floor") % h, i % w], 1)


def make_inputs(kind: str, b: int, hq: int, hk: int, n: int, d: int, seed: int, dtype=torch.bfloat16):
    """[B, H, N, D] q (hq heads), k and v (hk heads), as bench/attention-inputs.ts builds them."""
    g = torch.Generator(device=DEV).manual_seed(seed)
    coords = grid_coords(n, kind)
    outlier = torch.where(torch.arange(d, device=DEV) % 16 == 3, 4.0, 1.0)

    def field(heads):
        omega = torch.randn(heads, d, coords.shape[1], device=DEV, generator=g) / 3.0
        phase = torch.rand(heads, 1, d, device=DEV, generator=g) * 2 * math.pi
        return math.sqrt(2) * torch.cos(torch.einsum("nc,hdc->hnd", coords, omega) + phase)

    fq = field(hk)  # queries of a group see the keys' field: nearby tokens attend to each other
    q = torch.empty(b, hq, n, d, device=DEV, dtype=dtype)
    k = torch.empty(b, hk, n, d, device=DEV, dtype=dtype)
    v = torch.empty(b, hk, n, d, device=DEV, dtype=dtype)
    for bi in range(b):
        for h in range(hk):
            key_mean = 4 + 2 * torch.randn(d, device=DEV, generator=g)
            value_mean = torch.randn(d, device=DEV, generator=g)
            k[bi, h] = ((0.75 * fq[h] + 0.3 * torch.randn(n, d, device=DEV, generator=g)) * outlier + key_mean).to(dtype)
            chi2 = (torch.randn(3, n, d, device=DEV, generator=g) ** 2).sum(0)
            v[bi, h] = (value_mean + torch.randn(n, d, device=DEV, generator=g) / torch.sqrt(chi2 / 3)).to(dtype)
        for h in range(hq):
            hkv = h // (hq // hk)
            q[bi, h] = ((0.75 * fq[hkv] + 0.3 * torch.randn(n, d, device=DEV, generator=g)) * outlier).to(dtype)
    return q, k, v


def reference_rows(q, k, v, rows, causal):
    """float64 attention of the listed query rows, every head: [B, H, len(rows), D]."""
    hq, hk = q.shape[1], k.shape[1]
    kk = k.double().repeat_interleave(hq // hk, 1)
    vv = v.double().repeat_interleave(hq // hk, 1)
    qr = q[:, :, rows].double()
    s = qr @ kk.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        keys = torch.arange(k.shape[2], device=DEV)
        s = s.masked_fill(keys[None, None, None, :] > rows[None, None, :, None] + (k.shape[2] - q.shape[2]), float("-inf"))
    return torch.softmax(s, -1) @ vv


def errors(out_rows, ref):
    o, r = out_rows.double(), ref
    rel_l1 = ((o - r).abs().sum() / r.abs().sum()).item()
    cos = F.cosine_similarity(o.flatten(), r.flatten(), 0).item()
    return rel_l1, cos, bool(torch.isfinite(o).all())


@contextlib.contextmanager
def mma_sync_kernel():
    """Runs slip_attn_sage's mma.sync kernel instead of the wgmma one on Hopper (read per call)."""
    os.environ["SLIPSTREAM_SAGE_KERNEL"] = "mma"
    try:
        yield
    finally:
        del os.environ["SLIPSTREAM_SAGE_KERNEL"]


def ours(q, k, v, causal, mask=None):
    if mask is None:
        return torch.ops.slipstream.sage_attention(q, k, v, causal)[0]
    return torch.ops.slipstream.sage_attention_block_sparse(q, k, v, mask, causal)[0]


def sdpa(backend, q, k, v, causal):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])


def flops(b, hq, n, d, causal):
    return 4.0 * b * hq * n * n * d / (2 if causal else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="small shapes only (a check, not the table)")
    a = ap.parse_args()
    lines = []
    name, drv = card()
    cc = torch.cuda.get_device_capability()
    lines += ["# GPU attention benchmark", "",
              "Generated by `bench/gpu/run.sh` (bench/gpu/attention.py) on the GPU machine; do not edit by hand.", "",
              f"- Card: {name} (sm_{cc[0]}{cc[1]}), driver {drv}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
              f"{datetime.date.today().isoformat()}",
              "- Ours: libslipstream `slip_attn_sage` on CUDA (INT8 QK with smooth-K and per-thread scales, FP8 E4M3 P and "
              "per-channel V), **quantization of Q, K, V included** in every time. On sm_90 the wgmma kernels that "
              "native/cuda/triton/aot.py generates (each tile's QK, softmax and PV in order, several CTAs an SM: 3 at D 128, "
              "4 at D 64, 2 at D 256; FP32 flush per 128-key tile at D 64 and 128; at D 256 the FP8 MMA "
              "accumulates into the FP32 tile directly); the `mma.sync` column is the hand-written m16n8k32 kernel "
              "(flush per 64 keys), the one sm_89 runs, timed in the same run.",
              "- SDPA: `torch.nn.functional.scaled_dot_product_attention` in bf16 with the cuDNN and FlashAttention-2 backends, "
              "same inputs, same run. TOPS = 4·B·H·N²·D / time (causal: half).",
              "- Times: median GPU time of a call between CUDA events, a spin kernel queued ahead of each so that host "
              "overhead (Python, ctypes, launches) stays out for every column alike (bench/gpu/measure.py).",
              "- Accuracy: relative L1 and cosine against float64 attention on 64 query rows per head spread over the sequence.",
              ""]

    # 1. The CUDA kernel computes the CPU reference's numerics (small shapes, every head dim).
    lines += ["## CUDA against the CPU reference emulation (slip_attn_sage on the CPU, same bf16 inputs)", "",
              "| shape | causal | max abs diff / max abs out | rel L1 CUDA vs CPU | rel L1 CUDA vs fp64 | rel L1 CPU vs fp64 | "
              "rel L1 mma.sync vs CPU |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for (hq, hk, n, d, causal) in [(2, 2, 1000, 64, False), (2, 1, 777, 128, True), (2, 2, 640, 256, False),
                                   (4, 2, 1024, 128, False)]:
        q, k, v = make_inputs("llm" if causal else "dit", 1, hq, hk, n, d, seed=5)
        o = ours(q, k, v, causal).float()
        oc = torch.from_numpy(cpu_attn.sage(q.float().cpu().numpy(), k.float().cpu().numpy(), v.float().cpu().numpy(),
                                            causal=causal)).to(DEV)
        rows = torch.arange(n, device=DEV)
        ref = reference_rows(q, k, v, rows, causal)
        with mma_sync_kernel():
            om = ours(q, k, v, causal).float()
        diff = ((o - oc).abs().max() / oc.abs().max()).item()
        lines.append(f"| B1 H{hq}/{hk} N{n} D{d} | {causal} | {diff:.2e} | {errors(o, oc.double())[0]:.2e} | "
                     f"{errors(o, ref)[0]:.2e} | {errors(oc, ref)[0]:.2e} | {errors(om, oc.double())[0]:.2e} |")
        print(lines[-1], flush=True)
    lines.append("")

    # 2. Dense speed and accuracy.
    shapes = [(1, 12, 12, 32760, 128, False), (1, 40, 40, 32760, 128, False), (1, 12, 12, 75600, 128, False),
              (1, 40, 40, 75600, 128, False), (1, 12, 12, 32760, 64, False), (1, 12, 12, 32760, 256, False),
              (1, 32, 8, 8192, 128, True)]
    if a.quick:
        shapes = [(1, 4, 4, 8192, 128, False), (1, 8, 2, 4096, 128, True)]
    lines += ["## Dense attention, TOPS and accuracy", "",
              "| B, H (q/kv), N, D, causal | ours ms | ours TOPS | cuDNN ms | cuDNN TFLOPS | flash ms | flash TFLOPS | "
              "ours / cuDNN | rel L1 ours | cos ours | rel L1 cuDNN | mma.sync ms | mma.sync / cuDNN |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (b, hq, hk, n, d, causal) in shapes:
        q, k, v = make_inputs("llm" if causal else "dit", b, hq, hk, n, d, seed=1)
        f = flops(b, hq, n, d, causal)
        t_ours = time_ms(lambda: ours(q, k, v, causal))
        with mma_sync_kernel():
            t_mma = time_ms(lambda: ours(q, k, v, causal))
        res = {}
        for label, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            try:
                res[label] = time_ms(lambda: sdpa(be, q, k, v, causal))
            except RuntimeError as e:  # a backend that refuses the shape is reported, not fatal
                print(f"{label} refused: {e}", flush=True)
                res[label] = float("nan")
        rows = torch.linspace(0, n - 1, 64, device=DEV).round().long()
        ref = reference_rows(q, k, v, rows, causal)
        e_ours = errors(ours(q, k, v, causal)[:, :, rows], ref)
        try:
            e_cudnn = errors(sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)[:, :, rows], ref)[0]
        except RuntimeError:
            e_cudnn = float("nan")
        tops = lambda t: f / t / 1e9  # noqa: E731
        lines.append(f"| {b}, {hq}/{hk}, {n}, {d}, {causal} | {t_ours:.2f} | {tops(t_ours):.0f} | {res['cudnn']:.2f} | "
                     f"{tops(res['cudnn']):.0f} | {res['flash']:.2f} | {tops(res['flash']):.0f} | "
                     f"{res['cudnn'] / t_ours:.2f}× | {e_ours[0]:.2e} | {e_ours[1]:.6f} | {e_cudnn:.2e} | {t_mma:.2f} | "
                     f"{res['cudnn'] / t_mma:.2f}× |")
        print(lines[-1], flush=True)
        del q, k, v, ref
        torch.cuda.empty_cache()
    lines.append("")

    # 3. SpargeAttention2 masks predicted on CUDA: agreement with the CPU predictor first.
    lines += ["## Block-mask prediction on CUDA against the CPU predictor (same bf16 inputs)", "",
              "| shape | rule | mask entries equal | sparsity (CPU, over causally allowed pairs) |", "|---|---|---:|---:|"]
    for (hq, n, causal, rule) in [(2, 2000, False, dict(topk=0.3)), (2, 1500, True, dict(topk=0.2, topp=0.9)),
                                  (4, 3000, False, dict(topk=0.1, attention_sink=True))]:
        q, k, v = make_inputs("llm" if causal else "dit", 1, hq, hq, n, 128, seed=4)
        m_gpu = torch.ops.slipstream.sparse_predict(q, k, causal, **rule)
        m_cpu, sp_cpu = cpu_attn.sparse_predict(q.float().cpu().numpy(), k.float().cpu().numpy(), causal=causal, **rule)
        m_cpu = torch.from_numpy(m_cpu).to(DEV)
        lines.append(f"| H{hq} N{n} causal {causal} | {rule} | {(m_gpu == m_cpu).float().mean().item():.6f} | {sp_cpu:.4f} |")
        print(lines[-1], flush=True)
    lines.append("")

    # 4. Block-sparse attention on predicted masks against our dense kernel.
    b, hq, n, d = (1, 12, 32760, 128) if not a.quick else (1, 4, 8192, 128)
    q, k, v = make_inputs("dit", b, hq, hq, n, d, seed=2)
    t_dense = time_ms(lambda: ours(q, k, v, False))
    rows = torch.linspace(0, n - 1, 64, device=DEV).round().long()
    ref = reference_rows(q, k, v, rows, False)
    e_dense = errors(ours(q, k, v, False)[:, :, rows], ref)[0]
    lines += [f"## Block-sparse attention on predicted masks (B={b}, H={hq}, N={n}, D={d}, DiT inputs; tiles 128 x 64)", "",
              "Masks from `slip_attn_sparse_predict` on CUDA (Top-k, similarity guard θ = -0.1, smooth-K). Sparsity = share of "
              "tile pairs skipped; time = the sparse kernel (quantization included) with the prediction beside it.", "",
              "| Top-k | sparsity | predict ms | sparse ms | speedup over dense (incl. predict) | ideal | rel L1 vs fp64 |",
              "|---:|---:|---:|---:|---:|---:|---:|",
              f"| dense | 0% | | {t_dense:.2f} | 1.00× | 1.00× | {e_dense:.2e} |"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        torch.ops.slipstream.sparse_predict(q, k, False, topk=0.1)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12), flush=True)
    for topk in (0.5, 0.2, 0.1, 0.05):
        mask = torch.ops.slipstream.sparse_predict(q, k, False, topk=topk)
        kept = mask.float().mean().item()
        t_pred = time_ms(lambda: torch.ops.slipstream.sparse_predict(q, k, False, topk=topk))
        t = time_ms(lambda: ours(q, k, v, False, mask))
        e = errors(ours(q, k, v, False, mask)[:, :, rows], ref)[0]
        lines.append(f"| {topk} | {100 * (1 - kept):.1f}% | {t_pred:.2f} | {t:.2f} | {t_dense / t:.2f}× "
                     f"({t_dense / (t + t_pred):.2f}×) | {1 / kept:.2f}× | {e:.2e} |")
        print(lines[-1], flush=True)
    lines.append("")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
