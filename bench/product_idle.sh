#!/usr/bin/env bash
# The whole product at rest: `ai-employee supervise` with the default table on a fresh vault
# (`ai-employee init`: the filesystem watcher, the approval handler and the task loop run;
# mail and WhatsApp exit 78 without credentials), for one or more binaries side by side, so
# that each saw the same machine minutes. Results in docs/BENCHMARKS.md ("Idle watchers").
#
#   bench/product_idle.sh [--seconds N] BIN...        (default: 60 s, the checkout's release build)
#
# After every supervisor has said its children started and a 5 s settle, each process of
# each binary is measured over --seconds: the context switches of all its threads (each
# one a wake-up or a preemption; /proc/PID/task/*/status) and their CPU time
# (/proc/PID/task/*/schedstat). Then every supervisor gets SIGINT (Ctrl+C) and the time
# until its last process was gone is printed. Linux only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SECS=60
BINS=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECS=$2; shift 2 ;;
        -*) echo "usage: $0 [--seconds N] BIN..." >&2; exit 2 ;;
        *) BINS+=("$1"); shift ;;
    esac
done
[ ${#BINS[@]} -gt 0 ] || BINS=("$repo/target/release/ai-employee")

work=$(mktemp -d /tmp/product-idle.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "# bench/product_idle.sh $(date -u +%FT%TZ), ${SECS}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
for bin in "${BINS[@]}"; do
    v=$work/v$i
    "$bin" init --vault "$v" >/dev/null
    "$bin" supervise --vault "$v" >"$work/out$i" 2>&1 &
    PIDS+=($!)
    i=$((i + 1))
done
for j in $(seq 0 $((i - 1))); do
    for _ in $(seq 300); do
        grep -q "processes started" "$work/out$j" 2>/dev/null && break
        sleep 0.1
    done
    grep -q "processes started" "$work/out$j" || { echo "supervisor $j did not start:" >&2; cat "$work/out$j" >&2; exit 1; }
done
sleep 5

python3 - "$SECS" "$work" "${BINS[@]}" <<'EOF'
import os, sys, time
secs, work, bins = float(sys.argv[1]), sys.argv[2], sys.argv[3:]

def vault_of(pid, cmd):
    if "--vault" in cmd:
        return cmd[cmd.index("--vault") + 1]
    for kv in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
        if kv.startswith(b"AI_EMPLOYEE_VAULT="):
            return kv.split(b"=", 1)[1].decode()
    return None

def snap():
    r = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = [a.decode() for a in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0") if a]
            v = vault_of(pid, cmd)
            if not v or not v.startswith(work):
                continue
            cs = cpu = 0
            for t in os.listdir(f"/proc/{pid}/task"):
                for line in open(f"/proc/{pid}/task/{t}/status"):
                    if "ctxt_switches" in line:
                        cs += int(line.split()[1])
                cpu += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
            name = " ".join(a for a in cmd[1:3] if not a.startswith("-"))
            r[pid] = (int(v[len(work) + 2:].split("/")[0]), name, cs, cpu)
        except (OSError, ValueError, IndexError):
            pass
    return r

a = snap()
time.sleep(secs)
b = snap()
for i, binary in enumerate(bins):
    print(f"\n{binary}")
    print(f"  {'process':<22} {'wake-ups':>9} {'per s':>6} {'CPU ms':>8}")
    tw = tc = 0
    for pid in sorted(p for p in a if a[p][0] == i and p in b):
        w, c = b[pid][2] - a[pid][2], (b[pid][3] - a[pid][3]) / 1e6
        tw, tc = tw + w, tc + c
        print(f"  {a[pid][1]:<22} {w:>9} {w / secs:>6.2f} {c:>8.2f}")
    print(f"  {'the whole product':<22} {tw:>9} {tw / secs:>6.2f} {tc:>8.2f}")
EOF

echo
j=0
for p in "${PIDS[@]}"; do
    t0=$(date +%s%N)
    kill -INT "$p"
    # The supervisor waits for its children: all gone when it has exited.
    wait "$p" 2>/dev/null || true
    echo "Ctrl+C of supervisor $j (${BINS[$j]}): stopped in $((($(date +%s%N) - t0) / 1000000)) ms"
    j=$((j + 1))
done
wait 2>/dev/null || true
PIDS=()
