#!/usr/bin/env bash
# The work queue's benchmark (issue 12; results in docs/BENCHMARKS.md, "Workers over Redis").
#
#   bench/queue.sh [--bin PATH] [--tasks N] [--latency N] [--workers 1,2,4]
#                  [--concurrency C] [--celery-venv DIR] [--phases ours,celery,celery-exec]
#
# One private redis-server on a loopback port (no persistence), shared in turn by:
#   ours    `ai-employee agent` with [agent] queue, and W `ai-employee worker --concurrency
#           C` processes on this machine (W from --workers); the agent is
#           bench/noop-agent.c (prints a Claude-style result, records its exec time). N
#           task files published at once: first publish -> all N in Done/, exactly once;
#           then, with the first W, --latency tasks one at a time: published -> the
#           worker's agent exec'd (bench/agent-latency.c).
#   celery  Celery (PyPI `celery[redis]`, in --celery-venv) with the same Redis as broker,
#           `-c C` prefork worker, a no-op task that records its start time: N tasks sent
#           at once (first send -> all ran), then --latency one at a time (send -> ran).
#   celery-exec  the same, but the task runs the same no-op agent program ours runs
#           (subprocess.run, no shell): the per-task work of the product on both sides.
# The report is printed and written to bench/results/queue-<time>.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN=$repo/target/release/ai-employee
N=10000
LAT=500
WORKERS=1,2,4
C=10
VENV=/tmp/celery-venv
PHASES=ours,celery,celery-exec
while [ $# -gt 0 ]; do
    case $1 in
        --bin) BIN=$2; shift 2 ;;
        --tasks) N=$2; shift 2 ;;
        --latency) LAT=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --concurrency) C=$2; shift 2 ;;
        --celery-venv) VENV=$2; shift 2 ;;
        --phases) PHASES=$2; shift 2 ;;
        *) echo "queue.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "queue.sh: no binary at $BIN (cargo build --release)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "queue.sh: no redis-server (apt-get install redis-server)" >&2; exit 2; }
has() { case ",$PHASES," in *",$1,"*) return 0 ;; esac; return 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/aie-queue-bench.XXXXXX")
PIDS=()
REDIS_PID=
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$repo/bench/results"
OUT=$repo/bench/results/queue-$(date -u +%Y%m%dT%H%M%SZ).txt
say() { echo "$*" | tee -a "$OUT"; }

cc -O2 -static -o "$W/noop-agent" "$here/noop-agent.c" 2>/dev/null \
    || cc -O2 -o "$W/noop-agent" "$here/noop-agent.c"
cc -O2 -o "$W/agent-latency" "$here/agent-latency.c"
NOOP=$W/noop-agent

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$W" \
    --daemonize no >"$W/redis.log" 2>&1 &
REDIS_PID=$!
URL=redis://127.0.0.1:$PORT/0
for _ in $(seq 1 200); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

say "# bench/queue.sh $(date -u +%FT%TZ)  rev $(git -C "$repo" rev-parse --short HEAD)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "redis: $(redis-server --version | cut -d' ' -f3) on $URL, no persistence; tasks $N, concurrency $C per worker, latency probes $LAT"

now_ns() { date +%s%N; }
rate() { python3 -c "import sys; n,ns=int(sys.argv[1]),int(sys.argv[2]); print('%.3f s, %.0f tasks/s' % (ns/1e9, n/(ns/1e9)))" "$@"; }
pct() {
    python3 - "$1" <<'PY'
import sys
v = sorted(int(l) for l in open(sys.argv[1]) if l.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))] / 1e6
print("%d one at a time: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms" % (len(v), q(.5), q(.9), q(.99), v[-1] / 1e6))
PY
}

declare -A WALL

