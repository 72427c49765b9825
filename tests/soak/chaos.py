#!/usr/bin/env python3
"""Chaos run: the real supervisor, its watchers and the approval handler under random
SIGKILLs, a full disk and a stalled disk, while files are dropped and approvals approved.

    sudo tests/soak/chaos.py [--minutes 30] [--seed N] [--bin PATH] [--build]
                             [--fs-size MIB] [--keep] [--nice]

Not part of the default test run (tests/run.sh never starts it). Needs root (it mounts
file systems), Linux loop devices, mkfs.ext4 and fsfreeze, and /usr/bin/python3 with
aiosmtpd for the SMTP server (tests/fixtures/smtp/server.py); PyYAML (python3-yaml) is
used to parse frontmatter when present.

Set-up: a tmpfs we mount (--fs-size + 8 MiB) holds an ext4 image (--fs-size MiB, `-m 0`,
loop-mounted); the vault lives on that ext4, so the same file system can be filled to
ENOSPC (a ballast file) and stalled (`fsfreeze -f` / `-u`; tmpfs cannot be frozen and
this kernel has no device-mapper for dm-delay). `ai-employee supervise` (the release
binary, copied first) runs a table with three children, `watch filesystem`, `watch
approvals` and the task loop (`agent`; `--no-agent` leaves it out), whose agent is a
stand-in shell script (writes the task's plan and answers done in Claude Code's JSON; at
random it fails or takes 3 s); the SMTP fixture on a loopback port counts what it receives (outside the
vault, on the real disk).

Meanwhile, at random (seeded; the seed is printed): files dropped into Inbox/ (sizes
0 B to 3 MiB; written at once, written slowly with pauses, renamed in from outside the
Inbox, or written as NAME.part and renamed), approvals written to Pending_Approval/ and
moved to Approved/ (some written slowly in place in Approved/), each with a unique marker
in subject and body; SIGKILL of the filesystem watcher, the approval handler, the task
loop, the guardian and the supervisor itself (restarted after a short delay, as systemd's
Restart=on-failure would; supervisor kills happen in the first half of the run only, so
the second half is one long supervisor lifetime to measure RSS and fds on); ENOSPC
phases (ballast topped up for 5-20 s, then removed); stalls (fsfreeze for 1-6 s,
a watcher SIGKILLed in each to see whether it is restarted before the thaw).

At the end: chaos stops, the vault drains, the supervisor gets SIGTERM, and the
invariants are checked and printed as PASS/FAIL with numbers: no Inbox file lost, no
task twice or half, no email sent twice or approved-and-lost (counted per marker at the
server), no half approval sent, outcome unknown only after a stop, no record lost to a
cut-off write, every task note driven to Done/ once by the loop with its plan, never more
agent runs than attempts counted, no agent left running, no zombie, no orphan, a clean stop, supervisor RSS and fds flat (exit 1
if any fails, 2 on a set-up error). See docs/BENCHMARKS.md, "Chaos run".
"""
from __future__ import annotations

import argparse
import concurrent.futures
import email
import email.policy
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

try:
    import yaml  # python3-yaml; a minimal reader is used otherwise

    def load_frontmatter_yaml(text: str):
        return yaml.safe_load(text)

