#!/usr/bin/env python3
"""Approval handler benchmark: approved file -> the SMTP server accepted the message.

    bench/approvals.py [--n 200] [--burst 200] [--bin PATH] [--build] [--out FILE]

Runs the release binary's `watch approvals` on a temp vault against the aiosmtpd
fixture (tests/fixtures/smtp/server.py) on a loopback port. Needs a python with
aiosmtpd for the server (Debian: apt-get install python3-aiosmtpd; this script looks
for /usr/bin/python3 first).

Phases:
  latency  --n approvals, one at a time (the next after the previous reached Done/):
           written in Pending_Approval/, then renamed into Approved/ (t0, as a person
           approves). Latency = the server's receive time (stamped in its DATA
           handler, before it answers 250) - t0, same clock. p50 / p90 / p99 / max.
  burst    --burst approvals renamed into Approved/ at once; time until the server has
           them all; approvals per second.

Both phases go through the whole path: OS event, read, validate, fsynced ledger
intent, SMTP session (connect, EHLO, MAIL, RCPT, DATA), fsynced decision, atomic move
to Done/, audit line. The binary is copied to a temp dir first, so a rebuild during
the run cannot change what is measured. Results (with the command) are written as
Markdown to --out (default bench/approvals.results.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "smtp" / "server.py"


def smtp_python() -> str:
    for py in ("/usr/bin/python3", sys.executable, "python3"):
        try:
            r = subprocess.run([py, "-c", "import aiosmtpd"], capture_output=True)
        except OSError:
            continue
        if r.returncode == 0:
            return py
    sys.exit("no python with aiosmtpd: apt-get install python3-aiosmtpd (or pip install aiosmtpd)")


def wait_for(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.0005)
    sys.exit(f"timed out waiting for {what}")


def pct(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, int(-(-p * len(sorted_ms) // 100)) - 1))
    return sorted_ms[k]


def approval(token: str) -> str:
    return (
        "---\ntype: approval_request\naction: send_email\nto: client@example.com\n"
        f"subject: \"Bench {token}\"\ncreated: 2026-01-07T10:30:00Z\nstatus: pending\n---\n"
        f"Hello, this is message {token}.\n"
    )


class Server:
    def __init__(self, tmp: Path):
        self.out = tmp / "smtp-out"
        ready = tmp / "smtp-ready"
        self.proc = subprocess.Popen(
            [smtp_python(), str(FIXTURE), "--port", "0", "--out", str(self.out), "--ready", str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "smtp.err", "w"),
        )
        wait_for(ready.exists, 15, "the SMTP server")
        self.port = int(ready.read_text().strip())
        self.seen: dict[str, int] = {}
        self.listed: set[str] = set()

    def poll(self) -> dict[str, int]:
        """token -> received_ns for every message so far."""
        try:
            names = os.listdir(self.out)
        except FileNotFoundError:
            return self.seen
        for n in names:
            if n in self.listed or not n.endswith(".json"):
                continue
            try:
                rec = json.loads((self.out / n).read_text())
            except (OSError, ValueError):
                continue
            self.listed.add(n)
            for line in rec["data"].split("\r\n"):
                if line.startswith("Subject: Bench "):
                    self.seen[line.split()[-1]] = rec["received_ns"]
        return self.seen

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "ai-employee"))
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--out", default=str(ROOT / "bench" / "approvals.results.md"))
    args = ap.parse_args()
    if args.build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory(prefix="aie-bench-approvals-") as t:
        tmp = Path(t)
        binary = tmp / "ai-employee"
        shutil.copy2(args.bin, binary)
        vault = tmp / "vault"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_EMPLOYEE_")}
        subprocess.run([str(binary), "init", "--vault", str(vault)], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        server = Server(tmp)
        smtp = vault / "credentials" / "smtp.toml"
        smtp.write_text(
            f'host = "127.0.0.1"\nport = {server.port}\ntls = "none"\n'
            'from = "AI Employee <ai@example.com>"\n'
        )
        smtp.chmod(0o600)
        handler = subprocess.Popen(
            [str(binary), "watch", "approvals", "--vault", str(vault)],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "handler.err", "w"),
        )
        try:
            wait_for(lambda: "watching " in (tmp / "handler.err").read_text(), 10, "the handler")
            pending, approved, done = vault / "Pending_Approval", vault / "Approved", vault / "Done"

            # Latency, one at a time.
            lat_ms = []
            for i in range(args.n):
                token = f"L{i:05d}"
                name = f"lat-{i:05d}.md"
                (pending / name).write_text(approval(token))
                t0 = time.time_ns()
                os.rename(pending / name, approved / name)
                received = wait_for(lambda: server.poll().get(token), 30, f"message {token}")
                lat_ms.append((received - t0) / 1e6)
                wait_for(lambda: (done / name).exists(), 30, f"{name} in Done/")
            lat_ms.sort()

            # Burst.
            names = []
            for i in range(args.burst):
                name = f"burst-{i:05d}.md"
                (pending / name).write_text(approval(f"B{i:05d}"))
                names.append(name)
            t0 = time.time_ns()
            for name in names:
                os.rename(pending / name, approved / name)
            tokens = [f"B{i:05d}" for i in range(args.burst)]
            wait_for(lambda: all(t in server.poll() for t in tokens), 120, "the burst")
            last = max(server.poll()[t] for t in tokens)
            burst_s = (last - t0) / 1e9
            wait_for(lambda: not os.listdir(approved), 60, "Approved/ to drain")
            dupes = len(server.listed) - len(set(server.seen))
        finally:
            handler.terminate()
            handler.wait(5)
            server.stop()

    cpu = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    cmd = "bench/approvals.py " + " ".join(sys.argv[1:])
    lines = [
        "# Approval handler benchmark",
        "",
        f"Command: `{cmd.strip()}` (release binary; aiosmtpd fixture on loopback, no TLS, no AUTH).",
        f"Machine: {model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"vault on {tmp.anchor}tmp; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Approved file (renamed into `Approved/`) → SMTP server accepted the message "
        f"(its DATA handler's clock), {args.n} approvals one at a time:",
        "",
        "| p50 | p90 | p99 | max | mean |",
        "|---|---|---|---|---|",
        f"| {pct(lat_ms, 50):.2f} ms | {pct(lat_ms, 90):.2f} ms | {pct(lat_ms, 99):.2f} ms | "
        f"{lat_ms[-1]:.2f} ms | {sum(lat_ms) / len(lat_ms):.2f} ms |",
        "",
        f"Burst: {args.burst} approvals renamed into `Approved/` at once, all accepted by the "
        f"server after {burst_s:.2f} s = **{args.burst / burst_s:.0f} approvals/s** "
        f"(one SMTP connection per message, executed one at a time; duplicates: {dupes}).",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