# ---- ours -------------------------------------------------------------------------------
if has ours; then
    first=1
    for nw in ${WORKERS//,/ }; do
        redis-cli -p "$PORT" flushall >/dev/null
        V=$W/v-$nw
        "$BIN" init --vault "$V" >/dev/null
        cat >"$V/ai-employee.toml" <<TOML
[agent]
command = ["$NOOP", "-p", "{prompt}"]
queue = "$URL"
claim_timeout = "10m"
TOML
        mkdir -p "$V.stage"
        LOG=$W/ours-$nw.log
        NOOP_AGENT_LOG=$LOG "$BIN" agent --vault "$V" >"$W/loop-$nw.out" 2>&1 &
        LOOP=$!; PIDS+=("$LOOP")
        WPIDS=()
        for i in $(seq 1 "$nw"); do
            NOOP_AGENT_LOG=$LOG "$BIN" worker --queue "$URL" --name "w$i" --concurrency "$C" \
                --work-dir "$W/work-$nw-$i" --allow-program "$NOOP" >"$W/worker-$nw-$i.out" 2>&1 &
            WPIDS+=("$!"); PIDS+=("$!")
        done
        for _ in $(seq 1 500); do [ -f "$V/.ai-employee/tasks.json" ] && break; sleep 0.01; done
        # Every worker registered before the clock starts.
        for _ in $(seq 1 500); do [ "$(redis-cli -p "$PORT" hlen ai-employee:workers)" -ge "$nw" ] && break; sleep 0.01; done
        python3 - "$V" "$N" >"$W/t0" <<'PY'
import os, sys, time
vault, n = sys.argv[1], int(sys.argv[2])
stage = vault + ".stage"
names = ["t-%05d.md" % i for i in range(n)]
for name in names:
    with open(os.path.join(stage, name), "w") as f:
        f.write("---\ntitle: task %s\n---\nbody\n" % name)
print(time.time_ns())
for name in names:
    os.rename(os.path.join(stage, name), os.path.join(vault, "Needs_Action", name))
PY
        t0=$(cat "$W/t0")
        python3 - "$V" "$N" <<'PY'
import os, sys, time
vault, n = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 1800
d = os.path.join(vault, "Done")
while len(os.listdir(d)) < n and time.monotonic() < deadline:
    time.sleep(0.01)
PY
        t1=$(now_ns)
        WALL[ours_$nw]=$((t1 - t0))
        # CPU time (utime + stime, all threads) of the loop, the workers and Redis.
        cpu_of() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' /proc/"$1"/stat; }
        wcpu=$(for p in "${WPIDS[@]}"; do cpu_of "$p"; echo; done | awk '{s += $1} END {printf "%.2f", s}')
        CPU_LINE="CPU: loop $(cpu_of "$LOOP") s, workers $wcpu s (agents not counted), redis $(cpu_of "$REDIS_PID") s (since its start)"
        done_n=$(ls "$V/Done" | wc -l)
        execs=$(wc -l <"$LOG")
        distinct=$(cut -d' ' -f2 "$LOG" | sort -u | wc -l)
        say "ours: $nw worker(s) x $C: $N tasks, first publish -> all in Done/: $(rate "$N" "${WALL[ours_$nw]}"); Done/ $done_n, agent execs $execs ($distinct distinct); loop $(grep VmHWM /proc/$LOOP/status | tr -s ' \t' ' ')"
        say "ours: $CPU_LINE"
        say "ours: redis used_memory_peak after the run: $(redis-cli -p "$PORT" info memory | grep '^used_memory_peak_human' | cut -d: -f2 | tr -d '\r')"
        if [ "$first" = 1 ] && [ "$LAT" -gt 0 ]; then
            "$W/agent-latency" "$V" "$V.stage" "$LOG" "$LAT" >"$W/ours.lat"
            say "ours: latency, task file published -> the worker's agent exec'd, $(pct "$W/ours.lat")"
            first=0
        fi
        kill "$LOOP" "${WPIDS[@]}" 2>/dev/null || true
        wait "$LOOP" "${WPIDS[@]}" 2>/dev/null || true
        rm -rf "$V" "$V.stage"
    done
fi

# ---- celery -----------------------------------------------------------------------------
celery_phase() {  # KEY EXEC: EXEC empty = the Python no-op, else the agent program
    local key=$1 exec=$2
    if [ ! -x "$VENV/bin/python" ]; then
        say "celery: no venv at $VENV (python3 -m venv $VENV && $VENV/bin/pip install 'celery[redis]==5.7.0'); skipped"
    else
        redis-cli -p "$PORT" flushall >/dev/null
        say "celery: $("$VENV/bin/python" -c 'import celery, kombu, redis; print("celery", celery.__version__, "kombu", kombu.__version__, "redis-py", redis.__version__)')"
        LOG=$W/$key.log
        ( cd "$W" && NOOP_AGENT_LOG=$LOG CELERY_NOOP_EXEC=$exec exec "$VENV/bin/python" "$here/celery_noop.py" worker "$URL" "$C" >"$W/$key-worker.out" 2>&1 ) &
        CW=$!; PIDS+=("$CW")
        # Ready when a probe task has run.
        NOOP_AGENT_LOG=$LOG "$VENV/bin/python" "$here/celery_noop.py" burst "$URL" 1 "$LOG" >/dev/null
        : >"$LOG"
        read -r t0 t1 < <(NOOP_AGENT_LOG=$LOG "$VENV/bin/python" "$here/celery_noop.py" burst "$URL" "$N" "$LOG")
        WALL[$key]=$((t1 - t0))
        say "$key: -c $C: $N tasks, first send -> all ran: $(rate "$N" "${WALL[$key]}"); ran $(wc -l <"$LOG") ($(cut -d' ' -f2 "$LOG" | sort -u | wc -l) distinct)"
        say "$key: CPU: worker pool $(ps -o cputimes= --ppid "$CW" | awk '{s += $1} END {printf "%.2f", s}') s + main $(ps -o cputimes= -p "$CW" | tr -d ' ') s (agents not counted), redis $(awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' /proc/"$REDIS_PID"/stat) s (since its start)"
        if [ "$LAT" -gt 0 ]; then
            NOOP_AGENT_LOG=$LOG "$VENV/bin/python" "$here/celery_noop.py" latency "$URL" "$LAT" "$LOG" >"$W/$key.lat"
            say "$key: latency, send -> task started, $(pct "$W/$key.lat")"
        fi
        kill "$CW" 2>/dev/null || true
        wait "$CW" 2>/dev/null || true
    fi
}
has celery && celery_phase celery ""
has celery-exec && celery_phase celery-exec "$NOOP"

ratio() { python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / int(sys.argv[2])))" "$@"; }
for nw in ${WORKERS//,/ }; do
    for key in celery celery-exec; do
        [ -n "${WALL[ours_$nw]:-}" ] && [ -n "${WALL[$key]:-}" ] && \
            say "ratio: ours with $nw worker(s) / $key throughput = $(ratio "${WALL[$key]}" "${WALL[ours_$nw]}") (goal >= 2)"
    done
done
say "report: $OUT"