except ImportError:  # pragma: no cover
    yaml = None
    load_frontmatter_yaml = None

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "smtp" / "server.py"
MARKER_RE = re.compile(r"CHAOS-[0-9]{5}-[0-9a-f]{8}")
TICK = 0.05


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def smtp_python() -> str:
    for py in ("/usr/bin/python3", sys.executable, "python3"):
        try:
            r = subprocess.run([py, "-c", "import aiosmtpd"], capture_output=True)
        except OSError:
            continue
        if r.returncode == 0:
            return py
    raise SystemExit("no python with aiosmtpd: apt-get install python3-aiosmtpd")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def split_frontmatter(text: str):
    """(frontmatter text, body) or None when there is no closed frontmatter."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip("\r") != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r") == "---":
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :])
    return None


def parse_frontmatter(text: str) -> dict:
    """Parse a note's frontmatter; raises ValueError when it does not parse."""
    parts = split_frontmatter(text)
    if parts is None:
        raise ValueError("no closed frontmatter")
    fm = parts[0]
    if load_frontmatter_yaml is not None:
        try:
            data = load_frontmatter_yaml(fm)
        except Exception as e:  # yaml.YAMLError and friends
            raise ValueError(f"YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError("frontmatter is not a mapping")
        return data
    data = {}
    for line in fm.split("\n"):
        if not line.strip() or line.startswith("#"):
            continue
        if ":" not in line:
            raise ValueError(f"line without a key: {line!r}")
        k, v = line.split(":", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == "'":
            v = v[1:-1].replace("''", "'")
        elif len(v) >= 2 and v[0] == v[-1] == '"':
            v = json.loads(v)
        data[k.strip()] = v
    return data


# --------------------------------------------------------------------------- processes


def proc_table() -> dict[int, dict]:
    """pid -> {ppid, state, cmd, exe} from /proc (never touches the vault)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            rest = stat[stat.rindex(")") + 2 :].split()
            state, ppid = rest[0], int(rest[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = ""
        except (OSError, ValueError, IndexError):
            continue
        out[pid] = {"ppid": ppid, "state": state, "cmd": cmd, "exe": exe}
    return out


def rss_fds(pid: int):
    """(VmRSS KiB, RssAnon KiB, open fds) of a live process, or None."""
    try:
        rss = anon = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, anon, fds
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(self.seed)
        self.duration = args.minutes * 60.0
        self.lock = threading.Lock()
        self.stop_chaos = threading.Event()
        self.shutting_down = threading.Event()
        self.work = Path(tempfile.mkdtemp(prefix="ai-employee-chaos-"))
        self.ram = self.work / "ram"
        self.mnt = self.work / "mnt"
        self.vault = self.mnt / "vault"
        self.outside = self.mnt / "outside"
        self.ballast = self.mnt / "ballast"
        self.binary = self.work / "bin" / "ai-employee"
        self.loop = None
        self.mounted = []
        self.smtp = None
        self.smtp_out = self.work / "smtp-out"
        self.agent_runs = self.work / "agent-runs.log"
        self.sup = None  # Popen of the current supervisor
        self.sup_started = 0.0
        self.sup_gen = 0
        self.keeper = None
        self.t0 = time.monotonic()
        # records
        self.drops: dict[str, dict] = {}
        self.approvals: dict[str, dict] = {}
        self.events: dict[str, int] = {}
        self.incarnations: list[dict] = []
        self.samples: dict[int, list] = {}  # generation -> [(t, rss, anon, fds)]
        self.zombie_seen: dict[tuple, float] = {}
        self.zombies_persistent: list[str] = []
        self.zombies_in_stall = 0
        self.zombie_reported: set = set()
        self.stalls: list[list] = []  # [start, end or None]
        self.stall_probes: list[dict] = []
        self.fills: list[list] = []
        self.max_same_watcher = {"filesystem": 0, "approvals": 0, "agent": 0}
        self.dup_watchers: list[str] = []
        self.guardian_missing_since = None
        self.guardian_gaps: list[float] = []
        self.dropped_bytes = 0
        self.drop_seq = 0
        self.appr_seq = 0
        self.errors: list[str] = []
        self.io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
        self.slow_pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
        self.futures: list[concurrent.futures.Future] = []

    # ------------------------------------------------------------------ set-up

    def now(self) -> float:
        return time.monotonic() - self.t0

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.events[what] = self.events.get(what, 0) + n

    def setup(self) -> None:
        a = self.args
        (self.work / "bin").mkdir()
        shutil.copy2(a.bin, self.binary)
        self.ram.mkdir()
        self.mnt.mkdir()
        run(["mount", "-t", "tmpfs", "-o", f"size={a.fs_size + 8}m,mode=0700", "tmpfs", str(self.ram)])
        self.mounted.append(self.ram)
        img = self.ram / "vault.ext4"
        with open(img, "wb") as f:
            f.truncate(a.fs_size << 20)
        run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", str(img)])
        self.loop = run(["losetup", "-f", "--show", str(img)]).stdout.strip()
        run(["mount", "-t", "ext4", self.loop, str(self.mnt)])
        self.mounted.append(self.mnt)
        self.outside.mkdir()
        env = self.env()
        run([str(self.binary), "init", "--vault", str(self.vault)], env=env)
        table = TABLE
        if a.agent:
            agent = self.work / "bin" / "agent.sh"
            agent.write_text(STANDIN_AGENT)
            agent.chmod(0o755)
            table += AGENT_TABLE.format(agent=agent, runs=self.agent_runs)
        (self.vault / "ai-employee.toml").write_text(table)
        # SMTP server (its output on the real disk, not on the vault's file system).
        ready = self.work / "smtp-ready"
        self.smtp = subprocess.Popen(
            [smtp_python(), str(FIXTURE), "--port", "0", "--out", str(self.smtp_out),
             "--ready", str(ready), "--delay-ms", str(a.smtp_delay_ms)],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "smtp.err", "w"),
            start_new_session=True,
        )
        end = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > end or self.smtp.poll() is not None:
                raise SystemExit("the SMTP server did not start: see smtp.err")
            time.sleep(0.05)
        port = int(ready.read_text().strip())
        smtp = self.vault / "credentials" / "smtp.toml"
        smtp.write_text(
            f'host = "127.0.0.1"\nport = {port}\ntls = "none"\n'
            'from = "AI Employee <ai@example.com>"\ntimeout = "10s"\n'
        )
        smtp.chmod(0o600)
        log(f"work dir {self.work}; vault {self.vault} on {self.loop} (ext4, {a.fs_size} MiB, "
            f"image on a tmpfs); SMTP on 127.0.0.1:{port}")

    def env(self) -> dict:
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("AI_EMPLOYEE_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        e["RUST_BACKTRACE"] = "1"
        e["CHAOS_AGENT_SEED"] = str(self.seed)  # the stand-in agent's draws
        return e

    # ------------------------------------------------------------------ supervisor

    def start_supervisor(self) -> None:
        self.sup_gen += 1
        console = open(self.work / "supervisor.console.log", "ab")
        console.write(f"\n===== supervisor #{self.sup_gen} at t={self.now():.1f}s =====\n".encode())
        console.flush()
        p = subprocess.Popen(
            [str(self.binary), "supervise", "--vault", str(self.vault)],
            env=self.env(), cwd=str(self.work), stdin=subprocess.DEVNULL,
            stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
        )
        console.close()
        with self.lock:
            self.sup = p
            self.sup_started = time.monotonic()
            self.samples[self.sup_gen] = []
            self.incarnations.append({"gen": self.sup_gen, "pid": p.pid, "start": self.now(),
                                      "end": None, "rc": None, "killed": False})

    def keeper_loop(self) -> None:
        """Restart the supervisor when it dies, as systemd's Restart=on-failure would."""
        while True:
            p = self.sup
            rc = p.wait()
            with self.lock:
                inc = self.incarnations[-1]
                inc["end"], inc["rc"] = self.now(), rc
                self.sup = None
            if self.shutting_down.is_set():
                return
            if not inc["killed"]:
                self.errors.append(f"supervisor #{inc['gen']} (pid {inc['pid']}) exited on its own "
                                   f"with {rc} at t={inc['end']:.1f}s")
                log(f"!! supervisor exited on its own: {rc}")
            if rc in (2, 75, 78):
                inc["no_restart"] = True
                self.errors.append(f"supervisor #{inc['gen']} exited {rc}: systemd "
                                   "(RestartPreventExitStatus=2 75 78) would not restart it")
            time.sleep(self.rng_keeper.uniform(0.2, 2.0))
            if self.shutting_down.is_set():
                return
            self.start_supervisor()

    def children(self):
        """(filesystem pids, approvals pids, guardian pids, task loop pids, the process
        table) of the current supervisor."""
        p = self.sup
        fs, ap, gu, lp = [], [], [], []
        if p is None:
            return fs, ap, gu, lp, {}
        table = proc_table()
        for pid, info in table.items():
            if info["ppid"] != p.pid or info["state"] == "Z":
                continue
            cmd = info["cmd"]
            if cmd[1:3] == ["watch", "filesystem"]:
                fs.append(pid)
            elif cmd[1:3] == ["watch", "approvals"]:
                ap.append(pid)
            elif cmd[1:2] == ["agent"]:
                lp.append(pid)
            elif len(cmd) > 1 and cmd[1] in ("supervise", "__guardian"):
                gu.append(pid)
        return fs, ap, gu, lp, table

    def kill(self, what: str) -> None:
        fs, ap, gu, lp, _ = self.children()
        pids = {"filesystem": fs, "approvals": ap, "guardian": gu, "agent": lp}.get(what)
        if what == "supervisor":
            with self.lock:
                p = self.sup
                if p is None or p.poll() is not None:
                    return
                self.incarnations[-1]["killed"] = True
            os.kill(p.pid, signal.SIGKILL)
            self.count("kill supervisor")
            log(f"SIGKILL supervisor {p.pid}")
            return
        if not pids:
            self.count(f"kill {what} (none running)")
            return
        pid = self.rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
            self.count(f"kill {what}")
        except ProcessLookupError:
            pass

    # ------------------------------------------------------------------ drops

    def drop_size(self, rng: random.Random) -> int:
        r = rng.random()
        if r < 0.08:
            size = 0
        elif r < 0.65:
            size = rng.randint(1, 4096)
        elif r < 0.90:
            size = rng.randint(4097, 65536)
        elif r < 0.98:
            size = rng.randint(65537, 512 * 1024)
        else:
            size = rng.randint(1 << 20, 3 << 20)
        # Stay within a byte budget spread over the run (the Inbox and its copies must fit).
        budget = self.args.fs_size * (1 << 20) * 0.18
        allowed = budget * min(1.0, self.now() / self.duration) + (2 << 20)
        if self.dropped_bytes + size > allowed:
            size = rng.randint(0, 2048)
        self.dropped_bytes += size
        return size

    def schedule_drop(self) -> None:
        self.drop_seq += 1
        seq = self.drop_seq
        rng = random.Random(self.rng.getrandbits(64))
        mode = rng.choices(["direct", "slow", "rename-in", "part"], [45, 20, 20, 15])[0]
        size = self.drop_size(rng)
        ext = rng.choice(["pdf", "txt", "bin", "jpg", "md", "csv"])
        name = f"chaos-{seq:05d}-{mode}.{ext}"
        data = rng.randbytes(size)
        rec = {"name": name, "mode": mode, "size": size, "sha256": hashlib.sha256(data).hexdigest(),
               "status": "pending", "t": self.now()}
        with self.lock:
            self.drops[name] = rec
        pool = self.slow_pool if mode == "slow" else self.io_pool
        self.futures.append(pool.submit(self.do_drop, rec, data, rng))
        self.count(f"drop {mode}")

    def do_drop(self, rec: dict, data: bytes, rng: random.Random) -> None:
        inbox = self.vault / "Inbox"
        name, mode = rec["name"], rec["mode"]
        try:
            if mode in ("direct", "slow"):
                path = inbox / name
                self.write_or_unlink(path, data, rng if mode == "slow" else None)
            elif mode == "rename-in":
                tmp = self.outside / name
                self.write_or_unlink(tmp, data, None)
                try:
                    os.rename(tmp, inbox / name)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    raise
            else:  # part
                tmp = inbox / (name + ".part")
                self.write_or_unlink(tmp, data, None)
                try:
                    os.rename(tmp, inbox / name)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    raise
            rec["status"] = "ok"
        except OSError as e:
            rec["status"] = "aborted"
            rec["error"] = f"{errno.errorcode.get(e.errno, e.errno)}"
            self.count("drop aborted (" + rec["error"] + ")")

    def write_or_unlink(self, path: Path, data: bytes, slow: random.Random | None) -> None:
        """Write a new file; on an error unlink it *before* closing it, so no reader ever
        sees the partial file as a closed file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if slow is None or len(data) < 2:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            else:
                cuts = sorted(slow.sample(range(1, len(data)), min(len(data) - 1, slow.randint(1, 4))))
                prev = 0
                for c in cuts + [len(data)]:
                    view = memoryview(data)[prev:c]
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    prev = c
                    if c != len(data):
                        time.sleep(slow.uniform(0.2, 1.5))
        except OSError:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)
            raise
        os.close(fd)

    # ------------------------------------------------------------------ approvals

    def schedule_approval(self) -> None:
        self.appr_seq += 1
        seq = self.appr_seq
        rng = random.Random(self.rng.getrandbits(64))
        marker = f"CHAOS-{seq:05d}-{rng.getrandbits(32):08x}"
        mode = rng.choices(["move", "slow-in-place"], [88, 12])[0]
        filler = "\n".join(f"line {i} of {marker}: " + "x" * rng.randint(0, 120)
                           for i in range(rng.randint(0, 40)))
        text = (
            "---\ntype: approval_request\naction: send_email\nto: client@example.com\n"
            f'subject: "Chaos {marker}"\ncreated: 2026-01-07T10:30:00Z\nstatus: pending\n---\n'
            f"Hello, this is chaos approval {marker}.\n{filler}\nEND-{marker}\n"
        )
        name = f"chaos-approval-{seq:05d}.md"
        rec = {"marker": marker, "name": name, "mode": mode, "status": "pending", "t": self.now()}
        with self.lock:
            self.approvals[marker] = rec
        pool = self.slow_pool if mode == "slow-in-place" else self.io_pool
        self.futures.append(pool.submit(self.do_approval, rec, text.encode(), rng))
        self.count(f"approval {mode}")

    def do_approval(self, rec: dict, data: bytes, rng: random.Random) -> None:
        try:
            if rec["mode"] == "move":
                pending = self.vault / "Pending_Approval" / rec["name"]
                self.write_or_unlink(pending, data, None)
                time.sleep(rng.uniform(0, 0.3))
                try:
                    os.rename(pending, self.vault / "Approved" / rec["name"])
                except OSError:
                    pending.unlink(missing_ok=True)
                    raise
            else:
                self.write_or_unlink(self.vault / "Approved" / rec["name"], data, rng)
            rec["status"] = "approved"
        except OSError as e:
            rec["status"] = "aborted"
            rec["error"] = f"{errno.errorcode.get(e.errno, e.errno)}"
            self.count("approval aborted (" + rec["error"] + ")")

    # ------------------------------------------------------------------ disk

    def disk_fill(self, rng: random.Random) -> None:
        hold = rng.uniform(5, 20)
        start = self.now()
        entry = [start, None, 0]
        with self.lock:
            self.fills.append(entry)
        written = 0
        chunk = b"\0" * (1 << 20)
        small = b"\0" * 4096
        try:
            fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            self.errors.append(f"ballast: {e}")
            return
        try:
            def top_up():
                nonlocal written
                for buf in (chunk, small):
                    while True:
                        try:
                            written += os.write(fd, buf)
                        except OSError as e:
                            if e.errno != errno.ENOSPC:
                                raise
                            break
                try:
                    os.fsync(fd)
                except OSError:
                    pass

            top_up()
            log(f"disk full: ballast {written >> 20} MiB, holding {hold:.1f}s")
            end = time.monotonic() + hold
            while time.monotonic() < end and not self.stop_chaos.is_set():
                time.sleep(0.5)
                top_up()
        finally:
            os.close(fd)
            os.unlink(self.ballast)
            entry[1], entry[2] = self.now(), written
            self.count("disk full")

    def disk_freeze(self, rng: random.Random) -> None:
        hold = rng.uniform(1, 6)
        # A fail-safe that thaws even if this script dies while the disk is frozen.
        failsafe = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess,sys,time; time.sleep(float(sys.argv[1])); "
             "subprocess.run(['fsfreeze','-u',sys.argv[2]], stderr=subprocess.DEVNULL)",
             str(hold + 10), str(self.mnt)],
            start_new_session=True,
        )
        entry = [self.now(), None]
        with self.lock:
            self.stalls.append(entry)
        try:
            r = subprocess.run(["fsfreeze", "-f", str(self.mnt)], capture_output=True, text=True)
            if r.returncode != 0:
                self.errors.append(f"fsfreeze -f: {r.stderr.strip()}")
                return
            end = time.monotonic() + hold
            self.stop_chaos.wait(min(0.3, hold / 3))
            self.stall_probe(rng, end)
            self.stop_chaos.wait(max(0.0, end - time.monotonic()))
        finally:
            subprocess.run(["fsfreeze", "-u", str(self.mnt)], capture_output=True)
            entry[1] = self.now()
            failsafe.kill()
            failsafe.wait()
            self.count("disk stall")

    def stall_probe(self, rng: random.Random, end: float) -> None:
        """SIGKILL one watcher while the disk is frozen: is it reaped and restarted before
        the thaw (does the supervisor's loop wait for the disk)?"""
        fs, ap, *_ = self.children()
        sup = self.sup
        pool = [("filesystem", p) for p in fs] + [("approvals", p) for p in ap]
        if not pool or sup is None:
            return
        what, victim = rng.choice(pool)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.count("kill during a stall")
        died = reaped = restarted = None
        t0 = time.monotonic()
        while time.monotonic() < end and not self.stop_chaos.is_set():
            try:
                with open(f"/proc/{victim}/stat", "rb") as f:
                    st = f.read().decode("utf-8", "replace")
                state = st[st.rindex(")") + 2]
            except OSError:
                state = "gone"
            now = time.monotonic() - t0
            if died is None and state in ("Z", "gone", "X"):
                died = now
            if reaped is None and state == "gone":
                reaped = now
            fs2, ap2, *_ = self.children()
            if restarted is None and [p for p in (fs2 if what == "filesystem" else ap2) if p != victim]:
                restarted = now
            if restarted is not None and reaped is not None:
                break
            time.sleep(0.02)
        with self.lock:
            self.stall_probes.append({"what": what, "died": died, "reaped": reaped,
                                      "restarted": restarted, "window": end - t0})

    def disk_loop(self, rng: random.Random) -> None:
        while not self.stop_chaos.is_set():
            if self.stop_chaos.wait(rng.expovariate(1.0 / self.args.disk_every)):
                return
            try:
                if rng.random() < 0.5:
                    self.disk_fill(rng)
                else:
                    self.disk_freeze(rng)
            except Exception:
                self.errors.append("disk event: " + traceback.format_exc())

    def in_stall(self, t: float, grace: float = 5.0) -> bool:
        with self.lock:
            for s, e in self.stalls:
                if s - 1 <= t and (e is None or t <= e + grace):
                    return True
        return False

    # ------------------------------------------------------------------ sampling

    def sampler(self) -> None:
        while not self.shutting_down.is_set():
            try:
                self.sample()
            except Exception:
                self.errors.append("sampler: " + traceback.format_exc())
            self.shutting_down.wait(2.0)

    def sample(self) -> None:
        p, gen, started = self.sup, self.sup_gen, self.sup_started
        t = self.now()
        fs, ap, gu, lp, table = self.children()
        if p is not None and p.poll() is None:
            m = rss_fds(p.pid)
            if m is not None:
                with self.lock:
                    self.samples[gen].append((time.monotonic() - started, *m))
            self.max_same_watcher["filesystem"] = max(self.max_same_watcher["filesystem"], len(fs))
            self.max_same_watcher["approvals"] = max(self.max_same_watcher["approvals"], len(ap))
            self.max_same_watcher["agent"] = max(self.max_same_watcher["agent"], len(lp))
            for what, pids in (("filesystem", fs), ("approvals", ap), ("agent", lp)):
                if len(pids) > 1 and not self.in_stall(t):
                    self.dup_watchers.append(f"t={t:.0f}s: {len(pids)} `watch {what}` children {pids}")
            if gu or time.monotonic() - started < 5:
                if self.guardian_missing_since is not None:
                    self.guardian_gaps.append(t - self.guardian_missing_since)
                self.guardian_missing_since = None
            elif self.guardian_missing_since is None:
                self.guardian_missing_since = t
        # Zombies whose parent is ours (the supervisor, or this script).
        ours = {os.getpid()}
        if p is not None:
            ours.add(p.pid)
        live = set()
        for pid, info in (table or proc_table()).items():
            if info["state"] == "Z" and info["ppid"] in ours:
                key = (pid, info["ppid"])
                live.add(key)
                first = self.zombie_seen.setdefault(key, t)
                if t - first >= 1.9 and key not in self.zombie_reported:
                    if self.in_stall(t) or self.in_stall(first):
                        self.zombies_in_stall += 1
                    else:
                        self.zombies_persistent.append(
                            f"pid {pid} ({' '.join(info['cmd'][:3])}), parent {info['ppid']}, "
                            f"defunct since t={first:.0f}s")
                    self.zombie_reported.add(key)
        for k in list(self.zombie_seen):
            if k not in live:
                del self.zombie_seen[k]

    # ------------------------------------------------------------------ main loop

    def chaos_loop(self) -> None:
        a = self.args
        rates = {  # mean seconds between events
            "drop": a.drop_every,
            "approval": a.approval_every,
            "kill filesystem": a.kill_every,
            "kill approvals": a.kill_every,
            "kill guardian": a.kill_every * 15,
            **({"kill agent": a.kill_every} if a.agent else {}),
            "kill supervisor": a.supervisor_every,
        }
        nxt = {k: self.now() + self.rng.expovariate(1.0 / v) for k, v in rates.items()}
        last_report = 0.0
        while self.now() < self.duration:
            t = self.now()
            for k, due in nxt.items():
                if t < due:
                    continue
                nxt[k] = t + self.rng.expovariate(1.0 / rates[k])
                if k == "drop":
                    self.schedule_drop()
                elif k == "approval":
                    self.schedule_approval()
                elif k == "kill supervisor":
                    if t < self.duration * a.supervisor_share:
                        self.kill("supervisor")
                else:
                    self.kill(k.split()[1])
            if t - last_report >= 60:
                last_report = t
                with self.lock:
                    ev = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items()))
                log(f"t={t:.0f}s: {ev}")
            time.sleep(TICK)

    # ------------------------------------------------------------------ end

    def drain(self, timeout: float) -> tuple[bool, str]:
        """Wait until every completed drop has a note and Approved/ is empty."""
        end = time.monotonic() + timeout
        why = ""
        while time.monotonic() < end:
            notes = self.note_names()
            with self.lock:
                want = {n for n, r in self.drops.items() if r["status"] == "ok"}
            missing = want - notes
            try:
                left = [n for n in os.listdir(self.vault / "Approved") if n.endswith(".md")]
            except OSError as e:
                left = [str(e)]
            open_tasks = self.open_tasks() if self.args.agent else []
            if not missing and not left and not open_tasks:
                return True, ""
            why = f"{len(missing)} drops without a note, {len(left)} files left in Approved/"
            if self.args.agent:
                why += f", {len(open_tasks)} tasks not yet done (e.g. {open_tasks[:3]})"
            time.sleep(1)
        return False, why

    def open_tasks(self) -> list[str]:
        """Task notes the loop has not finished (in Needs_Action/ or In_Progress/)."""
        out = []
        for folder in ("Needs_Action", "In_Progress"):
            for n in os.listdir(self.vault / folder):
                if n.endswith(".md") and not n.startswith("."):
                    out.append(f"{folder}/{n}")
        return out

    def note_names(self) -> set:
        out = set()
        for folder in TASK_FOLDERS:
            out |= self.note_names_in(self.vault / folder)
        return out

    def note_names_in(self, na: Path) -> set:
        out = set()
        for n in os.listdir(na):
            if not n.endswith(".md"):
                continue
            try:
                text = (na / n).read_text("utf-8", "replace")
            except OSError:
                continue
            m = re.search(r"^original_name: (.*)$", text, re.M)
            if m:
                v = m.group(1).strip()
                if len(v) >= 2 and v[0] == v[-1] == "'":
                    v = v[1:-1].replace("''", "'")
                elif len(v) >= 2 and v[0] == v[-1] == '"':
                    v = json.loads(v)
                out.add(v)
        return out

    def stop_supervisor(self) -> tuple[int | None, float]:
        self.shutting_down.set()
        p = self.sup
        rc = None
        took = 0.0
        if p is not None and p.poll() is None:
            t = time.monotonic()
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(60)
            except subprocess.TimeoutExpired:
                self.errors.append("supervisor did not exit within 60 s of SIGTERM; SIGKILLed")
                p.kill()
                rc = p.wait()
            took = time.monotonic() - t
        if self.keeper is not None:
            self.keeper.join(10)
        return rc, took

    def ours_running(self) -> list[str]:
        """Processes still running our copied binary (orphans once the supervisor is gone)."""
        out = []
        for pid, info in proc_table().items():
            if info["exe"].startswith(str(self.binary)):
                out.append(f"pid {pid} [{info['state']}] {' '.join(info['cmd'])} (parent {info['ppid']})")
        return out

    def cleanup(self) -> None:
        subprocess.run(["fsfreeze", "-u", str(self.mnt)], capture_output=True)
        self.shutting_down.set()
        self.stop_chaos.set()
        p = self.sup
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        for pid, info in proc_table().items():
            if info["exe"].startswith(str(self.binary)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.smtp is not None and self.smtp.poll() is None:
            self.smtp.terminate()
            try:
                self.smtp.wait(5)
            except subprocess.TimeoutExpired:
                self.smtp.kill()
        time.sleep(0.5)
        for m in reversed(self.mounted):
            if subprocess.run(["umount", str(m)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
            if m == self.mnt and self.loop:
                subprocess.run(["losetup", "-d", self.loop], capture_output=True)
        self.mounted = []


TABLE = """\
# Chaos run table: two children, short backoff (they are killed every few seconds),
# small logs (the vault is on a 64 MiB file system).
[supervisor]
health_interval = "2s"
stop_timeout = "5s"
log_max_size = "256KiB"
log_max_files = 2

[[process]]
name = "filesystem"
description = "File System Watcher"
command = "ai-employee"
args = ["watch", "filesystem"]
restart = "always"
backoff = { initial = "200ms", max = "3s", reset_after = "30s" }
heartbeat_timeout = "60s"
max_memory = "256MiB"

[[process]]
name = "approvals"
description = "Approval Handler"
command = "ai-employee"
args = ["watch", "approvals", "--retry-initial", "1s", "--retry-max", "4s"]
log_max_size = "1MiB"
restart = "always"
backoff = { initial = "200ms", max = "3s", reset_after = "30s" }
heartbeat_timeout = "60s"
max_memory = "256MiB"
"""

# With --agent (the default): the task loop as a third child, its agent the stand-in below.
AGENT_TABLE = """
[[process]]
name = "agent"
description = "Task Loop"
command = "ai-employee"
args = ["agent"]
restart = "always"
backoff = {{ initial = "200ms", max = "3s", reset_after = "30s" }}
heartbeat_timeout = "60s"
max_memory = "256MiB"

[agent]
command = ["{agent}", "{{task}}", "{runs}"]
max_concurrent = 2
timeout = "20s"
kill_after = "2s"
retry_delays = ["1s", "2s", "4s", "8s"]
max_attempts = 12
"""

# The stand-in agent (`agent.sh TASK RUNS_LOG`, run by the loop in the vault): records
# the run outside the vault, then at random fails (8 %), takes 3 s (4 %: a kill of the
# loop lands mid-run), and otherwise writes Plans/PLAN_<task>.md and answers done in
# Claude Code's JSON; a plan it cannot write (ENOSPC) is a failed attempt. "At random"
# is a hash of the run's seed ($CHAOS_AGENT_SEED), the dropped file's name and how many
# runs its task had, so --seed also says which runs fail.
STANDIN_AGENT = r"""#!/bin/sh
task="$1"; runs="$2"
echo "$task $$" >> "$runs"
n=$(awk -v t="$task" '$1 == t' "$runs" | wc -l)
# The dropped file's name (the seed's), without the watcher's FILE_<time>_ prefix.
r=$(printf '%s %s %s' "${CHAOS_AGENT_SEED:-0}" "${task#FILE_*_}" "$n" | cksum | cut -d' ' -f1)
r=$((r % 100))
if [ "$r" -lt 8 ]; then echo "garbage, no JSON"; exit 1; fi
if [ "$r" -lt 12 ]; then sleep 3; fi
sleep "0.$((r % 4))"
if ! printf '# Plan for %s\n' "$task" > "Plans/PLAN_$task.md"; then
  printf '{"type":"result","subtype":"success","is_error":false,"result":"STATUS: failed: cannot write the plan"}\n'
  exit 0
fi
printf '{"type":"result","subtype":"success","is_error":false,"result":"Done.\\nSTATUS: done","session_id":"s-%s","total_cost_usd":0.001,"num_turns":1}\n' "$task"
"""

# Where task notes can be once the loop runs.
TASK_FOLDERS = ("Needs_Action", "In_Progress", "Done", "Failed", "Rejected")


# --------------------------------------------------------------------------- checks


class Results:
    def __init__(self):
        self.rows: list[tuple[str, bool | None, str]] = []
        self.details: list[str] = []

    def add(self, name: str, ok: bool | None, numbers: str, details: list[str] | None = None):
        self.rows.append((name, ok, numbers))
        for d in (details or [])[:20]:
            self.details.append(f"  {name}: {d}")
        if details and len(details) > 20:
            self.details.append(f"  {name}: … {len(details) - 20} more")

    def failed(self) -> bool:
        return any(ok is False for _, ok, _ in self.rows)

    def table(self) -> str:
        w = max(len(n) for n, _, _ in self.rows)
        lines = [f"| {'invariant'.ljust(w)} | result | numbers |", f"|{'-' * (w + 2)}|--------|---------|"]
        for n, ok, num in self.rows:
            res = "PASS" if ok else ("info" if ok is None else "FAIL")
            lines.append(f"| {n.ljust(w)} | {res.ljust(6)} | {num} |")
        return "\n".join(lines)


def check_tasks(c: Chaos, r: Results) -> None:
    notes, unparsable, half, per_name = {}, [], [], {}
    fronts = {}  # "Folder/note" -> its frontmatter
    # Without the task loop every note stays in Needs_Action/; with it, a note and its copy
    # move together to In_Progress/ and on to Done/ (or Failed/, Rejected/).
    for folder in TASK_FOLDERS if c.args.agent else ("Needs_Action",):
        na = c.vault / folder
        names = sorted(n for n in os.listdir(na) if not n.startswith("."))
        name_set = set(names)
        for n in names:
            if not n.endswith(".md") or n + ".md" in name_set:
                continue  # a copy (of a dropped .md file), not a note
            key = f"{folder}/{n}"
            try:
                fm = parse_frontmatter((na / n).read_text("utf-8"))
            except (OSError, ValueError, UnicodeDecodeError) as e:
                unparsable.append(f"{key}: {e}")
                continue
            if fm.get("type") == "approval_request" and folder in ("Done", "Failed", "Rejected"):
                continue  # the approval handler's, once decided
            if fm.get("type") != "file_drop":
                unparsable.append(f"{key}: type {fm.get('type')!r}, not file_drop")
                continue
            orig = fm.get("original_name")
            if not isinstance(orig, str):
                unparsable.append(f"{key}: original_name {orig!r} is not a string")
                continue
            copy = na / n[:-3]
            try:
                got = sha256_file(copy)
            except OSError as e:
                half.append(f"{key}: copy {copy.name}: {e}")
                got = None
            if got is not None and got != str(fm.get("sha256")):
                half.append(f"{key}: copy hashes to {got[:12]}…, note says {str(fm.get('sha256'))[:12]}…")
            if got is not None and fm.get("size") != copy.stat().st_size:
                half.append(f"{key}: size {fm.get('size')!r}, copy has {copy.stat().st_size}")
            notes[key] = (orig, fm.get("sha256"), got)
            fronts[key] = fm
            per_name.setdefault(orig, []).append(key)
        copies_without_note = [n for n in names if not n.endswith(".md") and n + ".md" not in name_set]
        half += [f"{folder}/{n}: copy without a note" for n in copies_without_note]

    drops = c.drops
    ok_drops = {n: d for n, d in drops.items() if d["status"] == "ok"}
    aborted = {n: d for n, d in drops.items() if d["status"] != "ok"}
    lost, wrong = [], []
    for n, d in ok_drops.items():
        tasks = per_name.get(n, [])
        if not tasks:
            lost.append(f"{n} ({d['mode']}, {d['size']} B, dropped t={d['t']:.0f}s)")
            continue
        for t in tasks:
            if notes[t][1] != d["sha256"] or notes[t][2] != d["sha256"]:
                wrong.append(f"{n}: task {t} has sha256 {str(notes[t][1])[:12]}… (copy "
                             f"{str(notes[t][2])[:12]}…), dropped {d['sha256'][:12]}…")
    dup = [f"{n}: {len(v)} tasks {v}" for n, v in per_name.items() if len(v) > 1]
    phantom = [f"{n}: {v} (never dropped" + (", drop aborted)" if n in aborted else ")")
               for n, v in per_name.items() if n not in ok_drops]
    statuses = {}
    for d in drops.values():
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1
    r.add("no Inbox file lost", not lost and not wrong,
          f"{len(ok_drops)} dropped, {len(ok_drops) - len(lost)} with a task, {len(lost)} lost, "
          f"{len(wrong)} wrong sha256 ({len(aborted)} drops aborted by ENOSPC etc., not counted)",
          lost + wrong)
    r.add("no task twice or half", not dup and not half and not unparsable and not phantom,
          f"{len(notes)} tasks, {len(dup)} names with >1 task, {len(half)} half, "
          f"{len(unparsable)} unparsable, {len(phantom)} for files never dropped",
          dup + half + unparsable + phantom)
    if c.args.agent:
        check_loop(c, r, fronts)
    staging = c.vault / ".ai-employee" / "filesystem.staging"
    left = os.listdir(staging) if staging.is_dir() else []
    r.add("staging empty after stop", None, f"{len(left)} files left in filesystem.staging", left)


def check_loop(c: Chaos, r: Results, fronts: dict) -> None:
    """The task loop drove every note to Done/ once, each run counted as an attempt."""
    runs: dict[str, int] = {}
    try:
        for line in c.agent_runs.read_text().splitlines():
            task = line.split(" ", 1)[0]
            runs[task] = runs.get(task, 0) + 1
    except OSError:
        pass
    not_done, bad_state, over, no_plan = [], [], [], []
    attempts = []
    for key, fm in sorted(fronts.items()):
        folder, name = key.split("/", 1)
        task = name[:-3]
        if folder != "Done":
            why = fm.get("last_error") or fm.get("state")
            not_done.append(f"{key} (state {fm.get('state')!r}: {why})")
            continue
        if fm.get("state") != "done" or fm.get("status") != "done":
            bad_state.append(f"{key}: state {fm.get('state')!r}, status {fm.get('status')!r}")
        try:
            attempt = int(fm.get("attempt"))
        except (TypeError, ValueError):
            bad_state.append(f"{key}: attempt {fm.get('attempt')!r}")
            continue
        attempts.append(attempt)
        # An attempt is counted (durably) before its agent starts, an interrupted one too:
        # never more runs than attempts.
        if runs.get(task, 0) > attempt:
            over.append(f"{key}: {runs[task]} agent runs, attempt {attempt}")
        if not (c.vault / "Plans" / f"PLAN_{task}.md").is_file():
            no_plan.append(f"{key}: no Plans/PLAN_{task}.md")
    r.add("every task done once by the loop", not not_done and not bad_state and not no_plan,
          f"{len(fronts) - len(not_done)} of {len(fronts)} notes in Done/, {len(bad_state)} with a "
          f"wrong state, {len(no_plan)} without their plan",
          not_done + bad_state + no_plan)
    runs_total = sum(runs.values())
    r.add("agent runs within attempts", not over,
          f"{runs_total} agent runs for {len(fronts)} tasks; attempts per done task "
          f"max {max(attempts, default=0)}, total {sum(attempts)}; {len(over)} tasks with more runs "
          "than attempts", over)
    left = [f"pid {pid}: {' '.join(i['cmd'])}" for pid, i in proc_table().items()
            if any("agent.sh" in a for a in i["cmd"][:2])]
    r.add("no agent left running after stop", not left, f"{len(left)} stand-in agents still running",
          left)


def smtp_counts(c: Chaos) -> tuple[dict, int, list]:
    counts: dict[str, int] = {}
    total = 0
    truncated = []
    for n in sorted(os.listdir(c.smtp_out)):
        if not n.endswith(".json"):
            continue
        rec = json.loads((c.smtp_out / n).read_text())
        total += 1
        msg = email.message_from_string(rec["data"], policy=email.policy.default)
        subject = str(msg.get("subject", ""))
        try:
            body = msg.get_body(("plain",)).get_content()
        except Exception:
            body = rec["data"]
        markers = set(MARKER_RE.findall(subject)) | set(MARKER_RE.findall(body))
        for m in markers:
            counts[m] = counts.get(m, 0) + 1
            if f"END-{m}" not in body:
                truncated.append(f"{m}: the message body lacks its last line (half a file sent?)")
    return counts, total, truncated


def check_email(c: Chaos, r: Results) -> None:
    counts, total, truncated = smtp_counts(c)
    archived: dict[str, list] = {}
    for folder in ("Done", "Failed"):
        d = c.vault / folder
        for n in os.listdir(d):
            p = d / n
            try:
                text = p.read_text("utf-8", "replace")
            except OSError:
                continue
            ms = set(MARKER_RE.findall(text))
            result = None
            try:
                fm = parse_frontmatter(text)
                result = fm.get("result")
                err = str(fm.get("error", ""))
            except ValueError:
                err = "unparsable"
            for m in ms:
                archived.setdefault(m, []).append((folder, n, result, err))
    approved = {m: a for m, a in c.approvals.items() if a["status"] == "approved"}
    aborted = {m: a for m, a in c.approvals.items() if a["status"] != "approved"}
    twice, lost, bad, unknown, failed, notapproved, double_archived = [], [], [], [], [], [], []
    sent = 0
    for m, a in approved.items():
        arch = archived.get(m, [])
        n = counts.get(m, 0)
        if n > 1:
            twice.append(f"{m} ({a['name']}): {n} messages at the server; archived {arch}")
        if not arch:
            where = "still in Approved/" if (c.vault / "Approved" / a["name"]).exists() else "nowhere"
            lost.append(f"{m} ({a['name']}, approved t={a['t']:.0f}s): {where}; {n} messages at the server")
            continue
        if len(arch) > 1:
            double_archived.append(f"{m}: {arch}")
        folder, name, result, err = arch[0]
        if folder == "Done" and result == "sent":
            sent += 1
            if n != 1:
                bad.append(f"{m} ({name}): in Done/ as sent, {n} messages at the server")
        elif folder == "Failed" and result == "outcome_unknown":
            unknown.append((m, n))
        else:
            failed.append(f"{m} ({name}): {folder}/ result {result!r}: {err[:160]}; {n} at the server")
            if n != 0:
                bad.append(f"{m} ({name}): {folder}/ result {result!r} but {n} messages at the server")
    for m, n in counts.items():
        if m not in approved:
            notapproved.append(f"{m}: {n} messages, never approved"
                               + (f" (write aborted: {aborted[m].get('error')})" if m in aborted else ""))
    unk_sent = sum(1 for _, n in unknown if n)
    r.add("no email sent twice", not twice and not double_archived,
          f"{total} messages at the server for {len(counts)} markers; {len(twice)} markers twice; "
          f"{len(double_archived)} archived twice", twice + double_archived)
    r.add("no email approved-and-lost", not lost and not bad and not notapproved,
          f"{len(approved)} approved: {sent} sent (each exactly 1 at the server), "
          f"{len(unknown)} outcome unknown ({unk_sent} of them did arrive), {len(failed)} failed/refused; "
          f"{len(lost)} lost or stuck, {len(bad)} count mismatches, {len(notapproved)} sent without approval "
          f"({len(aborted)} approvals aborted by ENOSPC etc. before approval)",
          lost + bad + notapproved)
    r.add("approvals failed (not outcome unknown)", None, f"{len(failed)}", failed)
    r.add("no half approval sent", not truncated, f"{len(truncated)} messages without their last line", truncated)


def check_records(c: Chaos, r: Results) -> None:
    """Ledgers and the audit log: a write cut short (ENOSPC) must not swallow the record
    written after it (a fragment glued to the next record makes both unreadable)."""
    glued, fragments, audit_bad = [], 0, []
    for path, start in ((c.vault / ".ai-employee" / "approvals.ledger", '{"record"'),
                        (c.vault / ".ai-employee" / "filesystem.ledger", '{"kind"')):
        try:
            lines = path.read_bytes().decode("utf-8", "replace").split("\n")
        except OSError:
            continue
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                json.loads(line)
                continue
            except ValueError:
                pass
            if i == len(lines) - 1:
                continue  # a torn last line (the next start cuts or skips it)
            fragments += 1
            if line.find(start, 1) > 0:
                glued.append(f"{path.name} line {i + 1}: a record glued to a fragment: {line[:120]}…")
    for p in sorted((c.vault / "Logs").glob("*.json")):
        for i, line in enumerate(p.read_bytes().decode("utf-8", "replace").split("\n")):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                audit_bad.append(f"Logs/{p.name} line {i + 1}: not JSON: {line[:120]}…")
    r.add("ledgers keep every record", not glued,
          f"{len(glued)} records glued to a cut-off write ({fragments} fragment lines in all)", glued)
    r.add("audit log lines are JSON", not audit_bad, f"{len(audit_bad)} unreadable lines", audit_bad)


def check_unknown_outcomes(c: Chaos, r: Results) -> None:
    """'Outcome unknown' only for an attempt whose handler stopped: never for one the same
    handler process saw accepted (its log says `NAME: sent:`, and no handler started
    before the outcome-unknown line). Starts are taken from the handler's own `watching`
    line and, since that line is lost when the disk is full, from the supervisor's
    console (on the real disk; whole seconds)."""
    logs = c.vault / "Logs"
    files = sorted(logs.glob("approvals.log.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    files.append(logs / "approvals.log")

    def sec(hms: str) -> float:
        h, m, rest = hms.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest)

    starts = []
    try:
        console = (c.work / "supervisor.console.log").read_text("utf-8", "replace")
    except OSError:
        console = ""
    for m in re.finditer(r"^(\d\d:\d\d:\d\d) approvals: (?:re)?started ", console, re.M):
        starts.append(sec(m.group(1)))
    gen, sent_in, wrong, checked, watching = 0, {}, [], 0, []
    pat = re.compile(r"^\S+ (\S+) (.+?): (sent|outcome_unknown): ")
    for p in files:
        try:
            text = p.read_text("utf-8", "replace")
        except OSError:
            continue
        for line in text.split("\n"):
            if " watching " in line:
                gen += 1
                try:
                    watching.append(sec(line.split(" ")[1]))
                except (IndexError, ValueError):
                    pass
                continue
            m = pat.match(line)
            if not m:
                continue
            t, name, what = sec(m.group(1)), m.group(2), m.group(3)
            if what == "sent":
                sent_in[name] = (gen, t, m.group(1)[:12])
                continue
            checked += 1
            if name not in sent_in or sent_in[name][0] != gen:
                continue
            t_sent = sent_in[name][1]
            # A console start in the second of the send may be the start before it (when
            # its `watching` line is there, before the send).
            same = any(int(w) == int(t_sent) and w <= t_sent for w in watching)
            if any(int(t_sent) < s0 <= t + 1 or (s0 == int(t_sent) and not same) for s0 in starts):
                continue  # a handler started in between (its `watching` line was lost)
            wrong.append(f"{name}: the handler logged the server's acceptance at {sent_in[name][2]}, "
                         f"then at {m.group(1)[:12]} outcome unknown, without a restart in between")
    r.add("outcome unknown only after a stop", not wrong,
          f"{checked} outcome-unknown lines read in the logs, {len(wrong)} for a send the same "
          "handler saw accepted", wrong)


def check_flat(c: Chaos, r: Results, warmup: float) -> None:
    """Per supervisor lifetime, after `warmup`: the smallest value in the first and in the
    last minute (a quarter of the lifetime if shorter). The smallest, because VmRSS counts
    the code pages of whatever ran last, which the supervisor drops after 10 s idle; a
    leak raises the floor, activity only the peaks."""
    rows, fails = [], []
    longest = None
    for gen, s in sorted(c.samples.items()):
        s = [x for x in s if x[0] >= warmup]
        if len(s) < 5:
            continue
        span = s[-1][0] - s[0][0]
        win = min(60.0, span / 4)
        head = [x for x in s if x[0] <= s[0][0] + win]
        tail = [x for x in s if x[0] >= s[-1][0] - win]
        first = [min(x[i] for x in head) for i in (1, 2, 3)]
        last = [min(x[i] for x in tail) for i in (1, 2, 3)]
        mx = [max(x[i] for x in s) for i in (1, 2, 3)]
        line = (f"supervisor #{gen}: {span:.0f}s sampled; RSS first/last/max {first[0] / 1024:.1f}/"
                f"{last[0] / 1024:.1f}/{mx[0] / 1024:.1f} MiB (anon {first[1] / 1024:.1f}/{last[1] / 1024:.1f}/"
                f"{mx[1] / 1024:.1f}); fds first/last/max {first[2]}/{last[2]}/{mx[2]}")
        rows.append(line)
        grew_rss = any(last[i] > first[i] * 1.2 and last[i] - first[i] > 2048 for i in (0, 1))
        grew_fds = last[2] > first[2] * 1.2 and last[2] - first[2] > 4
        if grew_rss or grew_fds:
            fails.append(line)
        if longest is None or span > longest[0]:
            longest = (span, line)
    if longest is None:
        r.add("supervisor RSS and fds flat", None, "no supervisor lived long enough to measure", rows)
        return
    r.add("supervisor RSS and fds flat", not fails,
          f"longest: {longest[1]}; {len(fails)} of {len(rows)} lifetimes grew >20% and >2 MiB "
          "(RSS or anon; or >4 fds)", rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "ai-employee"))
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--fs-size", type=int, default=64, help="the vault's file system, MiB")
    ap.add_argument("--drop-every", type=float, default=2.0, help="mean seconds between drops")
    ap.add_argument("--approval-every", type=float, default=3.0)
    ap.add_argument("--kill-every", type=float, default=20.0, help="mean seconds between SIGKILLs of each child")
    ap.add_argument("--supervisor-every", type=float, default=120.0)
    ap.add_argument("--supervisor-share", type=float, default=0.5,
                    help="supervisor SIGKILLs happen in this first share of the run")
    ap.add_argument("--disk-every", type=float, default=45.0, help="mean seconds between disk events")
    ap.add_argument("--smtp-delay-ms", type=float, default=300.0,
                    help="the SMTP server waits up to this before accepting (widens the kill window)")
    ap.add_argument("--drain", type=float, default=240.0, help="seconds allowed to drain at the end")
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (a vault copy is kept on failure anyway)")
    ap.add_argument("--nice", action="store_true", help="run everything under nice 10")
    ap.add_argument("--no-agent", dest="agent", action="store_false",
                    help="without the task loop (the table of the runs before it was added)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if os.geteuid() != 0:
        print("chaos.py needs root (it mounts a tmpfs and a loop device)", file=sys.stderr)
        return 2
    for tool in ("losetup", "mkfs.ext4", "fsfreeze", "mount", "umount"):
        if shutil.which(tool) is None:
            print(f"chaos.py needs {tool}", file=sys.stderr)
            return 2
    if args.nice:
        os.nice(10)
    if args.build:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    if not Path(args.bin).is_file():
        print(f"{args.bin}: not found (cargo build --release, or --build)", file=sys.stderr)
        return 2

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip or a.startswith("--seed"):
            skip = a == "--seed"
            continue
        argv.append(a)
    cmd = "tests/soak/chaos.py " + " ".join(argv)
    log(f"chaos run: {args.minutes:g} min, seed {args.seed} "
        f"(reproduce the schedule with --seed {args.seed})")
    c = Chaos(args)
    c.rng_keeper = random.Random(c.rng.getrandbits(64))
    results = Results()
    code = 0
    try:
        c.setup()
        c.t0 = time.monotonic()
        c.start_supervisor()
        c.keeper = threading.Thread(target=c.keeper_loop, daemon=True)
        c.keeper.start()
        threading.Thread(target=c.sampler, daemon=True).start()
        disk = threading.Thread(target=c.disk_loop, args=(random.Random(c.rng.getrandbits(64)),), daemon=True)
        disk.start()
        c.chaos_loop()
        log("chaos over: waiting for the disk, the writers and the vault to settle")
        c.stop_chaos.set()
        disk.join(60)
        for f in list(c.futures):
            try:
                f.result(120)
            except Exception:
                c.errors.append("writer: " + traceback.format_exc())
        drained, why = c.drain(args.drain)
        log("drained" if drained else f"drain timed out after {args.drain:.0f}s: {why}")
        rc, took = c.stop_supervisor()
        time.sleep(1.0)  # the guardian and the children had stop_timeout; give stragglers a beat
        orphans = c.ours_running()
        zombies_end = [f"pid {pid} parent {i['ppid']}" for pid, i in proc_table().items()
                       if i["state"] == "Z" and i["ppid"] == os.getpid()]

        results.add("vault drained after chaos", drained, why or "every drop has a note, Approved/ empty")
        check_tasks(c, results)
        check_email(c, results)
        check_unknown_outcomes(c, results)
        check_records(c, results)
        results.add("no zombie", not c.zombies_persistent and not zombies_end,
                    f"{len(c.zombies_persistent)} defunct children of ours for >2 s outside stalls, "
                    f"{c.zombies_in_stall} during/just after a stall (info), {len(zombies_end)} at the end",
                    c.zombies_persistent + zombies_end)
        results.add("no orphan after stop", not orphans,
                    f"{len(orphans)} processes of our binary left after the supervisor exited", orphans)
        results.add("clean stop", rc == 0, f"SIGTERM -> exit {rc} in {took:.1f}s")
        check_flat(c, results, args.warmup)
        results.add("supervisor exits", not c.errors,
                    f"{len(c.incarnations)} lifetimes, {sum(1 for i in c.incarnations if i['killed'])} "
                    f"SIGKILLed by us; {len(c.errors)} unexpected events", c.errors)
        results.add("one watcher of each kind", None,
                    f"max children at once: filesystem {c.max_same_watcher['filesystem']}, approvals "
                    f"{c.max_same_watcher['approvals']}, task loop {c.max_same_watcher['agent']}; "
                    f"{len(c.dup_watchers)} samples with two",
                    c.dup_watchers)
        results.add("guardian restarted after SIGKILL", None,
                    f"{len(c.guardian_gaps)} gaps, longest {max(c.guardian_gaps, default=0):.0f}s")
        probes = c.stall_probes
        died = [p for p in probes if p["died"] is not None]
        restarted = sorted(p["restarted"] for p in died if p["restarted"] is not None)
        reaped = [p for p in died if p["reaped"] is not None]
        results.add("restart while the disk is frozen", None,
                    f"{len(probes)} watchers SIGKILLed during a freeze: {len(died)} died at once, "
                    f"{len(reaped)} reaped and {len(restarted)} restarted before the thaw"
                    + (f" (median {restarted[len(restarted) // 2] * 1000:.0f} ms)" if restarted else "")
                    + f"; {len(died) - len(restarted)} waited for the thaw",
                    [f"{p['what']}: died {p['died']}, reaped {p['reaped']}, restarted {p['restarted']} "
                     f"(s after the kill; the freeze had {p['window']:.1f}s left)" for p in died])
        fills = [f for f in c.fills if f[1] is not None]
        stalls = [s for s in c.stalls if s[1] is not None]
        ev = ", ".join(f"{k} {v}" for k, v in sorted(c.events.items()))
        results.add("chaos applied", None,
                    f"{ev}; ENOSPC for {sum(f[1] - f[0] for f in fills):.0f}s in {len(fills)} phases; "
                    f"stalled {sum(s[1] - s[0] for s in stalls):.0f}s in {len(stalls)} freezes")
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except SystemExit as e:
        log(f"set-up failed: {e}")
        code = 2
    except Exception:
        traceback.print_exc()
        code = 2
    finally:
        subprocess.run(["fsfreeze", "-u", str(c.mnt)], capture_output=True)
        keep = args.keep or results.failed() or code != 0
        if keep and c.mounted:
            try:
                shutil.copytree(c.vault, c.work / "vault-copy", symlinks=True,
                                ignore=shutil.ignore_patterns("*.sock"))
            except Exception as e:
                log(f"could not copy the vault: {e}")
        c.cleanup()
        if not keep:
            shutil.rmtree(c.work, ignore_errors=True)

    if results.rows:
        print()
        print(f"Chaos run: {args.minutes:g} min, seed {args.seed}, `{cmd.strip()} --seed {args.seed}`")
        print(results.table())
        if results.details:
            print("\nDetails:")
            print("\n".join(results.details))
        if keep:
            print(f"\nkept: {c.work} (vault copy in vault-copy/, supervisor console in supervisor.console.log)")
    if code:
        return code
    return 1 if results.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
