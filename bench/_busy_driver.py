"""Busy servers: processes of many threads tracking tool calls as fast as they go.

Run inside a side's venv as `python -c <this file's text> SIDE SHAPE N THREADS CALLS`
(passed as text so the bench directory is not on its `sys.path`), in the home as its
working directory:

- SIDE: `ours` (arcade-usage's `ServerTracker`), `posthog` (posthog-python's own
  client, one `capture` per event, `shutdown()` at the end of each process), or
  `none` (the same loops tracking nothing: the baseline whose CPU is subtracted).
- SHAPE `processes`: N server processes, forked before anything is imported (as
  independent as N started ones), each tracking its start, then THREADS threads x
  CALLS tool calls, back to back, released together.
- SHAPE `prefork`: one server (a gunicorn-style master) tracks its start, then its
  THREADS threads make CALLS calls each, back to back, while the main thread forks N
  workers, one after another; each worker tracks THREADS x CALLS calls from threads of
  its own, with the tracker it inherited, and exits. A worker not done within 30 s is
  hung: it is killed.

Every process writes `report-<n>.json` in the working directory; the driver prints one
JSON line: `call_ms` (every tool call on its caller's thread, all processes, in ms),
`traffic_s` (the longest process's first call to last return), `events` (how many it
tracked) and `hung` (workers killed). Only the standard library is imported at the top.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

Call = Callable[[], None]
HANG_SECONDS = 30.0


def _nothing() -> None:
    pass


def _ours() -> tuple[Call, Call, Call]:
    tracker = importlib.import_module("arcade_usage").ServerTracker(server_version="1.2.3")

    def start() -> None:
        tracker.track_server_start(transport="http", host="127.0.0.1", port=8000, tool_count=3)

    def call() -> None:
        tracker.track_tool_call(success=True, failure_reason=None)

    return start, call, _nothing


def _posthog() -> tuple[Call, Call, Call]:
    """The client as its README shows it, with the same events and properties a server sends."""
    client = importlib.import_module("posthog").Posthog(
        os.environ["ARCADE_USAGE_POSTHOG_API_KEY"], host=os.environ["ARCADE_USAGE_POSTHOG_HOST"]
    )
    distinct_id = str(uuid.uuid4())
    common: dict[str, Any] = {
        "arcade_mcp_server_version": "1.2.3",
        "runtime_language": "python",
        "runtime_version": platform.python_version(),
        "os_type": platform.system(),
        "os_release": platform.release(),
        "is_ci": False,
        "$process_person_profile": False,
    }

    def start() -> None:
        properties = {**common, "transport": "http", "tool_count": 3}
        client.capture("MCP server started", distinct_id=distinct_id, properties=properties)

    def call() -> None:
        properties = {**common, "is_execution_success": True}
        client.capture("MCP tool called", distinct_id=distinct_id, properties=properties)

    return start, call, client.shutdown


SIDES: dict[str, Callable[[], tuple[Call, Call, Call]]] = {
    "ours": _ours,
    "posthog": _posthog,
    "none": lambda: (_nothing, _nothing, _nothing),
}


def _calls(call: Call, threads: int, calls: int) -> tuple[list[float], float]:
    """THREADS threads x CALLS calls, released together: (each call's ms, first to last s)."""
    barrier = threading.Barrier(threads + 1)
    timings: list[list[float]] = [[] for _ in range(threads)]

    def work(mine: list[float]) -> None:
        barrier.wait()
        for _ in range(calls):
            began = time.perf_counter()
            call()
            mine.append((time.perf_counter() - began) * 1000)

    workers = [threading.Thread(target=work, args=(t,)) for t in timings]
    for worker in workers:
        worker.start()
    barrier.wait()
    first = time.perf_counter()
    for worker in workers:
        worker.join()
    return [ms for mine in timings for ms in mine], time.perf_counter() - first


def _write_report(n: int, call_ms: list[float], traffic_s: float, events: int) -> None:
    with open(f"report-{n}.json", "w") as file:
        json.dump(
            {"call_ms": [round(v, 3) for v in call_ms], "traffic_s": traffic_s, "events": events},
            file,
        )


def _server(side: str, n: int, threads: int, calls: int) -> None:
    """One server process: its start and its calls, then its report; never returns."""
    code = 1
    try:
        start, call, finish = SIDES[side]()
        start()
        call_ms, traffic_s = _calls(call, threads, calls)
        finish()
        _write_report(n, call_ms, traffic_s, 1 + threads * calls)
        code = 0
    finally:
        os._exit(code)


def _wait(pids: list[int], deadline: float) -> int:
    """Wait for every pid until `deadline`; kill the rest. Returns how many were killed."""
    hung = 0
    for pid in pids:
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.005)
    return hung


def processes(side: str, count: int, threads: int, calls: int) -> int:
    pids = []
    for n in range(count):
        pid = os.fork()
        if pid == 0:
            _server(side, n, threads, calls)
        pids.append(pid)
    return _wait(pids, time.monotonic() + 600)


def prefork(side: str, workers: int, threads: int, calls: int) -> int:
    start, call, finish = SIDES[side]()
    start()
    made = [0] * threads
    timings: list[list[float]] = [[] for _ in range(threads)]

    def master_work(t: int) -> None:
        for _ in range(calls):
            began = time.perf_counter()
            call()
            timings[t].append((time.perf_counter() - began) * 1000)
            made[t] += 1

    def worker(n: int) -> None:
        code = 1
        try:
            call_ms, traffic_s = _calls(call, threads, calls)
            finish()
            _write_report(n, call_ms, traffic_s, threads * calls)
            code = 0
        finally:
            os._exit(code)

    first = time.perf_counter()
    masters = [threading.Thread(target=master_work, args=(t,)) for t in range(threads)]
    for thread in masters:
        thread.start()
    while min(made) < 1 and any(t.is_alive() for t in masters):  # every thread at work
        time.sleep(0.0005)
    pids = []
    for n in range(1, workers + 1):
        pid = os.fork()
        if pid == 0:
            worker(n)
        pids.append(pid)
    for thread in masters:
        thread.join()
    traffic_s = time.perf_counter() - first
    hung = _wait(pids, time.monotonic() + HANG_SECONDS)
    finish()
    _write_report(0, [ms for mine in timings for ms in mine], traffic_s, 1 + threads * calls)
    return hung


def main() -> None:
    side, shape = sys.argv[1], sys.argv[2]
    count, threads, calls = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if shape == "processes":
        hung = processes(side, count, threads, calls)
    else:
        hung = prefork(side, count, threads, calls)
    call_ms: list[float] = []
    traffic_s, events = 0.0, 0
    for name in sorted(os.listdir(".")):
        if name.startswith("report-") and name.endswith(".json"):
            with open(name) as file:
                report = json.load(file)
            os.unlink(name)
            call_ms += report["call_ms"]
            traffic_s = max(traffic_s, report["traffic_s"])
            events += report["events"]
    result = {"call_ms": call_ms, "traffic_s": traffic_s, "events": events, "hung": hung}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
