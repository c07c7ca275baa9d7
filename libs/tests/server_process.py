"""A server-like process for the acceptance tests: it tracks as told and reports what it did.

Run as `python server_process.py MODE ARGS...`; it ends with one JSON line on stdout.

- `paced EVENTS PAUSE LABEL`: a server start, then EVENTS - 1 tool calls, PAUSE seconds
  apart, each a failure whose reason is `LABEL <i>` (so every event can be told apart at
  PostHog). Reports `senders`: how many sender processes it started, counted by an audit
  hook (every process start in Python raises an audit event before it happens: a
  `subprocess.Popen`, `os.posix_spawn` or `os.spawn` naming `arcade_usage`, or an
  `os.fork`, which this mode never does itself).
- `prefork CHILDREN THREADS CHILD_THREADS CALLS LABEL`: a pre-fork server, as gunicorn
  runs one. The parent tracks its start, then THREADS threads track calls
  (`LABEL parent <t> <i>`) back to back while the main thread forks CHILDREN children,
  one after another; each child tracks CHILD_THREADS x CALLS calls
  (`LABEL child <k> <t> <i>`) from threads of its own, with the tracker it inherited,
  and exits. A child that has not exited within 15 s is hung: it is killed. Reports
  `hung` (how many), `statuses` (the others' exit codes) and `parent_calls` (how many
  calls each of the parent's threads made).
- `start-then-kill DELAY`: the process makes itself a child subreaper, tracks its start,
  waits DELAY seconds, then SIGKILLs every process it started and their descendants (a
  container stopped at once), reports `killed` and exits at once.

`track_command` runs one command of another Arcade tool (a `CommandTracker`) in a process
of its own, as a user's shell would.

`ROUNDS` is how many trials the randomised tests run: `ARCADE_TEST_ROUNDS` (default 3),
read when this module is imported (the tests' autouse fixture clears `ARCADE_*` after).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from arcade_usage import ServerTracker

ROUNDS = int(os.environ.get("ARCADE_TEST_ROUNDS", "3"))
SCRIPT = Path(__file__).resolve()
HANG_DEADLINE = 15.0
PR_SET_CHILD_SUBREAPER = 36

started: list[str] = []


def _count_starts(event: str, args: tuple[Any, ...]) -> None:
    if event == "os.fork":
        started.append(event)
    elif event in ("subprocess.Popen", "os.posix_spawn", "os.spawn"):
        argv = args[2] if event == "os.spawn" else args[1]
        if "arcade_usage" in [str(a) for a in (argv or ())]:
            started.append(event)


TRACK = """\
import sys
from arcade_usage import CommandTracker
tracker = CommandTracker(cli_version="9.9.9", cli_name="acceptance")
tracker.track_command_execution(sys.argv[1], True)
"""


def track_command(name: str, env: dict[str, str] | None = None) -> float:
    """One command tracked as `name` in a process of its own (this test's environment plus
    `env`); returns when it ended (monotonic), the moment "no later command" counts from."""
    result = subprocess.run(
        [sys.executable, "-c", TRACK, name],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return time.monotonic()


def command(mode: str, *args: object) -> list[str]:
    """The command line that runs this script in MODE."""
    return [sys.executable, "-W", "ignore", str(SCRIPT), mode, *map(str, args)]


def run(mode: str, *args: object, timeout: float = 120) -> dict[str, Any]:
    """Run this script in MODE (in the test's environment) and return its report."""
    result = subprocess.run(
        command(mode, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # tracking wrote nothing to stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def _report(**values: Any) -> None:
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


def paced(events: int, pause: float, label: str) -> None:
    sys.addaudithook(_count_starts)
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=3)
    for i in range(events - 1):
        tracker.track_tool_call(success=False, failure_reason=f"{label} {i}")
        time.sleep(pause)
    _report(senders=len(started))


def prefork(children: int, threads: int, child_threads: int, calls: int, label: str) -> None:
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="http", host="127.0.0.1", port=8000, tool_count=3)
    stop = threading.Event()
    forked = threading.Event()
    made = [0] * threads

    def parent_work(t: int) -> None:
        # Back to back while the children are forked (a fork lands mid-call), then at a
        # busy server's pace (not a synchronisation) until they are done.
        while not stop.is_set():
            tracker.track_tool_call(success=False, failure_reason=f"{label} parent {t} {made[t]}")
            made[t] += 1
            if forked.is_set():
                time.sleep(0.005)

    def child_work(k: int, t: int) -> None:
        for i in range(calls):
            tracker.track_tool_call(success=False, failure_reason=f"{label} child {k} {t} {i}")

    def child(k: int) -> None:
        code = 1
        try:
            workers = [
                threading.Thread(target=child_work, args=(k, t)) for t in range(child_threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            code = 0
        finally:
            os._exit(code)

    parents = [threading.Thread(target=parent_work, args=(t,)) for t in range(threads)]
    for thread in parents:
        thread.start()
    deadline = time.monotonic() + 10
    while min(made) < 3 and time.monotonic() < deadline:  # every thread at work
        time.sleep(0.001)
    pids = []
    for k in range(children):
        pid = os.fork()
        if pid == 0:
            child(k)
        pids.append(pid)
        time.sleep(0.02)  # workers are forked one after another, the parent at work meanwhile
    forked.set()
    hung = 0
    statuses = []
    deadline = time.monotonic() + HANG_DEADLINE
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.01)
    stop.set()
    for thread in parents:
        thread.join()
    _report(hung=hung, statuses=statuses, parent_calls=made)


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                found.append(int(entry))
    return found


def start_then_kill(delay: float) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("cannot become a child subreaper")
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=3)
    time.sleep(delay)  # the instant of the kill is the scenario, not a synchronisation
    killed = 0
    # Descendants of a killed process are reparented here: kill until none is left.
    while children := _children():
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{pid}").exists() for pid in children) and (
            time.monotonic() < deadline
        ):
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.001)
    _report(killed=killed)
    os._exit(0)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "paced":
        paced(int(args[0]), float(args[1]), args[2])
    elif mode == "prefork":
        prefork(int(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4])
    elif mode == "start-then-kill":
        start_then_kill(float(args[0]))
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
