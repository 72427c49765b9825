#!/usr/bin/env python3
"""Peak memory of the supervisor when Dashboard.md is huge (python3 stdlib only).

    bench/dashboard_memory.py [--bin PATH | --rev REV] [--size-mb 100] [--reps 3]

For each size (a 4 KiB Dashboard as the baseline, then --size-mb), a fresh vault gets a
Dashboard.md of that size made of status rows (about 120 bytes each, one year of them
per ~260,000 rows), and `ai-employee supervise` runs one child (`sleep`) until the
Online row is in the file, then stops (which writes the Offline row too). Printed per
run: the supervisor's peak RSS (ru_maxrss of the supervisor, from wait4; its children
are a `sleep` and the guardian, both far smaller), the time from start to the Online
row, and the sizes of Dashboard.md and Logs/dashboard-*.md afterwards.

--rev builds that revision in a clean tree with bench/build-rev.sh (release profile).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = "# AI Employee Dashboard\n\n## System Status\n\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n"


def make_dashboard(path: Path, size: int) -> int:
    """A Dashboard of about `size` bytes: the template and rows newest first."""
    rows = 0
    t = 1767225600  # 2026-01-01, going back in time
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        written = len(HEADER)
        chunk = []
        while written < size:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
            line = (f"| {stamp} | System_Status | ⚠ Degraded | System Degraded: "
                    f"gmail restarting, row {rows} |\n")
            chunk.append(line)
            written += len(line.encode())
            rows += 1
            t -= 120
            if len(chunk) >= 4096:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
        f.write("\n## Notes\n\nhand-written text after the table\n")
    return rows


def run(binary: str, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="aie-dash-mem-") as tmp:
        vault = Path(tmp) / "vault"
        (vault / "Logs").mkdir(parents=True)
        dash = vault / "Dashboard.md"
        rows = make_dashboard(dash, size)
        table = Path(tmp) / "table.toml"
        table.write_text('[[process]]\nname = "s"\ncommand = "sleep"\nargs = ["1000"]\n')
        before = dash.stat().st_size
        t0 = time.monotonic()
        p = subprocess.Popen(
            [binary, "supervise", "--vault", str(vault), "--config", str(table)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"})
        online = None
        deadline = t0 + 300
        while time.monotonic() < deadline:
            with open(dash, "rb") as f:
                head = f.read(4096)
            if b"System Online" in head:
                online = time.monotonic() - t0
                break
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGTERM)
        _, status, usage = os.wait4(p.pid, 0)
        after = dash.stat().st_size
        archives = sorted((vault / "Logs").glob("dashboard-*.md"))
        return {
            "size_mb": before / 1e6,
            "rows": rows,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "online_s": online,
            "exit": os.waitstatus_to_exitcode(status),
            "dashboard_after_mb": after / 1e6,
            "archives": {a.name: round(a.stat().st_size / 1e6, 2) for a in archives},
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="the ai-employee binary (default: build --rev)")
    ap.add_argument("--rev", default="HEAD", help="revision to build (bench/build-rev.sh)")
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    binary = args.bin or subprocess.check_output(
        [str(HERE / "build-rev.sh"), args.rev], text=True).strip()
    print(f"binary: {binary}")
    for size in (4096, int(args.size_mb * 1e6)):
        for rep in range(args.reps):
            r = run(binary, size)
            online = "never" if r["online_s"] is None else f"{r['online_s']:.2f} s"
            print(f"Dashboard {r['size_mb']:8.3f} MB ({r['rows']} rows), rep {rep + 1}: "
                  f"peak RSS {r['peak_rss_mib']:7.1f} MiB, Online row after {online}, "
                  f"exit {r['exit']}, Dashboard after {r['dashboard_after_mb']:.3f} MB, "
                  f"archives {r['archives']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
