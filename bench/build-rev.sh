#!/usr/bin/env bash
# Build a committed revision of ai-employee in a clean tree, away from the
# working copy (other people's uncommitted edits do not end up in the numbers).
#
#   bench/build-rev.sh [REV]      # default HEAD; prints the binary's path on stdout
#
# The tree comes from `git archive REV`; the target dir is cached in
# ${AIE_BENCH_CACHE:-/tmp/aie-bench-build} so only the first build compiles
# the dependencies.  The binary is kept as $cache/bin-<sha>/ai-employee.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
rev=${1:-HEAD}
sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
cache=${AIE_BENCH_CACHE:-${TMPDIR:-/tmp}/aie-bench-build}
out="$cache/bin-$sha/ai-employee"
if [ ! -x "$out" ]; then
    src="$cache/src-$sha"
    rm -rf "$src"
    mkdir -p "$src"
    git -C "$repo" archive "$sha" | tar -x -C "$src"
    (cd "$src" && CARGO_TARGET_DIR="$cache/target" cargo build --release --locked) >&2
    mkdir -p "$(dirname "$out")"
    cp "$cache/target/release/ai-employee" "$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$src"
fi
echo "$out"
