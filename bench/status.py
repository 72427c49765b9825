#!/usr/bin/env python3
"""How fast `ai-employee status` answers with many children (python3 stdlib only).

    bench/status.py [--children 1000] [--runs 50] [--bin PATH | --build]

Starts a supervisor on a temp vault whose table has N `sleep` children, waits until
all N run, then times, --runs times each:
  socket   one status request over the control socket (connect, request, full reply)
  json     the whole command `ai-employee status --json` (process start included)
  table    the whole command `ai-employee status` (piped, so no colour)
and prints median / p95 / max in milliseconds. The goal: under 50 ms with 1000
children. The binary is copied to a temp dir first, so a rebuild during the run
cannot change what is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, round(p / 100 * len(v) + 0.5) - 1))
    return v[k]


def request(sock_path: Path) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock_path))
    s.sendall(b'{"cmd":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--bin", type=Path)
    ap.add_argument("--build", action="store_true")
    args = ap.parse_args()

    if args.build or not args.bin:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    src = args.bin or REPO / "target/release/ai-employee"
    tmp = Path(tempfile.mkdtemp(prefix="aie-status-bench-"))
    binary = tmp / "ai-employee"
    shutil.copy2(src, binary)
    vault = tmp / "vault"
    table = tmp / "table.toml"
    with open(table, "w") as f:
        f.write('[supervisor]\nhealth_interval = "1h"\n\n')
        for i in range(args.children):
            f.write(f'[[process]]\nname = "c{i}"\ncommand = "sleep"\nargs = ["100000"]\n\n')
    env = dict(os.environ, NO_COLOR="1")
    env.pop("AI_EMPLOYEE_VAULT", None)
    sup = subprocess.Popen(
        [str(binary), "supervise", "--vault", str(vault), "--config", str(table)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    sock = vault / ".ai-employee" / "control.sock"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = request(sock)
                running = sum(1 for c in r["status"]["children"] if c["state"] == "running")
                if running == args.children:
                    break
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                sys.exit(f"only some of {args.children} children came up")
            time.sleep(0.05)
        results = {}
        samples = []
        for _ in range(args.runs):
            t = time.perf_counter_ns()
            r = request(sock)
            samples.append((time.perf_counter_ns() - t) / 1e6)
            assert len(r["status"]["children"]) == args.children
        results["socket"] = samples
        for name, extra in (("json", ["--json"]), ("table", [])):
            samples = []
            for _ in range(args.runs):
                t = time.perf_counter_ns()
                p = subprocess.run([str(binary), "status", "--vault", str(vault), *extra],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                samples.append((time.perf_counter_ns() - t) / 1e6)
                if p.returncode != 0:
                    sys.exit(f"status exited {p.returncode}: {p.stderr.decode()}")
            results[name] = samples
        print(f"status with {args.children} running children, {args.runs} runs each (ms):")
        print(f"{'what':8} {'median':>8} {'p95':>8} {'max':>8}")
        for name, v in results.items():
            print(f"{name:8} {pct(v, 50):8.2f} {pct(v, 95):8.2f} {max(v):8.2f}")
        size = len(subprocess.run([str(binary), "status", "--json", "--vault", str(vault)],
                                  stdout=subprocess.PIPE, env=env).stdout)
        print(f"JSON report: {size} bytes")
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sup.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
