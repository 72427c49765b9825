#!/usr/bin/env bash
# The task loop's benchmark (issue 11; results in docs/BENCHMARKS.md, "The task loop").
#
#   bench/agent.sh [--bin PATH] [--tasks N] [--latency N] [--idle SECONDS]
#                  [--pueue-bin DIR] [--pueue-modes running,paused] [--pueue-tasks N]
#                  [--phases floor,loop,pueue,queued,idle,latency]
#
# Every agent is bench/noop-agent.c (static C: prints a Claude-style JSON result and exits
# 0, after appending "<exec CLOCK_REALTIME ns> <task file name>" to $NOOP_AGENT_LOG).
#   floor    the same no-op program run N times, 10 at once (xargs -P10): the spawn floor
#   loop     `ai-employee agent`, max_concurrent 10, idle; N task files published (renamed
#            into Needs_Action/) as fast as possible; first publish -> all N in Done/;
#            each exactly once (Done/ listing and the agents' exec records)
#   pueue    pueued, `pueue parallel 10`, N `pueue add` of the same command; first add ->
#            `pueue wait` returns; with --pueue-modes running,paused once more with the
#            group paused while adding, start -> done. --pueue-tasks: fewer tasks for pueue
#            (its daemon rewrites its whole state file on every change: quadratic)
#   queued   the loop paused by .claude_stop, N tasks published: its RSS (VmRSS, VmHWM)
#            and `ai-employee tasks --json` (best of 5); then the stop file is removed:
#            resume -> all N in Done/
#   idle     the loop on an empty vault: CPU (schedstat, all threads) and wake-ups
#            (context switches) over --idle seconds, run by hand, then with the
#            heartbeat file and timeout (90 s) the supervisor gives it, then with a
#            heartbeat file and no timeout (a touch every 10 s)
#   latency  bench/agent-latency.c publishes --latency tasks one at a time into the idle
#            loop: published -> agent exec'd, p50/p99
# Vaults live under a temporary folder in $TMPDIR (default /tmp), removed at the end. The report is printed
# and written to bench/results/agent-<time>.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN=$repo/target/release/ai-employee
N=10000
LAT=1000
IDLE=60
PUEUE_BIN=/tmp/pueue-bin/bin
PHASES=floor,loop,pueue,queued,idle,latency
BEAT=
BEAT_USEC=
PUEUE_MODES=running
PN=
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --tasks) N=$2; shift 2 ;;
        --latency) LAT=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --pueue-bin) PUEUE_BIN=$2; shift 2 ;;
        --phases) PHASES=$2; shift 2 ;;
        --pueue-modes) PUEUE_MODES=$2; shift 2 ;;
        --pueue-tasks) PN=$2; shift 2 ;;
        *) echo "agent.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
