#!/usr/bin/env bash
# The base side of a same-run A/B (bench/gpu/compare.sh), made here, where git is: REV's native
# sources and CMakeLists.txt into bench/gpu/base/ (git-ignored; pass it to the GPU machine's call in
# its carry list). Usage: bench/gpu/base.sh [REV (default HEAD)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rev=${1:-HEAD}
rm -rf "$root/bench/gpu/base"
mkdir -p "$root/bench/gpu/base"
git -C "$root" archive "$rev" native CMakeLists.txt | tar -x -C "$root/bench/gpu/base"
git -C "$root" rev-parse "$rev" > "$root/bench/gpu/base/REVISION"
echo "bench/gpu/base: $(cat "$root/bench/gpu/base/REVISION")"
