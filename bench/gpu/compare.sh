#!/usr/bin/env bash
# A same-run A/B on a GPU machine: the base library (bench/gpu/base/, from bench/gpu/base.sh) and the
# working tree's, built side by side by cmake, then bench/gpu/compare.py times them in turns.
# Usage: bench/gpu/compare.sh OUT_DIR [compare.py options, e.g. --cases w4a8,gemv --rounds 3]
# writes OUT_DIR/compare.md and the two build logs.
set -euo pipefail
out=${1:?usage: bench/gpu/compare.sh OUT_DIR [compare.py options]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
base="$root/bench/gpu/base"
[ -f "$base/CMakeLists.txt" ] || { echo "no bench/gpu/base: run bench/gpu/base.sh REV first (and carry it)"; exit 2; }
mkdir -p "$out"
jobs=$(( ($(nproc) + 1) / 2 ))
build() {  # source dir, build dir, log
  { cmake -S "$1" -B "$2" -DSLIPSTREAM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build "$2" -j "$jobs"; } >"$3" 2>&1
}
build "$base" "$root/build-base" "$out/build-base.log" & b=$!
build "$root" "$root/build-gpu" "$out/build.log" & n=$!
wait $b || { tail -30 "$out/build-base.log"; exit 1; }
wait $n || { tail -30 "$out/build.log"; exit 1; }
echo "base: $(cat "$base/REVISION" 2>/dev/null || echo unknown)"
python3 "$root/bench/gpu/compare.py" --base "$root/build-base/libslipstream.so" --new "$root/build-gpu/libslipstream.so" \
  --out "$out/compare.md" "$@"
