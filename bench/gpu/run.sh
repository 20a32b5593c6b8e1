#!/usr/bin/env bash
# The GPU benchmark, in one command on a GPU machine (no Node there): build libslipstream with its
# CUDA backend by cmake, then bench/gpu/attention.py against torch SDPA and bench/gpu/gemm.py against
# torch.matmul / torch._scaled_mm. Usage:
#   bench/gpu/run.sh OUT_DIR [--quick] [--sanitize]
# writes OUT_DIR/gpu.md and OUT_DIR/gemm.md (copy them to bench/gpu.md and bench/gpu-gemm.md) and
# OUT_DIR/build.log and OUT_DIR/tests.log; the GPU tests (bench/gpu/test_*.py) run first.
set -euo pipefail
out=${1:?usage: bench/gpu/run.sh OUT_DIR [--quick] [--sanitize]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
cmake -S "$root" -B "$root/build-gpu" -DSLIPSTREAM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$out/build.log" 2>&1
cmake --build "$root/build-gpu" -j "$(nproc)" >>"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
export SLIPSTREAM_LIB="$root/build-gpu/libslipstream.so"
quick=""
for arg in "$@"; do
  case $arg in
    --quick) quick=--quick ;;
    --sanitize)
      # Out-of-bounds and race checks on small shapes (compute-sanitizer is slow).
      compute-sanitizer --tool memcheck --error-exitcode 9 python3 "$root/bench/gpu/attention.py" --quick --out "$out/sanitize.md" \
        >"$out/memcheck.log" 2>&1 && echo "memcheck: clean" || { echo "memcheck: FAILED"; tail -30 "$out/memcheck.log"; }
      compute-sanitizer --tool memcheck --error-exitcode 9 python3 "$root/bench/gpu/gemm.py" --quick --no-flush \
        --out "$out/sanitize-gemm.md" >"$out/memcheck-gemm.log" 2>&1 && echo "memcheck (gemm): clean" \
        || { echo "memcheck (gemm): FAILED"; tail -30 "$out/memcheck-gemm.log"; }
      # The GEMV and quantizer edge shapes of the tests (tile pairs past N, a partial last stage after
      # the ring wraps, rows longer than the quantizer holds).
      compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m pytest -q -p no:cacheprovider \
        "$root/bench/gpu/test_gemm_cuda.py" -k "skinny_shapes or longer or more_rows" >"$out/memcheck-shapes.log" 2>&1 \
        && echo "memcheck (test shapes): clean" || { echo "memcheck (test shapes): FAILED"; tail -30 "$out/memcheck-shapes.log"; }
      ;;
  esac
done
# A failing test is reported and the timings still run (they say how far off a change is).
python3 -m pytest -q -p no:cacheprovider "$root/bench/gpu/test_gemm_cuda.py" "$root/bench/gpu/test_attention_cuda.py" \
  >"$out/tests.log" 2>&1 && echo "GPU tests: passed" || echo "GPU tests: FAILED (OUT_DIR/tests.log)"
tail -15 "$out/tests.log"
PYTHONUNBUFFERED=1 python3 "$root/bench/gpu/attention.py" $quick --out "$out/gpu.md"
PYTHONUNBUFFERED=1 python3 "$root/bench/gpu/gemm.py" $quick --out "$out/gemm.md"
