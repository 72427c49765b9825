#!/usr/bin/env python3
"""ai-employee's own micro-benchmarks (python3 stdlib only).

    bench/own.py [--quick] [--build] [--bin PATH] [--phases restart,startstop,idle,orphan]

Phases:
  floor      what the machine allows without a supervisor: posix_spawn of the
             child by the harness -> its start stamp (one at a time), and
             N=100 back-to-back spawns -> the last stamp
  restart    (a) crash-to-restart latency: kill -9 of a running child ->
             the new instance's own start stamp; backoff initial = 0s;
             --kills (200) kills over N=--restart-n (100) services, one at a
             time; median / p95 / p99 (nearest rank)
  startstop  (b) start N=100 children (posix_spawn of the supervisor -> the last
             child's start stamp) and graceful stop of N=100 (SIGTERM to the
             supervisor -> all children dead / supervisor exited); --reps times
  idle       (c) own RSS/PSS and CPU (supervisor + `ai-employee __guardian`,
             i.e. every descendant that is not a child program) over an idle
             window (60 s, 20 s with --quick) at N=4,100,500, one N at a time
  orphan     (d) kill -9 of the supervisor with 10 children; children alive
             after 2 s; --reps times

It reuses the bench-peers harness (bench.py: child.c, Instance, /proc
helpers, pid+starttime-checked signalling, subreaper) imported read-only from
../shared/bench-peers, and drives the supervisor through the same external
adapter as bench/run-peers.sh.  The binary is copied to a temp dir first, so a
rebuild during the run cannot change what is measured.  Raw numbers go to
bench/results/own-<UTC time>.json (gitignored).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.dont_write_bytecode = True  # the harness lives in a read-only dir

bench = None       # the bench-peers module, imported in main()
External = None


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ms(ns):
    return None if ns is None else round(ns / 1e6, 3)


def stats(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": v[0], "median": round(bench.median(v), 3), "mean": round(sum(v) / len(v), 3),
            "p95": bench.pctl(v, 95), "p99": bench.pctl(v, 99), "max": v[-1]}


class PidWatch:
    """Exact exit times of a set of pids via pidfds (readable once the
    process has exited, zombie or not), so stop/orphan timings do not depend
    on a polling interval."""

    def __init__(self, pids_starts):
        self.fds = {}
        self.gone = {}
        self.poll = select.poll()
        for pid, start in pids_starts.items():
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                self.gone[pid] = None  # already gone
                continue
            if bench.proc_start(pid) != start:  # pid reused before we opened it
                os.close(fd)
                self.gone[pid] = None
                continue
            self.fds[fd] = pid
            self.poll.register(fd, select.POLLIN)

    def wait(self, until_ns):
        """Record exits until all are gone or the deadline passes."""
        while self.fds:
            left = (until_ns - bench.mono()) / 1e6
            if left <= 0:
                break
            for fd, _ in self.poll.poll(min(left, 50)):
                t = bench.mono()
                self.gone[self.fds.pop(fd)] = t
                self.poll.unregister(fd)
                os.close(fd)
            bench.reap()
        return not self.fds

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = {}

    def alive_count(self, pids):
        return sum(1 for p in pids if p not in self.gone)

    def last_of(self, pids):
        """Time the last of pids exited (None if one is still alive)."""
        if any(p not in self.gone for p in pids):
            return None
        t = [self.gone[p] for p in pids if self.gone[p] is not None]
        return max(t) if t else None

    def first_of(self, pids):
        t = [self.gone[p] for p in pids if self.gone.get(p) is not None]
        return min(t) if t else None


def cpu_jiffies():
    """(total, idle) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]


def busy_pct(a, b):
    tot = b[0] - a[0]
    return None if tot <= 0 else round(100.0 * (1 - (b[1] - a[1]) / tot), 1)


