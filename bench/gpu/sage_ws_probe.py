"""Kernel-only probe of the warp-specialized Hopper attention kernel (native/cuda/triton/
sage_attention_ws.py) next to the current one (sage_attention.py, the shape aot.py ships for that
head dim) and cuDNN SDPA, on the same torch-quantized inputs (sage_probe.py's), all JIT-compiled on
the GPU machine in one run.

    python3 bench/gpu/sage_ws_probe.py --d 128 --variants "128,4;128,4,1;128,6;128,6,1"
    python3 bench/gpu/sage_ws_probe.py --d 128 --causal --n 8192 --variants "128,4;128,4,1"
    (per variant: BLOCK_N, STAGES[, PINGPONG 0/1[, FLUSH 0/1[, PRODUCER_REGS[, CONSUMER_REGS[, LOAD_ROWS]]]]];
     BLOCK_M is 128: two consumer warpgroups of 64 rows)

Each variant's output and LSE are compared with the current kernel's (same per-row arithmetic:
expect 0 or bf16-rounding differences when BLOCK_N and FLUSH match) and its output with float64
attention on 64 rows. A hang means a barrier protocol is wrong: run under `timeout`.
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "native" / "cuda" / "triton"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sage_probe import accuracy, launch, probe_args, problem  # noqa: E402


def main():
    args = probe_args("128,4;128,4,1", causal=True)
    import aot
    import sage_attention
    import sage_attention_ws
    for d in args.d:
        h, n = args.h, args.n
        bufs, rows, ref, ops, t_cudnn = problem(h, n, d, args.causal)

        def report(label, o, lse, t, base):
            rel, cos = accuracy(o, rows, ref)
            agree = ""
            if base is not None:
                ok = torch.isfinite(base[1])
                agree = (f", vs current: max |out diff| {(o.float() - base[0].float()).abs().max().item():.3e}, "
                         f"max |lse diff| {(lse[ok] - base[1][ok]).abs().max().item():.3e}, "
                         f"lse inf mismatch {(torch.isfinite(lse) != ok).sum().item()}")
            print(f"  {label}: {t:.2f} ms, {ops / t / 1e9:.0f} TOPS, {t_cudnn / t:.2f}x cuDNN, rel L1 {rel:.2e}, "
                  f"cos {cos:.6f}{agree}", flush=True)

        # The current kernel in the shape aot.py ships (dense) for this head dim.
        _, bm0, bn0, w0, st0, _, fl0 = next(x for x in aot.SAGE_VARIANTS if x[0] == d and not x[5])
        o0, l0, t0 = launch(sage_attention.sage_attention_fwd, bufs, h, n, d, bm0, args.causal,
                            {"BLOCK_N": bn0, "STAGES": st0, "FLUSH": fl0}, w0)
        report(f"current {bm0}x{bn0} s{st0}{' flush' if fl0 else ''}", o0, l0, t0, None)
        base = (o0, l0)
        for spec in args.variants.split(";"):
            f = [int(x) for x in spec.split(",")]
            bn, stages = f[0], f[1]
            cx = {"BLOCK_N": bn, "STAGES": stages, "PINGPONG": bool(f[2]) if len(f) > 2 else False,
                  "FLUSH": bool(f[3]) if len(f) > 3 else d <= 128, "PRODUCER_WARPS": 4,
                  "PRODUCER_REGS": f[4] if len(f) > 4 else 24, "CONSUMER_REGS": f[5] if len(f) > 5 else 240,
                  "LOAD_ROWS": f[6] if len(f) > 6 else 32}
            try:
                o, lse, t = launch(sage_attention_ws.sage_attention_fwd, bufs, h, n, d, 128, args.causal, cx, 4)
            except Exception as e:  # noqa: BLE001 - a variant that does not compile is reported
                print(f"  ws {spec}: failed: {type(e).__name__}: {str(e)[-400:]}")
                continue
            report(f"ws {spec} (pingpong {int(cx['PINGPONG'])}, flush {int(cx['FLUSH'])})", o, lse, t, base)


if __name__ == "__main__":
    main()
