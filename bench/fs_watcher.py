#!/usr/bin/env python3
"""Benchmark `ai-employee watch filesystem` (release build): drop -> task latency and
burst throughput. Python 3 standard library only.

    cargo build --release && python3 bench/fs_watcher.py [--drops 1000] [--burst 10000]

Latency. For each of N drops (one at a time, each waited for): a closed file appears in
Inbox/, either by rename (written to a temp name in the vault, outside Inbox, then
renamed in) or by write+close directly in Inbox/. The clock starts just before the
rename() / close() call and stops when this script first sees the task note
`Needs_Action/FILE_<stamp>_<name>.md` with os.stat() (no inotify: a poll loop that stats
the one or two possible note names every ~100 us, so results carry up to ~0.2 ms of
polling granularity). The note is renamed into place last, after the copy, so seeing
it means the task is complete. Also shown: the watcher's own `received` timestamp
(frontmatter, ms resolution, wall clock) minus the drop time = how long until the
watcher had judged the file complete and started on it.

Burst. N files written as fast as one Python thread can (write+close directly in
Inbox/), watcher running; files/s = N / (time from the first write to the moment all N
notes are visible; Needs_Action/ is listed every 20 ms). Then the same N files are put
in a fresh vault while the watcher is down, and it is started: the start-up sweep rate.
A last run repeats the live burst while kill -9'ing and restarting the watcher 3 times
and checks that exactly N tasks with N distinct original names result.

Stress (`--only stress`, not part of the default run): files are written while the watcher
is kill -9'd every 0.5-30 ms, --kills times (default 300), then it runs to the end; checks
exactly N notes, N copies, N distinct original names, and an empty staging folder.
"""

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


EXTRA_ARGS = []


def start(binary, vault, log):
    return subprocess.Popen(
        [binary, "watch", "filesystem", "--vault", vault, *EXTRA_ARGS],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={k: v for k, v in os.environ.items()
             if k not in ("AI_EMPLOYEE_HEARTBEAT", "AI_EMPLOYEE_VAULT")},
    )


