#!/usr/bin/env bash
# What the processes that watch folders cost while nothing happens (results in
# docs/BENCHMARKS.md, "Idle watchers: CPU").
#
#   bench/watchers_idle.sh [--bin PATH] [--seconds N]
#
# On a fresh vault (`ai-employee init`), one after the other: `watch approvals` (as the
# default table starts it: no flags, no credentials), `watch filesystem`, and `supervise`
# with a table of one idle `sleep` child (it watches the table's folder for saved
# changes). Each is measured over --seconds (default 60) after its start-up line and a
# 3 s warm-up: the CPU time of all its threads (/proc/PID/task/*/schedstat, ns; and
# utime+stime from /proc/PID/stat in clock ticks) and its threads' context switches
# (each one a wake-up). Linux only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN="$repo/target/release/ai-employee"
SECONDS_IDLE=60
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --seconds) SECONDS_IDLE=$2; shift 2 ;;
        *) echo "usage: $0 [--bin PATH] [--seconds N]" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d /tmp/watchers-idle.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }

# measure NAME LOG NEEDLE CMD...: start CMD, wait for NEEDLE in LOG, measure, stop it.
measure() {
    local name=$1 log=$2 needle=$3
    shift 3
    "$@" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do grep -q "$needle" "$log" 2>/dev/null && break; sleep 0.1; done
    grep -q "$needle" "$log" || { echo "$name: no \"$needle\" in its log:" >&2; cat "$log" >&2; exit 1; }
    sleep 3
    local c0 k0 s0 c1 k1 s1
    c0=$(cpu_ns "$pid"); k0=$(ticks "$pid"); s0=$(switches "$pid")
    sleep "$SECONDS_IDLE"
    c1=$(cpu_ns "$pid"); k1=$(ticks "$pid"); s1=$(switches "$pid")
    python3 -c "
c, s, n = ($c1 - $c0) / 1e9, $SECONDS_IDLE, '$name'
print(f'{n}: {s}s: CPU {c * 1000:.1f} ms = {100 * c / s:.3f}% of one CPU (utime+stime $((k1 - k0)) ticks), '
      f'{($s1 - $s0) / s:.1f} context switches/s')"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

vault="$work/vault"
"$BIN" init --vault "$vault" >/dev/null
echo "idle watchers, $(date -u +%Y-%m-%dT%H:%MZ), $BIN, load $(cut -d' ' -f1-3 /proc/loadavg)"
measure "watch approvals" "$work/approvals.log" "watching " \
    env -u AI_EMPLOYEE_HEARTBEAT "$BIN" watch approvals --vault "$vault"
measure "watch filesystem" "$work/filesystem.log" "watching " \
    env -u AI_EMPLOYEE_HEARTBEAT "$BIN" watch filesystem --vault "$vault"
cat >"$work/table.toml" <<'TABLE'
[[process]]
name = "idle"
command = "sleep"
args = ["100000"]
TABLE
measure "supervise (1 idle child, reload_on_change)" "$work/supervise.log" "started idle" \
    "$BIN" supervise --vault "$vault" --config "$work/table.toml"
