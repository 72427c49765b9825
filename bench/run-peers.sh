#!/usr/bin/env bash
# Run the bench-peers harness (../shared/bench-peers) with ai-employee beside
# supervisord, PM2, Horust, s6 and runit.
#
#   bench/run-peers.sh [--no-install] [--no-build | --rev REV] [--before REV] [--keep-tmp] [--quick] [bench.py args...]
#
#   --no-install  skip bench-peers' install_peers.sh (peers already installed)
#   --no-build    do not run `cargo build --release` (use the existing binary)
#   --rev REV     measure the committed revision REV (e.g. HEAD) built in a clean
#                 tree by bench/build-rev.sh, instead of the working copy
#   --before REV  also measure the committed revision REV (clean build by
#                 bench/build-rev.sh) in the same run, as the adapter
#                 "ai-employee@<short sha>": before/after rows of a change
#                 measured under the same load
#   --keep-tmp    keep the temp copy of the harness (default: removed)
#   anything else goes to bench-peers' run.sh / bench.py, e.g. --quick,
#   --peers s6,runit, --phases lifecycle --reps 5  (`--peers ''` = ours alone)
#
# What it does: builds the release binary, copies it and the harness into a
# fresh temp dir (so a rebuild during the ~15 min run cannot change what is
# measured), writes an adapter JSON there with the copied binary's absolute
# path (from bench/ai-employee.json), runs install_peers.sh and
# `run.sh --external <adapter>`, then copies RESULTS.md, the raw JSON and the
# console log to bench/results/peers-<UTC time>/ (gitignored).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
src="$repo/../shared/bench-peers"
[ -d "$src" ] || { echo "bench-peers not found at $src" >&2; exit 1; }

args_all="$*"
install=1 build=1 keep=0 rev= before=
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --no-build) build=0 ;;
        --keep-tmp) keep=1 ;;
        --rev) rev=$2; shift ;;
        --rev=*) rev=${1#--rev=} ;;
        --before) before=$2; shift ;;
        --before=*) before=${1#--before=} ;;
        *) pass+=("$1") ;;
    esac
    shift
done

if [ -n "$rev" ]; then
    sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
    bin=$("$here/build-rev.sh" "$sha")
    what="commit $sha (clean build of --rev $rev)"
else
    if [ "$build" = 1 ]; then
        (cd "$repo" && cargo build --release)
    fi
    bin="$repo/target/release/ai-employee"
    what="working copy at $(git -C "$repo" rev-parse HEAD)$(git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' +uncommitted changes')"
fi
[ -x "$bin" ] || { echo "no release binary at $bin (run cargo build --release)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aie-peers.XXXXXX")
if [ "$keep" = 0 ]; then trap 'rm -rf "$tmp"' EXIT; fi
cp -r "$src" "$tmp/bench-peers"
# adapter DIR BINARY NAME: the adapter JSON for one binary, in DIR
adapter() {
    mkdir "$1"
    cp "$2" "$1/ai-employee"
    cp "$here/render_table.py" "$1/"
    python3 - "$here/ai-employee.json" "$1/ai-employee.json" "$1/ai-employee" "$3" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
exe = sys.argv[3]
spec["name"] = sys.argv[4]
for key in ("start", "version"):
    argv = spec[key]
    if argv[0].endswith("/ai-employee"):
        argv[0] = exe
json.dump(spec, open(sys.argv[2], "w"), indent=2)
PY
}
adapter "$tmp/adapter" "$bin" ai-employee
externals=(--external "$tmp/adapter/ai-employee.json")
if [ -n "$before" ]; then
    bsha=$(git -C "$repo" rev-parse --verify "$before^{commit}")
    bbin=$("$here/build-rev.sh" "$bsha")
    adapter "$tmp/adapter-before" "$bbin" "ai-employee@${bsha:0:8}"
    externals+=(--external "$tmp/adapter-before/ai-employee.json")
    what="$what; before: commit $bsha as ai-employee@${bsha:0:8}"
fi
echo "adapter: $tmp/adapter/ai-employee.json ($("$tmp/adapter/ai-employee" --version), $what)"

if [ "$install" = 1 ]; then
    (cd "$tmp/bench-peers" && ./install_peers.sh)
fi

ts=$(date -u +%Y%m%d-%H%M%S)
out="$repo/bench/results/peers-$ts"
mkdir -p "$out"
set +e
(cd "$tmp/bench-peers" && ./run.sh "${externals[@]}" "${pass[@]}") 2>&1 | tee "$out/console.log"
rc=${PIPESTATUS[0]}
set -e
cp "$tmp/bench-peers/RESULTS.md" "$out/" 2>/dev/null || true
cp "$tmp"/bench-peers/results/run-*.json "$out/" 2>/dev/null || true
{
    echo "command: bench/run-peers.sh $args_all"
    echo "measured: $what"
    echo "loadavg at end: $(cat /proc/loadavg)"
    [ -n "$rev" ] || git -C "$repo" status --short -- src Cargo.toml Cargo.lock | sed 's/^/uncommitted: /'
    echo "binary: $("$tmp/adapter/ai-employee" --version) sha256 $(sha256sum "$tmp/adapter/ai-employee" | cut -d' ' -f1)"
} > "$out/run-info.txt"
echo "results copied to $out (RESULTS.md, run-*.json, console.log, run-info.txt)"
exit "$rc"
