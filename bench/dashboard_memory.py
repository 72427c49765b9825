#!/usr/bin/env python3
"""Peak memory of the supervisor when Dashboard.md is huge (python3 stdlib only).

    bench/dashboard_memory.py [--bin PATH | --rev REV] [--size-mb 100] [--reps 3]

For each size (a 4 KiB Dashboard as the baseline, then --size-mb), a fresh vault gets a
Dashboard.md of that size, made either of status rows (`rows`: about 100 bytes each, one
every 2 minutes going back, so about 4 years in 100 MB) or of a person's notes above a
small status table (`notes`: nothing to archive), and `ai-employee supervise` runs one
child (`sleep`) until the Online row is in the file, then stops (which writes the
Offline row too). Printed per
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


def make_notes(path: Path, size: int) -> int:
    """A Dashboard of about `size` bytes of notes, then the (empty) status table."""
    line = "a note a person wrote about the week ahead, nothing the supervisor owns\n"
    block = line * 10_000
    with open(path, "w", encoding="utf-8") as f:
        f.write("# AI Employee Dashboard\n\n")
        for _ in range(size // len(block)):
            f.write(block)
        f.write(HEADER[len("# AI Employee Dashboard\n\n"):])
    return 0


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


def online_in_tail(dash: Path) -> bool:
    with open(dash, "rb") as f:
        f.seek(max(0, dash.stat().st_size - 4096))
        return b"System Online" in f.read()


def run(binary: str, size: int, kind: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="aie-dash-mem-") as tmp:
        vault = Path(tmp) / "vault"
        (vault / "Logs").mkdir(parents=True)
        dash = vault / "Dashboard.md"
        rows = (make_dashboard if kind == "rows" else make_notes)(dash, size)
        table = Path(tmp) / "table.toml"
        table.write_text('[[process]]\nname = "s"\ncommand = "sleep"\nargs = ["1000"]\n')
        before = dash.stat().st_size
        t0 = time.monotonic()
        p = subprocess.Popen(
            [binary, "supervise", "--vault", str(vault), "--config", str(table)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"})
        online = None
        hwm = [0]

        def sample():
            try:
                with open(f"/proc/{p.pid}/status") as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
            except OSError:
                pass

        deadline = t0 + 300
        while time.monotonic() < deadline:
            sample()
            with open(dash, "rb") as f:
                head = f.read(4096)
            if b"System Online" in head or (kind == "notes" and online_in_tail(dash)):
                online = time.monotonic() - t0
                break
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGTERM)
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            sample()
            time.sleep(0.005)
        after = dash.stat().st_size
        archives = sorted((vault / "Logs").glob("dashboard-*.md"))
        return {
            "size_mb": before / 1e6,
            "rows": rows,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "hwm_mib": hwm[0] / 1024,
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
    ap.add_argument("--kinds", default="rows,notes", help="rows, notes or both")
    args = ap.parse_args()
    binary = args.bin or subprocess.check_output(
        [str(HERE / "build-rev.sh"), args.rev], text=True).strip()
    print(f"binary: {binary}")
    for kind, size in [("rows", 4096)] + [(k, int(args.size_mb * 1e6)) for k in args.kinds.split(",")]:
        for rep in range(args.reps):
            r = run(binary, size, kind)
            online = "never" if r["online_s"] is None else f"{r['online_s']:.2f} s"
            print(f"Dashboard {r['size_mb']:8.3f} MB of {kind} ({r['rows']} rows), rep {rep + 1}: "
                  f"VmHWM {r['hwm_mib']:6.1f} MiB (ru_maxrss {r['peak_rss_mib']:6.1f} MiB), "
                  f"Online row after {online}, "
                  f"exit {r['exit']}, Dashboard after {r['dashboard_after_mb']:.3f} MB, "
                  f"archives {r['archives']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
