#!/usr/bin/env python3
"""Approval handler start-up with a long ledger: start time and memory.

    bench/approvals_ledger.py [--n 1000000] [--bin PATH] [--before PATH]
                              [--scenario history|recent|both] [--out FILE]

Writes a ledger (`.ai-employee/approvals.ledger`) holding --n recorded approvals, each as
the handler records an email: `intent`, `final` (decision with message_id and smtp_reply,
content key), `done` — about 1 KB per approval. Two scenarios:

  history  the approvals spread evenly over the last 365 days (a busy year: 2,740 a day);
           the handler must remember the last 7 days (about 19,200 of them)
  recent   all of them within the last 6.9 days (1.7 approvals a second for a week):
           every one must be remembered (the worst case for the duplicate rule)

For each binary (--before: a build without compaction, e.g. `bench/build-rev.sh 0dbed6c`;
--bin: the one under test) and scenario, on a fresh copy of the vault:

  start 1   `watch approvals --dry-run` on the ledger as written (for the binary under
            test: the first start after an upgrade, which compacts it)
  start 2   again, on the ledger as start 1 left it (the steady state)
  start 3   (binary under test only) the steady state at its largest: the compacted
            ledger plus approvals carried out in the last day, as many as fit below the
            compaction threshold (2 x live + 10,000 records), so none is compacted away at
            start and all are in memory

Start time = from spawn until the log line "watching " (ledger replayed, compacted,
ready). Memory = VmRSS and VmHWM (peak) of the process 0.5 s later. The ledger's size and
records before and after each start are printed too. Results go to stdout and, as
Markdown, to --out (default bench/approvals_ledger.results.md).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLACK = 10_000


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def hexid(prefix: str, i: int) -> str:
    return hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()


def write_ledger(path: Path, n: int, span: timedelta, now: datetime, prefix: str = "") -> None:
    """n approvals, oldest first, evenly over `span` before `now`."""
    with open(path, "w", buffering=1 << 20) as f:
        for i in range(n):
            t = stamp(now - span + span * (i / n))
            name = f"APPROVAL{prefix}_{i:07d}_invoice_client.md"
            sha = hexid(prefix + "s", i)
            tag = sha[:20]
            mid = f"<{tag}@example.com>"
            f.write(
                f'{{"record":"intent","file":"{name}","sha256":"{sha}","attempt":1,'
                f'"action":"send_email","at":"{t}","message_id":"{mid}"}}\n'
                f'{{"record":"final","file":"{name}","sha256":"{sha}","at":"{t}",'
                f'"decision":{{"folder":"Done","dest":"Done/{name}","result":"sent","at":"{t}",'
                f'"fields":[["smtp_reply","127.0.0.1:25: 250 2.0.0 Ok: queued as {tag[:10].upper()}"],'
                f'["message_id","{mid}"]],"final_sha256":"{hexid(prefix + "f", i)}","prefix":false}},'
                f'"content":"{hexid(prefix + "c", i)}"}}\n'
                f'{{"record":"done","file":"{name}","sha256":"{sha}","dest":"Done/{name}","at":"{t}"}}\n'
            )


def pad_below_threshold(path: Path, now: datetime) -> int:
    """Append approvals carried out in the last day (3 records each) until one more
    would make the file reach the compaction threshold (2 x live + SLACK records) at the
    next start: the largest ledger, and the most identities in memory, of the steady
    state. `path` must be freshly compacted (one record per live identity). Returns the
    approvals added."""
    with open(path, "rb") as f:
        live = sum(1 for _ in f)
    # live + 3k records < 2 (live + k) + SLACK  <=>  k < live + SLACK; a margin for
    # identities that age out meanwhile.
    k = max(0, live + SLACK - 100)
    tmp = path.with_suffix(".pad")
    write_ledger(tmp, k, timedelta(days=1), now, prefix="PAD")
    with open(path, "ab") as out, open(tmp, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
    tmp.unlink()
    return k


def ledger_stats(path: Path) -> tuple[int, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return size, lines


def proc_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def start_once(binary: Path, vault: Path, err: Path) -> dict:
    ledger = vault / ".ai-employee" / "approvals.ledger"
    size0, lines0 = ledger_stats(ledger)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_EMPLOYEE")}
    env["NO_COLOR"] = "1"
    with open(err, "wb") as e:
        t0 = time.monotonic()
        p = subprocess.Popen(
            [str(binary), "watch", "approvals", "--vault", str(vault), "--dry-run"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=e, env=env,
        )
        started = None
        while time.monotonic() - t0 < 600:
            if b"watching " in err.read_bytes():
                started = time.monotonic() - t0
                break
            if p.poll() is not None:
                sys.exit(f"{binary} exited {p.returncode}: {err.read_text()}")
            time.sleep(0.001)
        if started is None:
            p.kill()
            sys.exit(f"{binary} did not start within 600 s")
        time.sleep(0.5)
        rss, hwm = proc_kib(p.pid, "VmRSS"), proc_kib(p.pid, "VmHWM")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    size1, lines1 = ledger_stats(ledger)
    return {
        "start_s": started, "rss_mib": rss / 1024, "hwm_mib": hwm / 1024,
        "before": (size0, lines0), "after": (size1, lines1),
    }


def fmt_size(b: int) -> str:
    return f"{b / 1e6:.1f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "ai-employee")
    ap.add_argument("--before", type=Path, default=None)
    ap.add_argument("--scenario", choices=["history", "recent", "both"], default="both")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "approvals_ledger.results.md")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aie-ledger-bench-"))
    bins = []
    for label, b in (("before", args.before), ("after", args.bin)):
        if b is None:
            continue
        copy = work / f"ai-employee-{label}"
        shutil.copy2(b, copy)
        bins.append((label, copy))
    scenarios = ["history", "recent"] if args.scenario == "both" else [args.scenario]
    spans = {"history": timedelta(days=365), "recent": timedelta(days=6.9)}
    now = datetime.now(timezone.utc)
    rows = []
    try:
        for sc in scenarios:
            master = work / f"ledger-{sc}"
            t = time.monotonic()
            write_ledger(master, args.n, spans[sc], now)
            size, lines = ledger_stats(master)
            print(f"{sc}: wrote {args.n} approvals, {lines} records, {fmt_size(size)} "
                  f"in {time.monotonic() - t:.1f} s", flush=True)
            for label, binary in bins:
                vault = work / f"vault-{sc}-{label}"
                subprocess.run([str(binary), "init", "--vault", str(vault)],
                               check=True, capture_output=True)
                shutil.copy(master, vault / ".ai-employee" / "approvals.ledger")
                runs = ["start 1", "start 2"] + (["start 3"] if label == "after" else [])
                for i, run in enumerate(runs):
                    note = ""
                    if run == "start 3":
                        added = pad_below_threshold(
                            vault / ".ai-employee" / "approvals.ledger", now)
                        note = f" (+{added} approvals)"
                    r = start_once(binary, vault, work / f"{sc}-{label}-{i}.err")
                    row = (sc, label, run + note, r)
                    rows.append(row)
                    print(f"{sc:8} {label:6} {run + note:30} start {r['start_s'] * 1000:8.1f} ms"
                          f"  RSS {r['rss_mib']:7.1f} MiB  peak {r['hwm_mib']:7.1f} MiB"
                          f"  ledger {r['before'][1]} → {r['after'][1]} records"
                          f" ({fmt_size(r['before'][0])} → {fmt_size(r['after'][0])})",
                          flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cmd = " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    out = [
        f"Command: `bench/{cmd}`",
        f"Machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; {stamp(now)}.",
        "",
        "| scenario | binary | run | start | RSS | peak RSS | ledger records (before → after) | ledger size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sc, label, run, r in rows:
        out.append(
            f"| {sc} | {label} | {run} | {r['start_s'] * 1000:.0f} ms | {r['rss_mib']:.1f} MiB"
            f" | {r['hwm_mib']:.1f} MiB | {r['before'][1]:,} → {r['after'][1]:,}"
            f" | {fmt_size(r['before'][0])} → {fmt_size(r['after'][0])} |"
        )
    args.out.write_text("\n".join(out) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