def wait_quiet(max_s, threshold):
    """Wait (at most max_s) until the machine's CPUs are less than threshold %
    busy over a 3 s sample: other people's builds on a 2-core box swamp
    millisecond timings.  Returns the last sample."""
    deadline = time.monotonic() + max_s
    while True:
        a = cpu_jiffies()
        time.sleep(3)
        busy = busy_pct(a, cpu_jiffies())
        if busy is None or busy < threshold or time.monotonic() >= deadline:
            return busy
        log(f"  machine busy ({busy}% CPU over 3 s, load {os.getloadavg()[0]:.2f}); waiting")


# ---------------------------------------------------------------------------
# phases


def phase_restart(ad, base, args):
    n, kills = args.restart_n, args.kills
    log(f"restart: N={n}, {kills} kill -9, backoff initial 0s")
    inst = bench.new_instance(ad, base, "restart", ["forever"] * n, args.start_timeout)
    res = {"n": n, "kills": kills}
    try:
        if inst.error:
            res["error"] = inst.error
            return res
        bench.nap(args.settle)
        own0 = {p: (st, bench.cpu_ns(p)) for p, st in inst.own_now().items()}
        t_loop = bench.mono()
        lats, fails = [], 0
        for i in range(kills):
            name = inst.names[i % n]
            cur = inst.current_child(name)
            if cur is None:
                fails += 1
                continue
            pid, start = cur
            t0 = bench.mono()
            if not bench.safe_kill(pid, signal.SIGKILL, start):
                fails += 1
                continue
            new = inst.wait_new_start(name, pid, t0, args.restart_timeout)
            if new is None:
                fails += 1
                lats.append(None)
            else:
                lats.append(ms(new[1] - t0))
            bench.reap()
            bench.nap(bench.random.uniform(args.gap_min, args.gap_max))
            if (i + 1) % 50 == 0:
                log(f"  {i + 1}/{kills} kills, median so far {bench.median(lats)} ms")
        # on-CPU time of the supervisor's own processes (all threads) per restart:
        # robust against other load on the machine, unlike the latency
        loop_s = (bench.mono() - t_loop) / 1e9
        per = {}
        for p, (st, c0) in own0.items():
            if bench.alive(p, st):
                per[p] = round((bench.cpu_ns(p) - c0) / 1e3 / max(1, kills), 1)
        res["own_cpu_us_per_restart"] = per
        res["own_cpu_us_per_restart_total"] = round(sum(per.values()), 1)
        res["loop_s"] = round(loop_s, 2)
        log(f"  supervisor CPU per restart: {res['own_cpu_us_per_restart_total']} us "
            f"(per process {per})")
        res["restart_ms"] = lats
        res["failures"] = fails
        res["stats"] = stats(lats)
        res["supervisor_alive"] = inst.root_alive()
        return res
    finally:
        inst.cleanup()
        bench.sweep_descendants("restart")


