"""Per-kernel GPU times (torch.profiler) of the library's CUDA calls at the benchmark shapes: where
a call's time goes, kernel by kernel. Run on the GPU machine after bench/gpu/run.sh's build:

    SLIPSTREAM_LIB=build-gpu/libslipstream.so python3 bench/gpu/kernel_profile.py [--only predict,sparse,dense256,gemm]

Under ncu, `--reps 1` keeps the launches few (two warm-up calls and one profiled call a shape).
"""

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "adapters" / "torch"))
from attention import make_inputs, ours  # noqa: E402
from gemm import make_x, quantize_nvfp4  # noqa: E402
from slipstream_torch.gemm_cuda import CudaLinearPlan  # noqa: E402


def profile(label, fn, reps):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    print(f"### {label} ({reps} calls)", flush=True)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=70), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="predict,sparse,dense256,gemm")
    ap.add_argument("--reps", type=int, help="calls profiled a shape (default 5, GEMMs 20)")
    a = ap.parse_args()
    only = a.only.split(",")
    reps, gemm_reps = a.reps or 5, a.reps or 20
    if "predict" in only or "sparse" in only:
        q, k, v = make_inputs("dit", 1, 12, 12, 32760, 128, seed=2)
        mask = torch.ops.slipstream.sparse_predict(q, k, False, topk=0.1)
        if "predict" in only:
            profile("sparse_predict H12 N32760 D128 topk 0.1", lambda: torch.ops.slipstream.sparse_predict(q, k, False, topk=0.1),
                    reps)
        if "sparse" in only:
            profile("dense H12 N32760 D128", lambda: ours(q, k, v, False), reps)
            profile("block-sparse 90%", lambda: ours(q, k, v, False, mask), reps)
    if "dense256" in only:
        q, k, v = make_inputs("dit", 1, 12, 12, 32760, 256, seed=2)
        profile("dense H12 N32760 D256", lambda: ours(q, k, v, False), reps)
    if "gemm" in only:
        for kn in (4096, 8192):
            w = torch.randn(kn, kn, device="cuda")
            codes, scales, g = quantize_nvfp4(w)
            with CudaLinearPlan(codes, scales, g) as plan:
                for m in (1, 16):
                    x = make_x(m, kn, torch.bfloat16, m)
                    y = torch.empty(m, kn, dtype=torch.bfloat16, device="cuda")
                    profile(f"W4A16 M{m} K=N={kn}", lambda: plan(x, out=y), gemm_reps)


if __name__ == "__main__":
    main()
