"""CPU time and peak memory of the detached senders, for one event and for a burst of 50.

Linux only. This process becomes a child subreaper, so the detached senders a
command leaves behind are reparented to it; it then collects every one with
`os.wait4` and adds up their resource usage. A loopback server stands in for
PostHog. Run with compiled bytecode, as an installed package would:

    .venv/bin/python -m compileall -q libs/*/src
    .venv/bin/python bench/sender_cost.py [--runs 5]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PR_SET_CHILD_SUBREAPER = 36

# The "command": hands N events to UsageService and exits at once, as the CLI does.
# Its reaping (the reaper threads, and subprocess's own clean-up of dropped Popen
# objects) is switched off so that every sender, finished or not, is reparented to
# this process and collected here with its own resource usage.
COMMAND = """
import os, subprocess, sys, types
import arcade_usage._spawn as spawn
subprocess._cleanup = lambda: None
from arcade_usage import UsageService
spawn._thread = types.SimpleNamespace(start_new_thread=lambda *args: None)
service = UsageService()
for i in range(int(sys.argv[1])):
    service.capture("CLI execution succeeded", "bench", {"command_name": f"bench.{i}"}, True)
os._exit(0)
"""


class _PostHog(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _PostHog
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        with self.server.lock:
            self.server.received += len(json.loads(body)["batch"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def measure(events: int, server: _PostHog) -> tuple[int, float, int]:
    """(senders, their CPU seconds summed, the largest peak RSS in KiB) for one command."""
    work_dir = tempfile.mkdtemp(prefix="arcade-sender-cost-")
    env = {
        **os.environ,
        "ARCADE_WORK_DIR": work_dir,
        "ARCADE_USAGE_POSTHOG_HOST": f"http://127.0.0.1:{server.server_address[1]}",
        "ARCADE_USAGE_POSTHOG_API_KEY": "phc_bench",
    }
    for name in ("ARCADE_USAGE_TRACKING", "DO_NOT_TRACK", "ARCADE_USAGE_DEBUG"):
        env.pop(name, None)
    before = server.received
    command = subprocess.Popen([sys.executable, "-c", COMMAND, str(events)], env=env)
    senders, cpu, peak = 0, 0.0, 0
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if pid == command.pid:
            command.returncode = os.waitstatus_to_exitcode(status)
            continue
        senders += 1
        cpu += usage.ru_utime + usage.ru_stime
        peak = max(peak, usage.ru_maxrss)
    if command.returncode != 0:
        raise SystemExit(f"the command failed with exit code {command.returncode}")
    if server.received - before != events:
        raise SystemExit(f"{server.received - before} of {events} events reached the server")
    return senders, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per scenario")
    args = parser.parse_args()
    _become_subreaper()
    server = _PostHog()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, medians")
    print(
        f"{'scenario':<12} {'senders':>8} {'CPU s (all)':>12} {'CPU s/sender':>13} {'peak RSS':>10}"
    )
    for events in (1, 50):
        runs = [measure(events, server) for _ in range(args.runs)]
        senders = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        peak = statistics.median(r[2] for r in runs)
        label = "1 event" if events == 1 else f"burst of {events}"
        print(
            f"{label:<12} {senders:>8.0f} {cpu:>12.3f} {cpu / senders:>13.3f} "
            f"{peak / 1024:>8.1f} MB"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
