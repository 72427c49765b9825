"""The Celery side of bench/queue.sh: a no-op task on the same Redis as broker.

    celery_noop.py worker URL CONCURRENCY      run a worker (prefork pool)
    celery_noop.py burst URL N LOG             send N tasks as fast as possible, wait until
                                               LOG has N lines; print "<first send ns> <last done ns>"
    celery_noop.py latency URL N LOG           send N tasks one at a time, each after the last
                                               ran; print one latency (send -> task started) in ns per line

The task appends "<CLOCK_REALTIME ns at start> <name>" to the file $NOOP_AGENT_LOG names,
as bench/noop-agent.c does for ours, with one O_APPEND write. Results are ignored (no
result backend), acks late off (Celery's default), prefetch 1 per process.

With CELERY_NOOP_EXEC=PATH in the worker's environment the task instead runs that program
as `PATH -p "Task file: In_Progress/<name>.md"` (subprocess.run, output captured, no
shell): the same no-op agent ours runs, which writes the record line itself. That is the
work each side does per task in the product: start the agent program and take its output.
"""
import os
import subprocess
import sys
import time

from celery import Celery


def make(url):
    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_default_queue="bench",
    )

    agent = os.environ.get("CELERY_NOOP_EXEC")

    @app.task(name="noop")
    def noop(name):
        if agent:
            subprocess.run([agent, "-p", "Task file: In_Progress/%s.md" % name],
                           capture_output=True, check=False)
            return
        line = ("%d %s\n" % (time.time_ns(), name)).encode()
        fd = os.open(os.environ["NOOP_AGENT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    return app, noop


def lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def main():
    cmd, url = sys.argv[1], sys.argv[2]
    app, noop = make(url)
    if cmd == "worker":
        app.worker_main(["worker", "-c", sys.argv[3], "-P", "prefork", "-Q", "bench",
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "-O", "fair", "--loglevel", "WARNING"])
    elif cmd == "burst":
        n, log = int(sys.argv[3]), sys.argv[4]
        t0 = time.time_ns()
        for i in range(n):
            noop.delay("c-%05d" % i)
        deadline = time.monotonic() + 900
        while lines(log) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        print(t0, time.time_ns())
    elif cmd == "latency":
        n, log = int(sys.argv[3]), sys.argv[4]
        for i in range(n):
            before = lines(log)
            t = time.time_ns()
            noop.delay("l-%05d" % i)
            deadline = time.monotonic() + 10
            while lines(log) == before and time.monotonic() < deadline:
                time.sleep(0.0002)
            with open(log, "rb") as f:
                last = f.read().splitlines()[-1].split(b" ")[0]
            print(int(last) - t)


if __name__ == "__main__":
    main()