PN=${PN:-$N}
[ -x "$BIN" ] || { echo "agent.sh: no binary at $BIN (cargo build --release)" >&2; exit 2; }
has() { case ",$PHASES," in *",$1,"*) return 0 ;; esac; return 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/aie-agent-bench.XXXXXX")
LOOP_PID=
PUEUED_PID=
cleanup() {
    [ -n "$LOOP_PID" ] && kill "$LOOP_PID" 2>/dev/null && wait "$LOOP_PID" 2>/dev/null
    [ -n "$PUEUED_PID" ] && kill "$PUEUED_PID" 2>/dev/null && wait "$PUEUED_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$repo/bench/results"
OUT=$repo/bench/results/agent-$(date -u +%Y%m%dT%H%M%SZ).txt
say() { echo "$*" | tee -a "$OUT"; }

cc -O2 -static -o "$W/noop-agent" "$here/noop-agent.c" 2>/dev/null && NOOP_KIND="static C (cc -O2 -static)" \
    || { cc -O2 -o "$W/noop-agent" "$here/noop-agent.c"; NOOP_KIND="dynamic C (cc -O2)"; }
cc -O2 -o "$W/agent-latency" "$here/agent-latency.c"
NOOP=$W/noop-agent

say "# bench/agent.sh $(date -u +%FT%TZ)  rev $(git -C "$repo" rev-parse --short HEAD) (the checkout; binary: $BIN)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "no-op agent: $NOOP_KIND; tasks $N, latency probes $LAT, idle ${IDLE}s"

# ---- helpers ----------------------------------------------------------------------------

now_ns() { date +%s%N; }

# A vault with the loop configured for the no-op agent.
mkvault() {
    local v=$1
    "$BIN" init --vault "$v" >/dev/null
    cat >"$v/ai-employee.toml" <<EOF
[agent]
command = ["$NOOP", "-p", "{prompt}"]
max_concurrent = 10
EOF
    mkdir -p "$v.stage"
}

start_loop() {
    local v=$1 log=$2
    # With $BEAT set, the heartbeat file the supervisor would give it (touched every 10 s,
    # or every third of $BEAT_USEC, the heartbeat_timeout the supervisor tells it).
    env ${BEAT:+AI_EMPLOYEE_HEARTBEAT=$BEAT} ${BEAT_USEC:+AI_EMPLOYEE_HEARTBEAT_USEC=$BEAT_USEC} NOOP_AGENT_LOG="$log" "$BIN" agent --vault "$v" >"$W/loop.out" 2>&1 &
    LOOP_PID=$!
    # Up when its snapshot exists.
    for _ in $(seq 1 500); do
        [ -f "$v/.ai-employee/tasks.json" ] && return 0
        kill -0 "$LOOP_PID" 2>/dev/null || { cat "$W/loop.out" >&2; return 1; }
        sleep 0.01
    done
    echo "agent.sh: the loop did not start" >&2
    return 1
}

stop_loop() {
    kill "$LOOP_PID" 2>/dev/null || true
    wait "$LOOP_PID" 2>/dev/null || true
    LOOP_PID=
}

# publish VAULT N: stage N task files, then rename them all into Needs_Action/; prints the
# CLOCK_REALTIME ns of the first rename.
publish() {
    python3 - "$@" <<'EOF'
import os, sys, time
vault, n = sys.argv[1], int(sys.argv[2])
stage = vault + ".stage"
names = ["t-%05d.md" % i for i in range(n)]
for name in names:
    with open(os.path.join(stage, name), "w") as f:
        f.write("---\ntitle: task %s\n---\nbody\n" % name)
na = os.path.join(vault, "Needs_Action")
print(time.time_ns())
for name in names:
    os.rename(os.path.join(stage, name), os.path.join(na, name))
EOF
}

# wait_done VAULT N LOG: wait until all N are in Done/; prints the CLOCK_REALTIME ns then.
# Cheap waiting: count the agents' exec records (read incrementally) every 20 ms, then list
# Done/ every 5 ms until every task is there.
wait_done() {
    python3 - "$@" <<'EOF'
import os, sys, time
vault, n, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines, off = 0, 0
deadline = time.monotonic() + 600
while lines < n and time.monotonic() < deadline:
    try:
        with open(log, "rb") as f:
            f.seek(off)
            b = f.read()
        off += len(b)
        lines += b.count(b"\n")
    except FileNotFoundError:
        pass
    time.sleep(0.02)
done = os.path.join(vault, "Done")
while len(os.listdir(done)) < n and time.monotonic() < deadline:
    time.sleep(0.005)
print(time.time_ns())
EOF
}

# check VAULT N LOG: every task in Done/ exactly once, nothing left elsewhere, one exec each.
check() {
    python3 - "$@" <<'EOF'
import collections, os, sys
vault, n, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want = {"t-%05d.md" % i for i in range(n)}
done = os.listdir(os.path.join(vault, "Done"))
left = {f: len(os.listdir(os.path.join(vault, f))) for f in ("Needs_Action", "In_Progress", "Failed", "Rejected")}
execs = collections.Counter(l.split(" ", 1)[1] for l in open(log).read().splitlines())
bad = []
if sorted(done) != sorted(want):
    bad.append("Done/ has %d files, %d expected, %d missing" % (len(done), n, len(want - set(done))))
if any(left.values()):
    bad.append("left: %s" % left)
if set(execs) != want or any(c != 1 for c in execs.values()):
    bad.append("execs: %d distinct, %d with more than one" % (len(execs), sum(c > 1 for c in execs.values())))
print("exactly once: " + ("yes (%d in Done/, %d execs, nothing left)" % (len(done), sum(execs.values())) if not bad else "NO: " + "; ".join(bad)))
EOF
}

# cpu_per_task PID N: the process's own user and system CPU time, in all and per task.
cpu_per_task() {
    python3 - "$@" <<'EOF'
import os, sys
pid, n = sys.argv[1], int(sys.argv[2])
stat = open("/proc/%s/stat" % pid).read()
f = stat[stat.rindex(")") + 2:].split()
hz = os.sysconf("SC_CLK_TCK")
u, s = int(f[11]) / hz, int(f[12]) / hz
print("utime %.2f s + stime %.2f s = %.3f ms per task" % (u, s, (u + s) * 1000 / n))
EOF
}

# proc_cpu PID own|children: user + system CPU seconds of the process (all its threads), or
# of its reaped children (the loop's agents).
proc_cpu() {
    python3 - "$1" "$2" <<'EOF'
import os, sys
stat = open("/proc/%s/stat" % sys.argv[1]).read()
f = stat[stat.rindex(")") + 2:].split()
i = 11 if sys.argv[2] == "own" else 13
print("%.2f" % ((int(f[i]) + int(f[i + 1])) / os.sysconf("SC_CLK_TCK")))
EOF
}

rate() { python3 -c "import sys; n,ns=int(sys.argv[1]),int(sys.argv[2]); print('%.3f s, %.0f tasks/s' % (ns/1e9, n/(ns/1e9)))" "$@"; }

# finish_run PHASE KEY T0 TEXT: wait until the N tasks of vault $V are in Done/, record the
# wall time since T0 as WALL[KEY], check exactly-once, show the RSS, stop the loop, clean up.
finish_run() {
    local t1
    t1=$(wait_done "$V" "$N" "$W/$1.log")
    WALL[$2]=$((t1 - $3))
    say "$1: $4: $(rate "$N" "${WALL[$2]}")"
    say "$1: RSS after the run: $(grep -E 'VmHWM|VmRSS' /proc/"$LOOP_PID"/status | tr -s ' \t\n' ' ')"
    say "$1: the loop's own CPU (utime + stime, agents not counted): $(cpu_per_task "$LOOP_PID" "$N")"
    CPU_LOOP[$2]=$(proc_cpu "$LOOP_PID" own)
    CPU_AGENTS[$2]=$(proc_cpu "$LOOP_PID" children)
    say "$1: the agents' CPU (reaped by the loop): ${CPU_AGENTS[$2]} s"
    stop_loop
    # After the stop: the loop removes what its edits replaced off its thread, before it exits.
    say "$1: $(check "$V" "$N" "$W/$1.log")"
    rm -rf "$V" "$V.stage" "$W/$1.log"
}

declare -A WALL CPU_LOOP CPU_AGENTS

# ---- floor ------------------------------------------------------------------------------
if has floor; then
    seq -f 't-%05g.md' 0 $((N - 1)) >"$W/names"
    t0=$(now_ns)
    # In a subshell of its own, whose `times` gives xargs's and the agents' CPU.
    FLOOR_CPU=$(
        NOOP_AGENT_LOG=$W/floor.log xargs -P10 -I{} "$NOOP" -p "Task file: In_Progress/{}" <"$W/names" >/dev/null
        times >"$W/times" # here, not in a pipeline's subshell, which has no children
        tail -1 "$W/times" | tr 'ms' '  ' | awk '{printf "%.2f", $1 * 60 + $2 + $3 * 60 + $4}'
    )
    t1=$(now_ns)
    WALL[floor]=$((t1 - t0))
    say "floor: $N execs, xargs -P10: $(rate "$N" "${WALL[floor]}") ($(wc -l <"$W/floor.log") exec records); CPU (xargs and the agents): $FLOOR_CPU s"
fi

# ---- the loop: N tasks at once ----------------------------------------------------------
if has loop; then
    V=$W/v-loop
    mkvault "$V"
    start_loop "$V" "$W/loop.log"
    t0=$(publish "$V" "$N")
    finish_run loop loop "$t0" "$N tasks, max_concurrent 10, first publish -> all in Done/"
fi

# ---- pueue ------------------------------------------------------------------------------
if has pueue; then
    if [ ! -x "$PUEUE_BIN/pueue" ]; then
        say "pueue: not installed at $PUEUE_BIN (cargo install pueue --locked --root ${PUEUE_BIN%/bin})"
    else
        P=$W/pueue
        mkdir -p "$P/data" "$P/run"
        cat >"$P/pueue.yml" <<EOF
shared:
  pueue_directory: $P/data
  runtime_directory: $P/run
  use_unix_socket: true
  unix_socket_path: $P/run/pueue.sock
EOF
        pq() { "$PUEUE_BIN/pueue" -c "$P/pueue.yml" "$@"; }
        "$PUEUE_BIN/pueued" -c "$P/pueue.yml" >"$P/pueued.out" 2>&1 &
        PUEUED_PID=$!
        for _ in $(seq 1 500); do [ -S "$P/run/pueue.sock" ] && break; sleep 0.01; done
        pq parallel 10 >/dev/null
        say "pueue: $("$PUEUE_BIN/pueue" --version | head -1)"
        for mode in ${PUEUE_MODES//,/ }; do
            pq clean >/dev/null
            : >"$W/pueue.log"
            [ $mode = paused ] && pq pause >/dev/null
            t0=$(now_ns)
            for i in $(seq -f '%05g' 0 $((PN - 1))); do
                NOOP_AGENT_LOG=$W/pueue.log pq add -- "$NOOP -p 'Task file: In_Progress/t-$i.md'" >/dev/null
            done
            t_added=$(now_ns)
            [ $mode = paused ] && { t0=$(now_ns); pq start >/dev/null; }
            pq wait >/dev/null
            t1=$(now_ns)
            WALL[pueue_$mode]=$((t1 - t0))
            ok=$(pq status --json | python3 -c "import json,sys; t=json.load(sys.stdin)['tasks'].values(); print(sum(1 for x in t if 'Done' in x['status'] and x['status']['Done'].get('result')=='Success'))")
            if [ $mode = running ]; then
                say "pueue: $PN adds while running (adds took $(( (t_added - t0) / 1000000 )) ms), first add -> all done: $(rate "$PN" "${WALL[pueue_$mode]}"); $ok succeeded, $(wc -l <"$W/pueue.log") exec records"
            else
                say "pueue: $PN adds into a paused group, start -> all done: $(rate "$PN" "${WALL[pueue_$mode]}"); $ok succeeded, $(wc -l <"$W/pueue.log") exec records"
            fi
        done
        pq shutdown >/dev/null 2>&1 || true
        wait "$PUEUED_PID" 2>/dev/null || true
        PUEUED_PID=
        rm -rf "$P" "$W/pueue.log"
    fi
fi

# ---- queued: memory, tasks --json, resume -----------------------------------------------
if has queued; then
    V=$W/v-queued
    mkvault "$V"
    touch "$V/.claude_stop"
    start_loop "$V" "$W/queued.log"
    publish "$V" "$N" >/dev/null
    # Queued when the snapshot lists all N.
    python3 - "$V/.ai-employee/tasks.json" "$N" <<'EOF'
import json, sys, time
path, n = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        s = json.load(open(path))
        if sum(1 for t in s["tasks"] if t["state"] == "pending") >= n:
            sys.exit(0)
    except (ValueError, OSError):
        pass
    time.sleep(0.2)
sys.exit("not all queued within 120 s")
EOF
    say "queued: $N queued (paused): $(grep -E 'VmHWM|VmRSS' /proc/"$LOOP_PID"/status | tr -s ' \t\n' ' ')"
    best= all=
    for _ in 1 2 3 4 5; do
        t0=$(now_ns)
        "$BIN" tasks --vault "$V" --json >"$W/tasks.json"
        t1=$(now_ns)
        d=$((t1 - t0))
        [ -z "$best" ] || [ "$d" -lt "$best" ] && best=$d
        all="$all $((d / 100000))"
    done
    say "queued: tasks --json with $N queued ($(stat -c %s "$W/tasks.json") bytes): best of 5 $(python3 -c "print('%.1f ms' % ($best/1e6))")  (all, 0.1 ms:$all)"
    t0=$(now_ns)
    rm "$V/.claude_stop"
    finish_run queued resume "$t0" "stop file removed -> all $N in Done/"
fi

# ---- idle and latency -------------------------------------------------------------------
# cpu_ns PID: time on CPU of all its threads (schedstat, ns); switches PID: context switches.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
if has idle || has latency; then
    V=$W/v-idle
    mkvault "$V"
    start_loop "$V" "$W/lat.log"
    sleep 2 # let start-up settle (the first snapshot and dashboard writes)
    if has idle; then
        # Three times: run by hand (no heartbeat file); as the supervisor runs it with the
        # shipped table's heartbeat_timeout of 90 s (a touch every 30 s); and with a
        # heartbeat file but no timeout told (a touch every 10 s, as for a table without
        # one, or a supervisor before the timeout was passed on). The latency phase uses
        # the last.
        for how in "without a heartbeat file" "with the supervisor's heartbeat file, heartbeat_timeout 90s" "with a heartbeat file, no timeout told (10 s)"; do
            if [ -n "${BEAT:-}" ]; then
                stop_loop
                start_loop "$V" "$W/lat.log"
                sleep 2
            fi
            c0=$(cpu_ns "$LOOP_PID"); k0=$(ticks "$LOOP_PID"); s0=$(switches "$LOOP_PID")
            sleep "$IDLE"
            c1=$(cpu_ns "$LOOP_PID"); k1=$(ticks "$LOOP_PID"); s1=$(switches "$LOOP_PID")
            say "idle: empty queue, ${IDLE}s, $how: CPU $(python3 -c "print('%.3f ms' % (($c1-$c0)/1e6))") (schedstat, all threads), utime+stime $((k1 - k0)) ticks, $((s1 - s0)) context switches; $(grep -E 'VmHWM|VmRSS' /proc/"$LOOP_PID"/status | tr -s ' \t\n' ' ')"
            BEAT=$V/.ai-employee/heartbeat/agent
            mkdir -p "$(dirname "$BEAT")"
            case $how in
                "without"*) BEAT_USEC=90000000 ;;
                *) BEAT_USEC= ;;
            esac
        done
        [ -f "$BEAT" ] || say "idle: the heartbeat file was never touched"
        BEAT=
        BEAT_USEC=
    fi
    if has latency; then
        "$W/agent-latency" "$V" "$V.stage" "$W/lat.log" "$LAT" >"$W/lat.ns"
        say "latency: $(python3 - "$W/lat.ns" <<'EOF'
