#!/usr/bin/env bash
# bench/comfyui.md on a GPU machine (no Node there): builds libslipstream with cmake, checks that
# ComfyUI loads the pack and validates workflows/comfyui (validate.py), then runs bench/comfyui/bench.py in ComfyUI's public source at third_party/comfyui (an ignored folder:
# extract it there, e.g. from a `git archive` of Comfy-Org/ComfyUI, and carry it to the machine).
#   bench/comfyui/run.sh OUT_DIR [--quick]
set -euo pipefail
out=${1:?usage: bench/comfyui/run.sh OUT_DIR [--quick]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
cmake -S "$root" -B "$root/build-gpu" -DSLIPSTREAM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >"$out/build.log" 2>&1
cmake --build "$root/build-gpu" -j "$(nproc)" >>"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
export SLIPSTREAM_LIB="$root/build-gpu/libslipstream.so" PYTHONUNBUFFERED=1
python3 "$root/bench/comfyui/validate.py" --comfyui "$root/third_party/comfyui" 2>&1 | grep -v "^WARNING\|^ERROR:root" | tail -8
python3 "$root/bench/comfyui/bench.py" --comfyui "$root/third_party/comfyui" --out "$out/comfyui.md" "$@"
