#!/usr/bin/env python3
"""Mail watcher latency: delivery complete -> task file visible in Needs_Action.

Starts a private Dovecot on loopback (the same shape of config as tests/it/gmail), starts
`ai-employee watch gmail` against it (IMAPS, IDLE), delivers N messages one at a time by
IMAP APPEND (each after the previous task appeared, plus --gap), and for each measures the time from the APPEND's OK to the task file's
rename into Needs_Action/ (seen with inotify). Prints p50/p95/p99/max and checks that
exactly N tasks were written.

    python3 bench/gmail.py                 # builds target/release/ai-employee
    python3 bench/gmail.py --bin PATH -n 200

Python 3 standard library only; needs /usr/sbin/dovecot (dovecot-imapd) and Linux.
"""

import argparse
import ctypes
import imaplib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "bench-pw"
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


class Inotify:
    """Arrival times of files renamed or created in one folder (a reader thread)."""

    def __init__(self, path):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0:
            sys.exit("inotify_init1 failed")
        if libc.inotify_add_watch(self.fd, path.encode(), IN_MOVED_TO | IN_CREATE) < 0:
            sys.exit(f"inotify_add_watch {path} failed")
        self.seen = {}
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if not r:
                continue
            now = time.perf_counter()
            buf = os.read(self.fd, 65536)
            i = 0
            while i < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16 : i + 16 + length].rstrip(b"\0").decode()
                i += 16 + length
                with self.lock:
                    self.seen.setdefault(name, now)

    def arrival(self, pattern):
        with self.lock:
            for name, t in self.seen.items():
                if pattern.search(name):
                    return t
        return None

    def names(self):
        with self.lock:
            return list(self.seen)


def make_cert(d):
    if not shutil.which("openssl"):
        return False
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        capture_output=True)
    return r.returncode == 0