import sys
v = sorted(int(l) for l in open(sys.argv[1]))
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1e6
print("%d publishes one at a time, published -> agent exec'd: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, min %.2f ms" % (len(v), q(.5), q(.9), q(.99), v[-1] / 1e6, v[0] / 1e6))
EOF
)"
    fi
    stop_loop
    rm -rf "$V" "$V.stage"
fi

# ---- ratios -----------------------------------------------------------------------------
ratio() { python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / int(sys.argv[2])))" "$@"; }
[ -n "${WALL[loop]:-}" ] && [ -n "${WALL[floor]:-}" ] && say "ratio: loop wall / floor wall = $(ratio "${WALL[loop]}" "${WALL[floor]}") (goal <= 1.5)"
# The CPU bound: the run cannot take less than all the CPU it used spread over every core.
if [ -n "${CPU_LOOP[loop]:-}" ] && [ -n "${FLOOR_CPU:-}" ]; then
    python3 - "$N" "$(nproc)" "$FLOOR_CPU" "${CPU_LOOP[loop]}" "${CPU_AGENTS[loop]}" "${WALL[floor]}" "${WALL[loop]}" <<'EOF' | tee -a "$OUT"
import sys
n, cores = int(sys.argv[1]), int(sys.argv[2])
floor_cpu, loop_cpu, agents_cpu = map(float, sys.argv[3:6])
floor_wall, loop_wall = int(sys.argv[6]) / 1e9, int(sys.argv[7]) / 1e9
ms = lambda s: s * 1000 / n
print("cpu: floor %.3f ms per task (xargs and the agent), busy %.0f%% of %d cores" % (ms(floor_cpu), 100 * floor_cpu / floor_wall / cores, cores))
print("cpu: loop run %.3f ms per task in the loop + %.3f in its agents, busy %.0f%% of %d cores" % (ms(loop_cpu), ms(agents_cpu), 100 * (loop_cpu + agents_cpu) / loop_wall / cores, cores))
bound = (loop_cpu + agents_cpu) / cores
print("cpu: the loop run's CPU alone, spread over %d cores, takes %.2f s = %.2f x the floor's wall" % (cores, bound, bound / floor_wall))
EOF
fi
[ -n "${WALL[resume]:-}" ] && [ -n "${WALL[floor]:-}" ] && say "ratio: resume wall / floor wall = $(ratio "${WALL[resume]}" "${WALL[floor]}")"
[ -n "${WALL[loop]:-}" ] && [ -n "${WALL[pueue_running]:-}" ] && say "ratio: loop throughput / pueue (adds while running) = $(ratio "$(python3 -c "import sys; print(int(sys.argv[1]) * $N // $PN)" "${WALL[pueue_running]}")" "${WALL[loop]}") (per-task rates; goal >= 2)"
[ -n "${WALL[resume]:-}" ] && [ -n "${WALL[pueue_paused]:-}" ] && say "ratio: loop resume throughput / pueue (paused group, start) = $(ratio "$(python3 -c "import sys; print(int(sys.argv[1]) * $N // $PN)" "${WALL[pueue_paused]}")" "${WALL[resume]}") (per-task rates)"
say "report: $OUT"
