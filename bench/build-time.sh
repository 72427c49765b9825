#!/usr/bin/env bash
# Clean-build time of committed revisions of the workspace, one after the other on this
# machine (run it when nothing else builds: the numbers are wall and CPU seconds).
#
#   bench/build-time.sh [--reps N] [--profile dev|dev-bin|release] REV [REV...]
#
# For each REV and repetition: `git archive REV` into a fresh temp dir, a fresh
# CARGO_TARGET_DIR, then `cargo build --locked` (dev: `--workspace --all-targets`, what
# a developer builds before testing; dev-bin: `--workspace`, the debug binary without
# tests; release: the binary that ships). Crates come from
# the local cargo registry (no download is timed). Prints one line per build (wall and
# CPU seconds; with --profile release also the binary's size).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
reps=1 profile=dev revs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps=$2; shift ;;
        --profile) profile=$2; shift ;;
        *) revs+=("$1") ;;
    esac
    shift
done
[ ${#revs[@]} -gt 0 ] || { echo "usage: $0 [--reps N] [--profile dev|dev-bin|release] REV..." >&2; exit 2; }
case "$profile" in
    dev) flags=(--workspace --all-targets) ;;
    dev-bin) flags=(--workspace) ;;
    release) flags=(--release) ;;
    *) echo "--profile dev, dev-bin or release" >&2; exit 2 ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/aie-buildtime.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Fetch once outside the timing (no-op when the registry cache is warm).
for rev in "${revs[@]}"; do
    sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
    mkdir -p "$work/src-$sha"
    git -C "$repo" archive "$sha" | tar -x -C "$work/src-$sha"
    (cd "$work/src-$sha" && cargo fetch --locked >/dev/null 2>&1)
done
printf '%-10s %-8s %4s %9s %9s %12s\n' rev profile rep wall_s cpu_s binary_B
for rev in "${revs[@]}"; do
    sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
    for rep in $(seq 1 "$reps"); do
        tgt="$work/target-$sha-$rep"
        /usr/bin/time -o "$work/time" -f '%e %U %S' \
            env CARGO_TARGET_DIR="$tgt" cargo build --locked -q "${flags[@]}" \
            --manifest-path "$work/src-$sha/Cargo.toml" >/dev/null 2>"$work/log" \
            || { cat "$work/log" >&2; exit 1; }
        read -r wall user sys < "$work/time"
        cpu=$(python3 -c "print(f'{$user + $sys:.1f}')")
        size=-
        [ "$profile" = release ] && size=$(stat -c %s "$tgt/release/ai-employee")
        printf '%-10s %-8s %4s %9s %9s %12s\n' "${sha:0:8}" "$profile" "$rep" "$wall" "$cpu" "$size"
        rm -rf "$tgt"
    done
done