def start_dovecot(d, imap_port, imaps_port, tls):
    for sub in ("run", "state", "mail"):
        os.makedirs(f"{d}/{sub}", exist_ok=True)
    root = os.geteuid() == 0
    if root:
        uid, gid = 65534, 65534
        os.chmod(os.path.dirname(d), 0o755)
        os.chmod(d, 0o755)
        os.chown(f"{d}/mail", uid, gid)
        users = ""
    else:
        uid, gid = os.getuid(), os.getgid()
        import pwd
        name = pwd.getpwuid(uid).pw_name
        users = f"default_internal_user = {name}\ndefault_login_user = {name}\n"
    with open(f"{d}/passwd", "w") as f:
        f.write(f"alice:{{PLAIN}}{PASSWORD}::::::\n")
    os.chmod(f"{d}/passwd", 0o644)
    ssl_conf = (f"ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n"
                if tls else "ssl = no\n")
    imaps = (f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n"
             f"    ssl = yes\n  }}\n" if tls else "")
    conf = f"""base_dir = {d}/run
state_dir = {d}/state
instance_name = aie-bench-{imap_port}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl_conf}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
{users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u allow_all_users=yes
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
{imaps}}}
service anvil {{
  chroot =
}}
"""
    with open(f"{d}/dovecot.conf", "w") as f:
        f.write(conf)
    out = open(f"{d}/master.out", "w")
    p = subprocess.Popen([DOVECOT, "-F", "-c", f"{d}/dovecot.conf"],
                         stdout=out, stderr=subprocess.STDOUT)

    def up():
        try:
            socket.create_connection(("127.0.0.1", imap_port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(up, 15, "dovecot")
    return p


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="ai-employee binary (default: cargo build --release)")
    ap.add_argument("-n", "--count", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.2,
                    help="seconds between a task and the next delivery, so each message "
                         "finds the watcher idling (0: back to back)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not os.path.exists(DOVECOT):
        sys.exit(f"{DOVECOT} not found: apt-get install dovecot-imapd")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=repo, check=True)
        binary = os.path.join(repo, "target", "release", "ai-employee")

    tmp = tempfile.mkdtemp(prefix="aie-bench-gmail-")
    d = f"{tmp}/dovecot"
    os.makedirs(d)
    tls = make_cert(d)
    imap_port, imaps_port = free_port(), free_port()
    dov = start_dovecot(d, imap_port, imaps_port, tls)
    watcher = None
    try:
        vault = f"{tmp}/vault"
        os.makedirs(f"{vault}/credentials")
        os.makedirs(f"{vault}/Needs_Action")
        creds = (f'host = "127.0.0.1"\nport = {imaps_port}\ntls = "tls"\n'
                 f'ca_file = "{d}/cert.pem"\n' if tls else
                 f'host = "127.0.0.1"\nport = {imap_port}\ntls = "none"\n')
        creds += f'username = "alice"\npassword = "{PASSWORD}"\n'
        with open(f"{vault}/credentials/gmail.toml", "w") as f:
            f.write(creds)
        os.chmod(f"{vault}/credentials/gmail.toml", 0o600)
        notify = Inotify(f"{vault}/Needs_Action")
        err_path = f"{tmp}/watcher.err"
        env = dict(os.environ, NO_COLOR="1")
        env.pop("AI_EMPLOYEE_LOG", None)
        watcher = subprocess.Popen(
            [binary, "watch", "gmail", "--vault", vault, "--keyword", "bench"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(err_path, "w"), env=env)
        wait_for(lambda: "watching INBOX" in open(err_path).read(), 20, "the watcher")

        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.login("alice", PASSWORD)
        lat = []
        early = 0
        for i in range(args.count):
            if args.gap > 0:
                time.sleep(args.gap)
            msg = (f"From: bench@example.com\r\nTo: alice@example.com\r\n"
                   f"Subject: bench {i:04d}\r\nMessage-ID: <bench{i}@example.com>\r\n\r\n"
                   f"bench message {i}\r\n").encode()
            typ, _ = imap.append("INBOX", None, None, msg)
            t0 = time.perf_counter()
            if typ != "OK":
                sys.exit(f"APPEND {i} failed")
            pat = re.compile(rf"^EMAIL_.*_bench_{i:04d}(-\d+)?\.md$")
            end = time.monotonic() + 10
            t1 = notify.arrival(pat)
            while t1 is None and time.monotonic() < end:
                time.sleep(0.0005)
                t1 = notify.arrival(pat)
            if t1 is None:
                sys.exit(f"message {i}: no task after 10 s\n{open(err_path).read()}")
            if t1 < t0:
                early += 1
            lat.append(max(0.0, t1 - t0))
        imap.logout()
        watcher.send_signal(signal.SIGTERM)
        rc = watcher.wait(timeout=10)
        notify.stop = True
        tasks = [n for n in os.listdir(f"{vault}/Needs_Action") if n.startswith("EMAIL_")]
        ids = {re.search(r"_bench_(\d+)", n).group(1) for n in tasks}
        ok = len(tasks) == args.count and len(ids) == args.count and rc == 0
        s = sorted(lat)
        ms = lambda v: f"{v * 1000:.2f} ms"
        print(f"gmail watcher, {args.count} messages, IMAP APPEND -> task visible "
              f"({'IMAPS' if tls else 'plain IMAP'}, IDLE, loopback Dovecot, "
              f"{args.gap:g}s between deliveries)")
        print(f"  p50 {ms(percentile(s, 50))}  p95 {ms(percentile(s, 95))}  "
              f"p99 {ms(percentile(s, 99))}  max {ms(s[-1])}  mean {ms(sum(s) / len(s))}")
        fast = sum(1 for v in s if v < 0.1)
        print(f"  under 100 ms: {fast}; 100 ms or more: {len(s) - fast} (Dovecot delays IDLE "
              f"notifications by 500 ms; mail that lands while the watcher is between "
              f"commands is seen at once)")
        if early:
            print(f"  ({early} tasks appeared before the APPEND's OK arrived; counted as 0)")
        print(f"  tasks: {len(tasks)} (expected {args.count}), distinct: {len(ids)}, "
              f"watcher exit: {rc}")
        if not ok:
            sys.exit("FAILED: wrong number of tasks or unclean exit")
    finally:
        if watcher and watcher.poll() is None:
            watcher.kill()
        dov.send_signal(signal.SIGTERM)
        try:
            dov.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dov.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