def phase_floor(ad, base, args):
    """What the machine allows without any supervisor: the harness itself
    posix_spawn()s the child (glibc: clone3 CLONE_VM|CLONE_VFORK, like std's
    Command::spawn) and reads its start stamp.  (1) spawn -> stamp of one child,
    one at a time, with the restart phase's idle gap between them; (2) N=--life-n
    children spawned back to back -> the last stamp."""
    d = base / "floor"
    d.mkdir()
    env = {"PATH": "/usr/bin:/bin"}

    def spawn(name):
        return os.posix_spawn(bench.CHILD_EXE, [bench.CHILD_EXE, str(d / name), "forever"], env,
                              setpgroup=0)

    def stamp(name, deadline):
        while bench.mono() < deadline:
            try:
                f = (d / name).read_text().split()
                if len(f) >= 3:
                    return int(f[2])
            except OSError:
                pass
            time.sleep(0.0002)
        return None

    def kill_all(pids):
        for p in pids:
            st = bench.proc_start(p)
            if st is not None:
                bench.safe_kill(p, signal.SIGKILL, st)
        for p in pids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass

    one = []
    for i in range(args.floor_spawns):
        t0 = bench.mono()
        pid = spawn(f"one{i}")
        t = stamp(f"one{i}", t0 + 5_000_000_000)
        kill_all([pid])
        one.append(ms(t - t0) if t else None)
        # same idle gap as between the kills of the restart phase: on a VM an idle
        # vCPU takes a while to wake, and that is part of what a restart costs
        bench.nap(bench.random.uniform(args.gap_min, args.gap_max))
    batch = []
    for rep in range(args.reps):
        t0 = bench.mono()
        pids = [spawn(f"b{rep}-{i}") for i in range(args.life_n)]
        deadline = t0 + 10_000_000_000
        stamps = [stamp(f"b{rep}-{i}", deadline) for i in range(args.life_n)]
        kill_all(pids)
        batch.append(ms(max(stamps) - t0) if all(stamps) else None)
        bench.nap(0.5)
    res = {"spawn_to_stamp": stats(one), "spawn_to_stamp_ms": one,
           "start_n": args.life_n, "start_n_last_stamp_ms": batch,
           "start_n_median_ms": bench.median(batch)}
    log(f"floor: posix_spawn -> child's stamp median {res['spawn_to_stamp'].get('median')} ms "
        f"(p99 {res['spawn_to_stamp'].get('p99')}); {args.life_n} back-to-back spawns -> last "
        f"stamp {batch} ms")
    return res


def graceful_stop(ad, inst, bound_s):
    """SIGTERM to the supervisor; exact times (pidfd) of children gone, root
    exit and all supervisor processes gone."""
    kids = {p: s for p, (s, _) in inst.live_children().items()}
    own = inst.own_now()
    w = PidWatch({**kids, **own})
    t0 = bench.mono()
    ad.stop(inst.root, inst.rundir)
    w.wait(t0 + int(bound_s * 1e9))
    kl, ol = w.last_of(kids), w.last_of(own)
    r = {"children_before": len(kids), "own_before": len(own),
         "children_gone_ms": ms(kl - t0) if kl else None,
         "children_left": w.alive_count(kids),
         "root_exit_ms": ms(w.gone[inst.root] - t0) if w.gone.get(inst.root) else None,
         "all_own_exit_ms": ms(ol - t0) if ol else None}
    w.close()
    last_sig, first_sig, respawned = None, None, 0
    for name in inst.names:
        ev = inst.events(name)
        sig = [e[3] for e in ev if e[0] == "sig" and e[3] >= t0]
        if sig:
            last_sig = max(last_sig or 0, sig[0])
            first_sig = min(first_sig or sig[0], sig[0])
        respawned += sum(1 for e in ev if e[0] == "start" and e[2] >= t0)
    r["first_signal_ms"] = ms(first_sig - t0) if first_sig else None
    r["last_signal_ms"] = ms(last_sig - t0) if last_sig else None
    r["respawned_during_stop"] = respawned
    r["exit_status"] = None
    bench.reap()
    if inst.spawned in bench.EXITED:
        st = bench.EXITED[inst.spawned][0]
        r["exit_status"] = os.waitstatus_to_exitcode(st)
    return r


def phase_startstop(ad, base, args):
    n = args.life_n
    runs = []
    for rep in range(1, args.reps + 1):
        inst = bench.new_instance(ad, base, f"ss{rep}", ["forever"] * n, args.start_timeout)
        r = {"rep": rep, "n": n}
        try:
            if inst.error:
                r["error"] = inst.error
            else:
                r["start_first_ms"] = inst.start_first_ms
                r["start_all_ms"] = inst.start_all_ms
                # every child's first start stamp, from the supervisor's launch (ms)
                r["start_stamps_ms"] = sorted(ms(inst.starts(nm)[0][1] - inst.t_launch)
                                              for nm in inst.names)
                bench.nap(args.settle)
                r.update(graceful_stop(ad, inst, args.stop_bound))
        finally:
            inst.cleanup()
            bench.sweep_descendants("startstop")
        log(f"startstop rep {rep}: start all {r.get('start_all_ms')} ms (first "
            f"{r.get('start_first_ms')}), stop: last signal {r.get('last_signal_ms')} ms, "
            f"children gone {r.get('children_gone_ms')} ms, supervisor exit "
            f"{r.get('root_exit_ms')} ms, all own {r.get('all_own_exit_ms')} ms, "
            f"exit {r.get('exit_status')} {r.get('error', '')}")
        runs.append(r)
    summary = {k: stats([r.get(k) for r in runs]) for k in
               ("start_first_ms", "start_all_ms", "first_signal_ms", "last_signal_ms",
                "children_gone_ms", "root_exit_ms", "all_own_exit_ms")}
    return {"n": n, "runs": runs, "summary": summary}


