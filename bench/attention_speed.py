"""FP32 CPU attention: slip_attn_dense and slip_attn_block_sparse next to PyTorch's
torch.nn.functional.scaled_dot_product_attention on the same shapes and thread count.

    SLIPSTREAM_LIB=build/Release/libslipstream.so .venv/bin/python bench/attention_speed.py [--quick]

Writes bench/attention-speed.md (machine, date, command). Never asserts. Each row times ours and
torch's alternately (warm-up first) so load drifts on a shared machine hit both alike, each call
after a short idle pause (PAUSE_S); the table gives medians. GFLOP/s = 4·B·H·Nq·Nk·D / time (halved for causal). Block-sparse rows keep a
random 20% of 64x64 blocks per query block (sparsity 0.8) and compare with our dense.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "adapters" / "torch"))
from slipstream_torch import attention, capabilities  # noqa: E402


# Idle time before each timed call. torch's OpenMP workers spin for a while after each
# parallel region; on a 2-CPU machine, a call started right after torch shares the cores with
# those spinning threads (measured: 10-25% slower at N = 1024), so each call starts from idle.
PAUSE_S = 0.05


def median_pair(f, g, reps):
    f(), g()  # warm-up: page faults, pool start, torch's first-call dispatch
    a, b = [], []
    for _ in range(reps):
        time.sleep(PAUSE_S); t = time.perf_counter(); f(); a.append(time.perf_counter() - t)
        time.sleep(PAUSE_S); t = time.perf_counter(); g(); b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N up to 4096 only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "attention-speed.md"))
    args = ap.parse_args()
    threads = capabilities()["num_threads"]
    torch.set_num_threads(threads)  # same thread count as our pool
    sizes = [1024, 4096] if args.quick else [1024, 4096, 16384]
    B, H = 1, 8
    rows = []
    for D in (64, 128):
        for N in sizes:
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(B, H, N, D, generator=g) for _ in range(3))
            qn, kn, vn = q.numpy(), k.numpy(), v.numpy()
            reps = 5 if N >= 16384 else 7
            for causal in (False, True):
                ours, theirs = median_pair(lambda: attention.dense(qn, kn, vn, causal=causal),
                                           lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps)
                flop = 4 * B * H * N * N * D * (0.5 if causal else 1.0)
                rows.append(f"| dense | {D} | {N} | {'yes' if causal else 'no'} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | "
                            f"{theirs / ours:.2f} | {flop / ours / 1e9:.0f} |")
                print(rows[-1], flush=True)
            if N >= 4096:
                nb = (N + 63) // 64
                keep = (np.random.default_rng(1).random((B, H, nb, nb)) < 0.2).astype(np.uint8)
                sparse_t, dense_t = median_pair(
                    lambda: attention.block_sparse(qn, kn, vn, keep, block_q=64, block_k=64),
                    lambda: attention.dense(qn, kn, vn), reps)
                _, density = attention.block_sparse(qn, kn, vn, keep, block_q=64, block_k=64)
                rows.append(f"| block-sparse, density {density:.3f} | {D} | {N} | no | {sparse_t * 1e3:.1f} | "
                            f"ours dense {dense_t * 1e3:.1f} | {dense_t / sparse_t:.2f} | — |")
                print(rows[-1], flush=True)
    load = os.getloadavg()
    cmd = "SLIPSTREAM_LIB=<build>/Release/libslipstream.so .venv/bin/python bench/attention_speed.py" + (" --quick" if args.quick else "")
    text = "\n".join([
        "# FP32 CPU attention: slipstream vs PyTorch SDPA",
        "",
        f"Written by `{cmd}` on {datetime.date.today().isoformat()}.",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPUs, ISA level {capabilities()['isa_active']}, "
        f"{threads} threads for both (torch.set_num_threads); torch {torch.__version__}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end.",
        f"B = 1, H = 8, FP32, HND; times are medians (ms) of alternating runs, each after {PAUSE_S * 1e3:.0f} ms idle. 'speedup' is torch / ours",
        "(dense rows) or our dense / our block-sparse (block-sparse rows); GFLOP/s is ours.",
        "",
        "| method | D | N | causal | ours ms | torch ms | speedup | GFLOP/s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    tmp = Path(args.out + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
