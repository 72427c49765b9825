#!/usr/bin/env bash
# Alternating runs of the task loop's throughput phases (bench/agent.sh --phases floor,loop)
# for two or more binaries, each run with its own floor, so that every ratio saw the same
# machine minutes (docs/BENCHMARKS.md, "The task loop").
#
#   bench/agent_ab.sh [--rounds N] [--settle SECONDS] [--tasks N] BIN...
#
# Between two runs it syncs, then waits --settle seconds (default 70): a run removes its
# 30,000-odd files at its end, and on ext4 without a journal (this VM's root) the inode
# allocator skips every inode freed in the last 60 s (RECENTCY_MIN in fs/ext4/ialloc.c;
# 360 s while its inode-table block is not yet written back), one lookup each, before it
# takes a free one. With 40 s between runs, a loop run that started inside that window paid
# 1.4-1.5 ms of CPU per task instead of 0.5 (loop/floor 2.8-3.2 instead of 1.5) in 2 of 6
# rounds (docs/BENCHMARKS.md, "The task loop"). Prints one line per run: the binary, loop/floor,
# the loop's CPU per task, the agents' and how busy both cores were; the full reports are
# in bench/results/agent-<time>.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ROUNDS=3
SETTLE=70
N=10000
BINS=()
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --settle) SETTLE=$2; shift 2 ;;
        --tasks) N=$2; shift 2 ;;
        -*) echo "agent_ab.sh: unknown option $1" >&2; exit 2 ;;
        *) BINS+=("$1"); shift ;;
    esac
done
[ ${#BINS[@]} -ge 1 ] || { echo "usage: bench/agent_ab.sh [--rounds N] [--settle S] BIN..." >&2; exit 2; }

for round in $(seq 1 "$ROUNDS"); do
    for bin in "${BINS[@]}"; do
        sync
        sleep "$SETTLE"
        out=$("$here/agent.sh" --bin "$bin" --tasks "$N" --phases floor,loop 2>&1) || {
            echo "$bin: agent.sh failed:"; echo "$out" | tail -5; exit 1
        }
        ratio=$(echo "$out" | sed -n 's/^ratio: loop wall \/ floor wall = \([0-9.]*\).*/\1/p')
        cpu=$(echo "$out" | sed -n 's/^cpu: loop run \([0-9.]*\) ms per task in the loop + \([0-9.]*\) in its agents, busy \([0-9]*\)%.*/per task: loop \1 ms + agents \2 ms; cores busy \3%/p')
        echo "round $round  $bin  loop/floor $ratio  ($cpu)"
    done
done