def wait_for(cond, timeout, pause=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(pause)
    return cond()


def wait_ready(log_path, count=1):
    def ready():
        with open(log_path) as f:
            return f.read().count("watching ") >= count
    if not wait_for(ready, 30):
        sys.exit(f"watcher did not start; see {log_path}")


def stamp(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def wait_note(na, name, t_wall, timeout=10.0):
    """Poll (os.stat) for FILE_<stamp>_<name>.md; return (perf_counter_ns when seen, path)."""
    end = time.perf_counter() + timeout
    first = int(t_wall)
    while True:
        now_wall = time.time()
        for s in range(first, int(now_wall) + 1):
            p = os.path.join(na, f"FILE_{stamp(s)}_{name}.md")
            try:
                os.stat(p)
                return time.perf_counter_ns(), p
            except FileNotFoundError:
                pass
        if time.perf_counter() > end:
            raise TimeoutError(f"no note for {name}")
        time.sleep(0.0001)


def received_of(note):
    with open(note) as f:
        for line in f:
            if line.startswith("received:"):
                v = line.split(":", 1)[1].strip().strip("'\"")
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def summary(label, ms):
    return (f"{label:<28} n={len(ms):<5} p50={pct(ms, 50):7.2f} ms  p90={pct(ms, 90):7.2f} ms  "
            f"p99={pct(ms, 99):7.2f} ms  max={max(ms):7.2f} ms")


def latency(binary, base, drops, mode):
    vault = os.path.join(base, f"lat-{mode}")
    inbox, na = os.path.join(vault, "Inbox"), os.path.join(vault, "Needs_Action")
    os.makedirs(inbox)
    log_path = os.path.join(base, f"lat-{mode}.log")
    with open(log_path, "w") as log:
        w = start(binary, vault, log)
        try:
            wait_ready(log_path)
            visible, received = [], []
            payload = os.urandom(4096)
            for i in range(drops):
                name = f"{mode}-{i:05}.bin"
                if mode == "rename":
                    tmp = os.path.join(vault, f"tmp-{name}")
                    with open(tmp, "wb") as f:
                        f.write(payload)
                    t_wall, t0 = time.time(), time.perf_counter_ns()
                    os.rename(tmp, os.path.join(inbox, name))
                else:
                    f = open(os.path.join(inbox, name), "wb")
                    f.write(payload)
                    t_wall, t0 = time.time(), time.perf_counter_ns()
                    f.close()
                t1, note = wait_note(na, name, t_wall)
                visible.append((t1 - t0) / 1e6)
                r = received_of(note)
                if r is not None:
                    received.append(max(0.0, (r - t_wall) * 1000))
        finally:
            w.send_signal(signal.SIGTERM)
            w.wait()
    return visible, received


def notes(na):
    try:
        return sum(1 for n in os.listdir(na) if n.endswith(".md"))
    except FileNotFoundError:
        return 0


def write_files(inbox, n):
    for i in range(n):
        with open(os.path.join(inbox, f"burst-{i:05}.txt"), "w") as f:
            f.write(f"burst file {i}\n")


def burst_live(binary, base, n, kills=0):
    vault = os.path.join(base, f"burst-live-k{kills}")
    inbox, na = os.path.join(vault, "Inbox"), os.path.join(vault, "Needs_Action")
    os.makedirs(inbox)
    log_path = os.path.join(base, f"burst-live-k{kills}.log")
    with open(log_path, "w") as log:
        w = start(binary, vault, log)
        wait_ready(log_path)
        t0 = time.perf_counter()
        if kills:
            # Write in slices, killing the watcher at a random point in each.
            rnd = random.Random(7)
            cuts = sorted(rnd.sample(range(1, n), kills))
            done = 0
            for k, cut in enumerate(cuts):
                for i in range(done, cut):
                    with open(os.path.join(inbox, f"burst-{i:05}.txt"), "w") as f:
                        f.write(f"burst file {i}\n")
                done = cut
                w.kill()
                w.wait()
                w = start(binary, vault, log)
            for i in range(done, n):
                with open(os.path.join(inbox, f"burst-{i:05}.txt"), "w") as f:
                    f.write(f"burst file {i}\n")
        else:
            write_files(inbox, n)
        t_written = time.perf_counter()
        ok = wait_for(lambda: notes(na) >= n, 300, pause=0.02)
        t_done = time.perf_counter()
        w.send_signal(signal.SIGTERM)
        w.wait()
    if not ok:
        sys.exit(f"only {notes(na)} of {n} tasks; see {log_path}")
    names = set()
    count = 0
    for f in os.listdir(na):
        if f.endswith(".md"):
            count += 1
            with open(os.path.join(na, f)) as fh:
                for line in fh:
                    if line.startswith("original_name:"):
                        names.add(line.split(":", 1)[1].strip())
                        break
    return t_written - t0, t_done - t0, count, len(names)


def burst_sweep(binary, base, n):
    vault = os.path.join(base, "burst-sweep")
    inbox, na = os.path.join(vault, "Inbox"), os.path.join(vault, "Needs_Action")
    os.makedirs(inbox)
    write_files(inbox, n)
    log_path = os.path.join(base, "burst-sweep.log")
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        w = start(binary, vault, log)
        ok = wait_for(lambda: notes(na) >= n, 300, pause=0.02)
        t_done = time.perf_counter()
        w.send_signal(signal.SIGTERM)
        w.wait()
    if not ok:
        sys.exit(f"sweep: only {notes(na)} of {n} tasks; see {log_path}")
    return t_done - t0


def stress(binary, base, n, kills, seed):
    vault = os.path.join(base, "stress")
    inbox, na = os.path.join(vault, "Inbox"), os.path.join(vault, "Needs_Action")
    os.makedirs(inbox)
    log_path = os.path.join(base, "stress.log")
    rnd = random.Random(seed)
    import threading

    def writer():
        for i in range(n):
            with open(os.path.join(inbox, f"s{i:05}.txt"), "w") as f:
                f.write(f"stress file {i}\n")
            if i % 50 == 0:
                time.sleep(0.001)

    t = threading.Thread(target=writer)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        w = start(binary, vault, log)
        t.start()
        for _ in range(kills):
            time.sleep(rnd.uniform(0.0005, 0.03))
            w.kill()
            w.wait()
            w = start(binary, vault, log)
        t.join()
        ok = wait_for(lambda: notes(na) >= n, 300, pause=0.05)
        w.send_signal(signal.SIGTERM)
        rc = w.wait()
    took = time.perf_counter() - t0
    entries = os.listdir(na)
    mds = [e for e in entries if e.endswith(".md")]
    originals = {}
    for m in mds:
        with open(os.path.join(na, m)) as fh:
            for line in fh:
                if line.startswith("original_name:"):
                    originals.setdefault(line.split(":", 1)[1].strip(), []).append(m)
                    break
    dups = sum(1 for v in originals.values() if len(v) > 1)
    staged = os.listdir(os.path.join(vault, ".ai-employee", "filesystem.staging"))
    with open(log_path) as fh:
        text = fh.read()
    rolled_forward = text.count("staged before the last stop")
    rolled_back = text.count("unfinished staged files")
    good = ok and rc == 0 and len(mds) == n and len(entries) == 2 * n and len(originals) == n \
        and dups == 0 and not staged
    print(f"stress: {n} files, {kills} kill -9s (seed {seed}) in {took:.1f} s: {len(mds)} notes, "
          f"{len(entries) - len(mds)} copies, {len(originals)} distinct names, {dups} duplicated, "
          f"{len(staged)} left in staging; recoveries: {rolled_forward} tasks published from "
          f"staging, {rolled_back} starts discarded unfinished staging "
          f"[{'OK' if good else 'MISMATCH'}]")
    if not good:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "ai-employee"))
    ap.add_argument("--drops", type=int, default=1000)
    ap.add_argument("--burst", type=int, default=10000)
    ap.add_argument("--dir", default=None, help="where the temp vaults go (default: system temp)")
    ap.add_argument("--only", choices=("latency", "burst", "stress"), default=None)
    ap.add_argument("--kills", type=int, default=300, help="kill -9s in --only stress")
    ap.add_argument("--seed", type=int, default=None, help="seed for --only stress")
    ap.add_argument("watcher_args", nargs="*", help="extra arguments for the watcher (after --)")
    a = ap.parse_args()
    EXTRA_ARGS.extend(a.watcher_args)
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"{a.bin} not found: run `cargo build --release` first")

    base = tempfile.mkdtemp(prefix="aie-fsbench-", dir=a.dir)
    print(f"# ai-employee watch filesystem benchmark ({datetime.now().isoformat(timespec='seconds')})")
    print(f"binary: {a.bin}")
    print(f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; vaults under {base}")
    print(f"watcher: {a.bin} watch filesystem --vault V {' '.join(EXTRA_ARGS)}".rstrip())
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print()
    if a.only == "stress":
        seed = a.seed if a.seed is not None else random.randrange(1 << 30)
        stress(a.bin, base, a.burst, a.kills, seed)
        return
    if a.only != "burst":
        for mode in ("rename", "write"):
            vis, rec = latency(a.bin, base, a.drops, mode)
            print(summary(f"drop->note visible ({mode})", vis))
            if rec:
                print(summary(f"drop->received ({mode})", rec))
        print()
    if a.only == "latency":
        return
    wrote, done, count, distinct = burst_live(a.bin, base, a.burst)
    print(f"burst, watcher running: {a.burst} files written in {wrote:.2f} s; all {count} notes "
          f"visible after {done:.2f} s -> {a.burst / done:,.0f} files/s "
          f"({distinct} distinct original names)")
    took = burst_sweep(a.bin, base, a.burst)
    print(f"burst, present at start (sweep): {a.burst} files -> all notes after {took:.2f} s "
          f"-> {a.burst / took:,.0f} files/s")
    wrote, done, count, distinct = burst_live(a.bin, base, a.burst, kills=3)
    status = "OK" if count == a.burst and distinct == a.burst else "MISMATCH"
    print(f"burst with 3 kill -9 + restarts: {count} notes, {distinct} distinct original names "
          f"[{status}]; all visible after {done:.2f} s -> {a.burst / done:,.0f} files/s")
    if status != "OK":
        sys.exit(1)


if __name__ == "__main__":
    main()
