#!/usr/bin/env python3
"""Start-up time and memory of the watchers with a ledger of N recorded tasks (default
1,000,000). Python 3 standard library only; Linux (/proc).

    python3 bench/ledger.py --binary "$(bench/build-rev.sh HEAD)" [--entries 1000000]

For each ledger:

- task sink (`whatsapp.seen`, the WhatsApp watcher; the mail watcher uses the same code):
  N lines `{"key":"wamid.<i>","task":"WHATSAPP_..._<i>.md"}`, as N deliveries leave them;
- filesystem watcher (`filesystem.ledger`): N `task` lines for names no longer in Inbox/
  (Inbox/ holds 10 files that are all done), as N dropped-and-cleaned-up files leave them.

the script writes the journal as the watcher appends it, then starts the real watcher
three times (SIGTERM in between) and prints, per start: the time from exec to the
watcher's ready line (`listening on` / `watching`), the resident set 1 s later (VmRSS)
and the peak (VmHWM), and the state files' sizes. The first start is the one that finds
the whole journal uncompacted (what an older version left, or a one-time migration); the
later ones are the steady state after N tasks.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def write_task_sink_ledger(vault, n):
    state = os.path.join(vault, ".ai-employee")
    os.makedirs(state, mode=0o700, exist_ok=True)
    creds = os.path.join(vault, "credentials")
    os.makedirs(creds, exist_ok=True)
    path = os.path.join(creds, "whatsapp.toml")
    with open(path, "w") as f:
        f.write('app_secret = "bench-secret"\nverify_token = "bench-token"\n')
    os.chmod(path, 0o600)
    with open(os.path.join(state, "whatsapp.seen"), "w") as f:
        for i in range(n):
            f.write('{"key":"wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTk%08d",'
                    '"task":"WHATSAPP_20261118T110640Z_ana_lima_%d.md"}\n' % (i, i))


def write_filesystem_ledger(vault, n):
    state = os.path.join(vault, ".ai-employee")
    os.makedirs(state, mode=0o700, exist_ok=True)
    inbox = os.path.join(vault, "Inbox")
    os.makedirs(inbox, exist_ok=True)
    with open(os.path.join(state, "filesystem.ledger"), "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "kind": "task", "name": "scan %07d.pdf" % i,
                "sha256": "%064x" % (i * 2654435761),
                "size": 48213 + i, "mtime_ns": 1795000000000000000 + i,
                "ctime_ns": 1795000000000000000 + i, "dev": 2049, "ino": 1000000 + i,
                "task": "FILE_20261121T235901Z_scan %07d.pdf" % i,
            }, separators=(",", ":")) + "\n")
    # A few files still in Inbox: done already, recorded in the ledger by the first start.
    for i in range(10):
        with open(os.path.join(inbox, "kept %d.txt" % i), "w") as f:
            f.write("kept %d\n" % i)


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_once(binary, vault, watcher, ready):
    log_path = os.path.join(os.path.dirname(vault), "%s.err" % watcher)
    args = [binary, "watch", watcher, "--vault", vault]
    if watcher == "whatsapp":
        args += ["--listen", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("AI_EMPLOYEE_HEARTBEAT", "AI_EMPLOYEE_VAULT", "RUST_LOG")}
    with open(log_path, "w") as log:
        t0 = time.monotonic()
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=log, env=env)
        started = None
        deadline = t0 + 600
        while time.monotonic() < deadline:
            with open(log_path) as f:
                if ready in f.read():
                    started = time.monotonic() - t0
                    break
            if p.poll() is not None:
                break
            time.sleep(0.002)
        if started is None:
            p.kill()
            p.wait()
            with open(log_path) as f:
                sys.exit("%s did not start:\n%s" % (watcher, f.read()))
        time.sleep(1.0)
        rss = status_kib(p.pid, "VmRSS")
        hwm = status_kib(p.pid, "VmHWM")
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=60)
    if code != 0:
        with open(log_path) as f:
            sys.exit("%s exited %s:\n%s" % (watcher, code, f.read()))
    return started, rss, hwm


def state_sizes(vault):
    state = os.path.join(vault, ".ai-employee")
    out = []
    for name in sorted(os.listdir(state)):
        p = os.path.join(state, name)
        if os.path.isfile(p) and (".seen" in name or ".ledger" in name):
            out.append("%s %.1f MB" % (name, os.path.getsize(p) / 1e6))
    return ", ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the ai-employee release binary")
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--only", choices=["sink", "filesystem"])
    a = ap.parse_args()
    cases = [
        ("sink", "whatsapp", "listening on", write_task_sink_ledger),
        ("filesystem", "filesystem", "watching ", write_filesystem_ledger),
    ]
    print("binary: %s" % a.binary)
    print("entries: %d" % a.entries)
    for case, watcher, ready, write in cases:
        if a.only and a.only != case:
            continue
        with tempfile.TemporaryDirectory(prefix="aie-ledger-bench-") as tmp:
            vault = os.path.join(tmp, "vault")
            t = time.monotonic()
            write(vault, a.entries)
            print("\n%s watcher: ledger written in %.1f s (%s)"
                  % (watcher, time.monotonic() - t, state_sizes(vault)))
            for i in range(a.starts):
                started, rss, hwm = start_once(a.binary, vault, watcher, ready)
                print("  start %d: ready after %7.1f ms, RSS %6.1f MiB, peak %6.1f MiB  (%s)"
                      % (i + 1, started * 1000, rss / 1024, hwm / 1024, state_sizes(vault)))


if __name__ == "__main__":
    main()
