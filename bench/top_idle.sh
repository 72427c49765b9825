#!/usr/bin/env bash
# What an idle `ai-employee top` costs (issue 13; results in docs/BENCHMARKS.md,
# "ai-employee top: idle CPU").
#
#   bench/top_idle.sh [--bin PATH] [--seconds N] [--interval 1s]
#
# top runs in a 100x30 tmux pane (a real terminal) on a vault whose supervisor runs two
# idle children (`sleep`), first with the supervisor up (the uptime column changes every
# second: one small redraw a second), then with it stopped (every poll the same: nothing
# drawn). Over --seconds (default 30) each time, after a 3 s warm-up: the CPU time of all
# of top's threads (/proc/PID/task/*/schedstat, ns; and utime+stime from /proc/PID/stat in
# clock ticks), its context switches and the bytes it wrote (/proc/PID/io wchar: the
# terminal, and the control socket's requests). Linux only; needs tmux.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN="$repo/target/release/ai-employee"
SECONDS_IDLE=30
INTERVAL=1s
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --seconds) SECONDS_IDLE=$2; shift 2 ;;
        --interval) INTERVAL=$2; shift 2 ;;
        *) echo "usage: $0 [--bin PATH] [--seconds N] [--interval 1s]" >&2; exit 2 ;;
    esac
done
command -v tmux >/dev/null || { echo "needs tmux" >&2; exit 1; }

work=$(mktemp -d /tmp/top-idle.XXXXXX)
sock="$work/tmux.sock"
sup=""
cleanup() {
    tmux -S "$sock" kill-server 2>/dev/null || true
    [ -n "$sup" ] && kill "$sup" 2>/dev/null && wait "$sup" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

vault="$work/vault"
cat >"$work/table.toml" <<'EOF'
[[process]]
name = "alpha"
command = "sleep"
args = ["100000"]

[[process]]
name = "beta"
command = "sleep"
args = ["100000"]
EOF
"$BIN" supervise --vault "$vault" --config "$work/table.toml" >"$work/sup.out" 2>&1 &
sup=$!
for _ in $(seq 100); do "$BIN" status --vault "$vault" >/dev/null 2>&1 && break; sleep 0.1; done

tmux -S "$sock" -f /dev/null new-session -d -s t -x 100 -y 30 \
    "exec $BIN top --vault $vault --interval $INTERVAL"
top=$(tmux -S "$sock" display-message -p -t t '#{pane_pid}')

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
wchar() { awk '/^wchar/ {print $2}' /proc/"$1"/io; }

measure() {
    sleep 3
    local c0 k0 s0 w0 c1 k1 s1 w1
    c0=$(cpu_ns "$top"); k0=$(ticks "$top"); s0=$(switches "$top"); w0=$(wchar "$top")
    sleep "$SECONDS_IDLE"
    c1=$(cpu_ns "$top"); k1=$(ticks "$top"); s1=$(switches "$top"); w1=$(wchar "$top")
    python3 -c "
c, s, n = ($c1 - $c0) / 1e9, $SECONDS_IDLE, '$1'
print(f'{n}: {s}s: CPU {c * 1000:.1f} ms = {100 * c / s:.3f}% of one CPU (utime+stime $((k1 - k0)) ticks), '
      f'{($s1 - $s0) / s:.1f} context switches/s, {($w1 - $w0) / s:.0f} bytes written/s')"
}

echo "ai-employee top --interval $INTERVAL, 100x30 tmux pane, $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$repo" rev-parse --short HEAD)"
measure "supervisor up, 2 idle children"
kill "$sup"; wait "$sup" 2>/dev/null || true; sup=""
measure "no supervisor (an unchanged screen)"
grep -E 'VmHWM|VmRSS' /proc/"$top"/status | tr -s ' \t\n' ' '; echo