def smaps_rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[2] == "kB":
                    out[p[0].rstrip(":")] = int(p[1])
    except OSError:
        pass
    return out


def status_fields(pid, keys=("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads",
                             "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = v.strip()
    except OSError:
        pass
    return out


def ctxt(pid):
    """Voluntary + involuntary context switches of all threads (wakeups)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def phase_idle(ad, base, args):
    out = []
    for n in args.idle_ns:
        log(f"idle: N={n}, settle {args.idle_settle} s, window {args.idle_seconds} s")
        inst = bench.new_instance(ad, base, f"idle-n{n}", ["forever"] * n,
                                  max(args.start_timeout, n * 0.5))
        r = {"n": n}
        try:
            if inst.error:
                r["error"] = inst.error
                out.append(r)
                continue
            r["start_all_ms"] = inst.start_all_ms
            bench.nap(args.idle_settle)
            _, tree = bench.scan()
            a = bench.sample_instance(inst, tree)
            cs0 = {p: ctxt(p) for p in a["procs"]}
            bench.nap(args.idle_seconds)
            _, tree = bench.scan()
            b = bench.sample_instance(inst, tree)
            window = (b["t"] - a["t"]) / 1e9
            cpu = ticks = wake = 0
            per = []
            for p, x in b["procs"].items():
                y = a["procs"].get(p)
                same = y is not None and y["start"] == x["start"]
                dcpu = x["cpu_ns"] - (y["cpu_ns"] if same else 0)
                cpu += dcpu
                ticks += x["ticks"] - (y["ticks"] if same else 0)
                dw = ctxt(p) - (cs0.get(p, 0) if same else 0)
                wake += dw
                sm = smaps_rollup(p)
                try:
                    cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                except OSError:
                    cmd = "?"
                per.append({"pid": p, "cmdline": cmd, "comm": x["comm"], "threads": x["threads"],
                            "rss_kb": x["rss_kb"], "pss_kb": x["pss_kb"],
                            "cpu_ms_per_60s": round(dcpu / 1e6 * 60 / window, 3),
                            "ctxt_switches_per_60s": round(dw * 60 / window, 1),
                            "status": status_fields(p),
                            "smaps_rollup": {k: sm.get(k) for k in
                                             ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean",
                                              "Private_Clean", "Private_Dirty", "Anonymous")}})
            restarts = sum(1 for nm in inst.names for e in inst.events(nm)
                           if e[0] == "start" and e[2] >= a["t"])
            r.update({
                "window_s": round(window, 3),
                "cpu_ms_per_60s": round(cpu / 1e6 * 60 / window, 3),
                "cpu_ticks_ms_per_60s": round(ticks * 1000 / bench.CLK_TCK * 60 / window, 1),
                "ctxt_switches_per_60s": round(wake * 60 / window, 1),
                "rss_kb": sum(x["rss_kb"] for x in b["procs"].values()),
                "pss_kb": sum(x["pss_kb"] for x in b["procs"].values()),
                "own_procs": len(b["procs"]),
                "own_threads": sum(x["threads"] for x in b["procs"].values()),
                "own_procs_gone_in_window": len([p for p in a["procs"] if p not in b["procs"]]),
                "children_alive": b["children"],
                "restarts_in_window": restarts,
                "per_process": per,
            })
            log(f"  N={n}: RSS {r['rss_kb'] / 1024:.2f} MiB (PSS {r['pss_kb'] / 1024:.2f}), "
                f"CPU {r['cpu_ms_per_60s']} ms/60 s (ticks {r['cpu_ticks_ms_per_60s']}), "
                f"{r['own_procs']} own procs / {r['own_threads']} threads, "
                f"{r['ctxt_switches_per_60s']} ctxt switches/60 s, children {r['children_alive']}")
            for x in per:
                log(f"    pid {x['pid']} {x['cmdline'][:60]!r}: RSS {x['rss_kb']} kB, PSS "
                    f"{x['pss_kb']} kB, {x['threads']} thr, CPU {x['cpu_ms_per_60s']} ms/60 s")
            r["stop"] = graceful_stop(ad, inst, args.stop_bound)
            out.append(r)
        finally:
            inst.cleanup()
            bench.sweep_descendants("idle")
    return out


def phase_orphan(ad, base, args):
    n = args.orphan_n
    runs = []
    for rep in range(1, args.reps + 1):
        inst = bench.new_instance(ad, base, f"orph{rep}", ["forever"] * n, args.start_timeout)
        r = {"rep": rep, "n": n}
        try:
            if inst.error:
                r["error"] = inst.error
                runs.append(r)
                continue
            bench.nap(args.settle)
            kids = {p: s for p, (s, _) in inst.live_children().items()}
            own = inst.own_now()
            helpers = {p: s for p, s in own.items() if p != inst.root}
            w = PidWatch({**kids, **helpers})
            r["children_before"] = len(kids)
            r["helpers_before"] = len(helpers)
            t0 = bench.mono()
            bench.safe_kill(inst.root, signal.SIGKILL, inst.root_start)
            end = t0 + 2_000_000_000
            w.wait(end)
            bench.nap(max(0.0, (end - bench.mono()) / 1e9))
            r["orig_children_alive_2s"] = sum(1 for p, s in kids.items() if bench.alive(p, s))
            r["children_alive_2s"] = len(inst.live_children())
            r["helpers_alive_2s"] = sum(1 for p, s in helpers.items() if bench.alive(p, s))
            kl, hl, kf = w.last_of(kids), w.last_of(helpers), w.first_of(kids)
            r["children_gone_ms"] = ms(kl - t0) if kl else None
            r["first_child_gone_ms"] = ms(kf - t0) if kf else None
            r["helpers_gone_ms"] = ms(hl - t0) if hl else None
            w.close()
        finally:
            inst.cleanup()
            bench.sweep_descendants("orphan")
        log(f"orphan rep {rep}: {r.get('orig_children_alive_2s')}/{r.get('children_before')} "
            f"children alive 2 s after kill -9 of the supervisor (all gone after "
            f"{r.get('children_gone_ms')} ms), helpers alive {r.get('helpers_alive_2s')}/"
            f"{r.get('helpers_before')} {r.get('error', '')}")
        runs.append(r)
    return {"n": n, "runs": runs}


# ---------------------------------------------------------------------------


def make_adapter(base: Path, exe: str, env=None):
    """Copy the binary and render_table.py to base/adapter and write the
    adapter spec (same as bench/run-peers.sh does)."""
    d = base / "adapter"
    d.mkdir()
    shutil.copy2(exe, d / "ai-employee")
    shutil.copy2(HERE / "render_table.py", d / "render_table.py")
    spec = json.loads((HERE / "ai-employee.json").read_text())
    for key in ("start", "version"):
        if spec[key][0].endswith("/ai-employee"):
            spec[key][0] = str(d / "ai-employee")
    if env:
        spec.setdefault("env", {}).update(env)
    (d / "ai-employee.json").write_text(json.dumps(spec, indent=2))
    return External(str(d / "ai-employee.json")), str(d / "ai-employee")


def print_summary(out):
    print()
    print("=" * 72)
    print(f"ai-employee own benchmarks — {out['binary']['version']} ({out['git']['commit'][:10]}"
          f"{' +dirty' if out['git']['dirty'] else ''}), {out['machine'].get('cores')} cores")
    f = out.get("floor")
    if f:
        print(f"(floor, no supervisor) posix_spawn -> child's stamp: median "
              f"{f['spawn_to_stamp'].get('median')} ms, p99 {f['spawn_to_stamp'].get('p99')} ms; "
              f"{f['start_n']} back-to-back spawns: median {f['start_n_median_ms']} ms "
              f"{f['start_n_last_stamp_ms']}")
    r = out.get("restart")
    if r and "stats" in r:
        s = r["stats"]
        print(f"(a) restart latency, N={r['n']}, {s['n']} kills ({r['failures']} failures): "
              f"median {s['median']} ms, p95 {s['p95']} ms, p99 {s['p99']} ms, "
              f"min {s['min']}, max {s['max']} ms; supervisor CPU "
              f"{r.get('own_cpu_us_per_restart_total')} us per restart")
    ss = out.get("startstop")
    if ss:
        sm = ss["summary"]
        print(f"(b) start N={ss['n']} (all started): median {sm['start_all_ms'].get('median')} ms "
              f"over {sm['start_all_ms'].get('n')} runs "
              f"{[x.get('start_all_ms') for x in ss['runs']]}")
        print(f"    stop N={ss['n']}: children gone median {sm['children_gone_ms'].get('median')} ms "
              f"{[x.get('children_gone_ms') for x in ss['runs']]}; supervisor exit median "
              f"{sm['root_exit_ms'].get('median')} ms {[x.get('root_exit_ms') for x in ss['runs']]}; "
              f"last child signalled median {sm['last_signal_ms'].get('median')} ms")
    for r in out.get("idle", []):
        if "error" in r:
            print(f"(c) idle N={r['n']}: ERROR {r['error']}")
            continue
        print(f"(c) idle N={r['n']}: RSS {r['rss_kb'] / 1024:.2f} MiB, PSS {r['pss_kb'] / 1024:.2f} MiB "
              f"({r['own_procs']} procs, {r['own_threads']} threads), CPU {r['cpu_ms_per_60s']} ms/min "
              f"over {r['window_s']} s, {r['ctxt_switches_per_60s']} wakeups/min")
    for ph, m in out.get("machine_busy", {}).items():
        print(f"    machine during {ph}: {m.get('busy_pct_during')}% CPU busy (incl. this benchmark), "
              f"load {m.get('load1_start'):.2f} -> {m.get('load1_end'):.2f}")
    o = out.get("orphan")
    if o:
        print(f"(d) kill -9 of the supervisor, N={o['n']}: children alive after 2 s "
              f"{[x.get('orig_children_alive_2s') for x in o['runs']]}, all gone after "
              f"{[x.get('children_gone_ms') for x in o['runs']]} ms")
    print("=" * 72)


def main():
    global bench, External
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "ai-employee"))
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--rev", default=None,
                    help="measure this committed revision, built in a clean tree by "
                         "bench/build-rev.sh (instead of the working copy's --bin)")
    ap.add_argument("--bench-peers", default=str(REPO.parent / "shared" / "bench-peers"))
    ap.add_argument("--phases", default="floor,restart,startstop,idle,orphan")
    ap.add_argument("--floor-spawns", type=int, default=100,
                    help="floor phase: single spawns to time (no supervisor involved)")
    ap.add_argument("--quick", action="store_true",
                    help="20 s idle window, 2 reps, 100 kills")
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--restart-n", type=int, default=100)
    ap.add_argument("--gap-min", type=float, default=0.05)
    ap.add_argument("--gap-max", type=float, default=0.15)
    ap.add_argument("--life-n", type=int, default=100)
    ap.add_argument("--orphan-n", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--idle-ns", default="4,100,500")
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--idle-settle", type=float, default=5)
    ap.add_argument("--settle", type=float, default=1.5)
    ap.add_argument("--start-timeout", type=float, default=60)
    ap.add_argument("--restart-timeout", type=float, default=10)
    ap.add_argument("--stop-bound", type=float, default=30)
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for the supervisor (e.g. AI_EMPLOYEE_LOG=error)")
    ap.add_argument("--quiet-below", type=float, default=25,
                    help="before each phase wait until the CPUs are less than this %% busy")
    ap.add_argument("--quiet-max-wait", type=float, default=300,
                    help="... but at most this many seconds (0 = do not wait)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, vault logs)")
    args = ap.parse_args()
    if args.quick:
        args.idle_seconds, args.reps = 20, 2
        if args.kills == 200:
            args.kills = 100
    args.idle_ns = [int(x) for x in args.idle_ns.split(",") if x]
    phases = [p for p in args.phases.split(",") if p]

    rev_sha = None
    if args.rev:
        rev_sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify",
                                  args.rev + "^{commit}"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        args.bin = subprocess.run([str(HERE / "build-rev.sh"), rev_sha], stdout=subprocess.PIPE,
                                  text=True, check=True).stdout.strip()
    elif args.build:
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no executable at {args.bin} (use --build)")
    bp = Path(args.bench_peers).resolve()
    sys.path.insert(0, str(bp))
    import bench as _bench  # noqa: E402
    from adapters.external import External as _External  # noqa: E402
    bench, External = _bench, _External

    bench.become_subreaper()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = Path(tempfile.mkdtemp(prefix="aie-own."))
    bench.CHILD_EXE = bench.compile_child(base)
    ad, exe = make_adapter(base, args.bin, dict(e.split("=", 1) for e in args.env))
    commit = rev_sha or subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()
    dirty = "" if rev_sha else subprocess.run(
        ["git", "-C", str(REPO), "status", "--short", "--", "src", "Cargo.toml", "Cargo.lock"],
        capture_output=True, text=True).stdout.strip()
    sha = subprocess.run(["sha256sum", exe], capture_output=True, text=True).stdout.split()[0]
    started = time.time()
    out = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
           "command": " ".join([sys.argv[0]] + sys.argv[1:]),
           "machine": bench.machine_info(),
           "git": {"commit": commit, "dirty": dirty.splitlines(),
                   "clean_build_of_rev": args.rev},
           "binary": {"version": ad.version(), "sha256": sha, "source": args.bin},
           "args": {k: v for k, v in vars(args).items() if k != "out"},
           "loadavg_start": Path("/proc/loadavg").read_text().strip()}
    log(f"{out['binary']['version']} ({commit[:10]}{' +dirty' if dirty else ''}), child "
        f"{bench.CHILD_EXE}, temp {base}")
    ts = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    out_path = Path(args.out) if args.out else HERE / "results" / f"own-{ts}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out["elapsed_s"] = round(time.time() - started, 1)
        out["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
        out_path.write_text(json.dumps(out, indent=1))

    fns = {"floor": phase_floor, "restart": phase_restart, "startstop": phase_startstop,
           "idle": phase_idle, "orphan": phase_orphan}
    out["machine_busy"] = {}
    try:
        for ph in [p for p in fns if p in phases]:
            before = wait_quiet(args.quiet_max_wait, args.quiet_below) \
                if args.quiet_max_wait > 0 else None
            a, la = cpu_jiffies(), os.getloadavg()[0]
            out[ph] = fns[ph](ad, base, args)
            out["machine_busy"][ph] = {"busy_pct_before": before,
                                       "busy_pct_during": busy_pct(a, cpu_jiffies()),
                                       "load1_start": la, "load1_end": os.getloadavg()[0]}
            log(f"  {ph}: machine {out['machine_busy'][ph]}")
            save()
    finally:
        bench.sweep_descendants("final")
        save()
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print_summary(out)
    print(f"raw results: {out_path}")


if __name__ == "__main__":
    main()
