"""Same-run A/B of two libslipstream builds on one GPU: each library is timed in a process of its own
(a process loads one library), the two in turns, --rounds times, and the table gives every round's
median so that the spread between rounds is seen beside the difference. The "old / new" numbers of
bench/NOTES.md come from this. bench/gpu/compare.sh builds both libraries and runs it:

    python3 bench/gpu/compare.py --base BASE.so --new NEW.so --out compare.md
        [--cases dense,sparse,predict,w4a8,gemv] [--rounds 2]

Cases: dense (D 128 at H 12 and 40, D 64, D 256; N 32,760; cuDNN beside), sparse (D 128, H 12, Top-k
0.1: dense and block-sparse calls, quantization included), predict (that case's Top-k 0.1 mask
prediction, our dense call beside), w4a8 (M 4,096, K = N 4,096 and 8,192; torch._scaled_mm beside),
gemv (W4A16, M 1, 8, 16 at 4,096 and 8,192; torch bf16 beside). Times as the benchmarks take them
(bench/gpu/measure.py; the GEMMs with L2 flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ("dense", "sparse", "predict", "w4a8", "gemv")


def child(cases: list[str]) -> None:
    """Times the cases with the library SLIPSTREAM_LIB names; one JSON line a measurement."""
    import torch
    from torch.nn.attention import SDPBackend

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parents[1] / "adapters" / "torch"))
    from attention import make_inputs, ours, sdpa
    from gemm import CudaLinearPlan, dequantize_nvfp4, make_x, per_tensor_fp8, quantize_nvfp4
    from gemm import time_ms as gemm_time_ms
    from measure import time_ms

    def emit(case, ours_ms, ref_ms, ref):
        print(json.dumps({"case": case, "ours": ours_ms, "ref": ref_ms, "ref_name": ref}), flush=True)

    if "dense" in cases:
        for hq, d in ((12, 128), (40, 128), (12, 64), (12, 256)):
            q, k, v = make_inputs("dit", 1, hq, hq, 32760, d, seed=1)
            emit(f"dense H{hq} N32760 D{d}", time_ms(lambda: ours(q, k, v, False)),
                 time_ms(lambda: sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, False)), "cuDNN")
            del q, k, v
    if "sparse" in cases or "predict" in cases:
        q, k, v = make_inputs("dit", 1, 12, 12, 32760, 128, seed=1)
        mask = torch.ops.slipstream.sparse_predict(q, k, False, topk=0.1)
        dense = time_ms(lambda: ours(q, k, v, False))
        if "sparse" in cases:
            emit("block-sparse 90% H12 N32760 D128", time_ms(lambda: ours(q, k, v, False, mask)), dense, "our dense")
        if "predict" in cases:
            emit("mask prediction Top-k 0.1 H12 N32760 D128",
                 time_ms(lambda: torch.ops.slipstream.sparse_predict(q, k, False, topk=0.1)), dense, "our dense")
        del q, k, v, mask
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    for kn in (4096, 8192) if ("w4a8" in cases or "gemv" in cases) else ():
        gen = torch.Generator(device="cuda").manual_seed(kn)
        codes, scales, g = quantize_nvfp4(torch.randn(kn, kn, device="cuda", generator=gen))
        wd = dequantize_nvfp4(codes, scales, g)
        with CudaLinearPlan(codes, scales, g) as plan:
            if "gemv" in cases:
                w16 = wd.to(torch.bfloat16)
                for m in (1, 8, 16):
                    x = make_x(m, kn, torch.bfloat16, m)
                    y = torch.empty(m, kn, dtype=torch.bfloat16, device="cuda")
                    emit(f"W4A16 M{m} K=N {kn}", gemm_time_ms(lambda: plan(x, out=y), flush),
                         gemm_time_ms(lambda: torch.matmul(x, w16.T), flush), "torch bf16")
                del w16
            if "w4a8" in cases:
                w8, sw = per_tensor_fp8(wd)
                x = make_x(4096, kn, torch.bfloat16, 4096)
                x8, sx = per_tensor_fp8(x.float())
                y = torch.empty(4096, kn, dtype=torch.bfloat16, device="cuda")
                emit(f"W4A8 M4096 K=N {kn}", gemm_time_ms(lambda: plan(x, activations="fp8", out=y), flush),
                     gemm_time_ms(lambda: torch._scaled_mm(x8, w8.T, scale_a=sx, scale_b=sw,
                                                           out_dtype=torch.bfloat16), flush), "_scaled_mm")
                del w8, x, x8, y
        del wd


def run(lib: str, cases: list[str]) -> list[dict]:
    env = dict(os.environ, SLIPSTREAM_LIB=lib, PYTHONUNBUFFERED="1")
    res = subprocess.run([sys.executable, __file__, "--child", ",".join(cases)], env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"{lib}: the timing process failed\n{res.stderr[-3000:]}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base")
    ap.add_argument("--new")
    ap.add_argument("--out")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a.child.split(","))
        return
    if not (a.base and a.new and a.out):
        ap.error("--base, --new and --out are required")
    cases = a.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; expected some of {', '.join(CASES)}")
    times: dict[str, dict[str, list[float]]] = {}
    for r in range(a.rounds):
        for side, lib in (("base", a.base), ("new", a.new)):
            for m in run(lib, cases):
                t = times.setdefault(m["case"], {"base": [], "new": [], "ref": [], "ref_name": m["ref_name"]})
                t[side].append(m["ours"])
                t["ref"].append(m["ref"])
            print(f"round {r + 1}: {side} done", flush=True)
    sys.path.insert(0, str(HERE))
    import torch
    from measure import card
    name, drv = card()
    lines = [f"# Same-run A/B: {a.base} (base) against {a.new} (new)", "",
             f"- Card: {name}, driver {drv}, torch {torch.__version__}; {a.rounds} rounds, the libraries in turns "
             "(bench/gpu/compare.py). Times in ms; each round's median, then the ratio of the medians over rounds.", "",
             "| case | base, by round | new, by round | base / new | reference (all rounds) |",
             "|---|---|---|---:|---|"]
    for case, t in times.items():
        b, n = statistics.median(t["base"]), statistics.median(t["new"])
        lines.append(f"| {case} | {' / '.join(f'{x:.4f}' for x in t['base'])} | {' / '.join(f'{x:.4f}' for x in t['new'])}"
                     f" | {b / n:.3f}x | {t['ref_name']} {statistics.median(t['ref']):.4f} |")
    text = "\n".join(lines) + "\n"
    tmp = Path(a.out + ".tmp")
    tmp.write_text(text)
    tmp.replace(a.out)
    print(text)


if __name__ == "__main__":
    main()
