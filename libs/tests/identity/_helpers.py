"""Helpers for the arcade-identity tests: fresh interpreters, and a pool of workers that
start a transition together behind a barrier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers import line_workers

RunPython = Callable[..., dict[str, Any]]

LOOKUP_TIMEOUT = 60.0
"""The workers' lookup budget: a loaded machine must not turn the race into a timeout."""

# Prepended to every script run in a fresh process: `heavy()` names the modules a
# steady-state command must not have imported, `emit()` reports back as one JSON line.
PRELUDE = """\
import json, sys, time
from arcade_identity import UsageIdentity
HEAVY = ("yaml", "httpx", "filelock", "requests", "posthog")
def heavy():
    return sorted(m for m in HEAVY if m in sys.modules)
def emit(**values):
    print(json.dumps(values))
"""

# A worker imports everything up front (so that the race is on the file, not on import
# speed) and says "ready". For each job it is sent it does what a command does before
# its transition (load the identity, find the principal), says "loaded", waits for
# "go", then makes the transition and reports. What the callbacks did is appended to
# shared files with O_APPEND, one line per call, so the parent counts every call.
WORKER = """\
import json, os, sys, time
import filelock
from arcade_identity import UsageIdentity

def append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)

print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    identity = UsageIdentity(job["work_dir"], lookup_timeout=job["lookup_timeout"])
    identity.load_or_create()
    principal = identity.get_principal_id()
    print("loaded", flush=True)
    assert sys.stdin.readline() == "go\\n"

    def alias(previous_id, distinct_id):
        time.sleep(job["alias_seconds"])  # what a request to PostHog would take
        append(job["aliases"], f"{previous_id} {distinct_id} {os.getpid()}")
        return True

    if job["op"] == "link":  # what the tracker does on finding credentials
        outcome = identity.link_principal(principal, alias, timeout=30)
    elif job["op"] == "end":  # what the tracker does after `arcade logout`
        outcome = identity.end_session()
        if outcome is not None:
            append(job["logouts"], f"{outcome} {os.getpid()}")
    else:
        raise SystemExit(f"unknown op {job['op']!r}")
    print(json.dumps({
        "pid": os.getpid(),
        "principal": principal,
        "outcome": outcome,
        "anon_id": identity.anon_id,
        "linked": identity.linked_principal_id,
    }), flush=True)
"""


def run_python(
    script: str, env: dict[str, str] | None = None, timeout: float = 30
) -> dict[str, Any]:
    """Run `PRELUDE + script` in a fresh interpreter (this test's environment).

    Returns what the script emitted last; fails on a non-zero exit or a traceback.
    """
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    value: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return value


class WorkerPool:
    """Processes that each run one transition per round, released together."""

    def __init__(self, workers: list[subprocess.Popen[str]]) -> None:
        self.workers = workers

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def round(self, work_dir: Path, op: str, alias_seconds: float = 0.02) -> list[dict[str, Any]]:
        """Every worker prepares `op` on `work_dir`; then all are told "go" at once.

        Returns each worker's report, in pool order.
        """
        job = json.dumps(
            {
                "work_dir": os.fspath(work_dir),
                "op": op,
                "alias_seconds": alias_seconds,
                "lookup_timeout": LOOKUP_TIMEOUT,
                "aliases": os.fspath(work_dir / "aliases.log"),
                "logouts": os.fspath(work_dir / "logouts.log"),
            }
        )
        for worker in self.workers:
            self._send(worker, job)
        for worker in self.workers:  # the barrier: all are loaded and blocked on stdin
            assert self._receive(worker) == "loaded"
        for worker in self.workers:
            self._send(worker, "go")
        return [json.loads(self._receive(worker)) for worker in self.workers]

    @staticmethod
    def _send(worker: subprocess.Popen[str], line: str) -> None:
        assert worker.stdin is not None
        worker.stdin.write(line + "\n")
        worker.stdin.flush()

    @staticmethod
    def _receive(worker: subprocess.Popen[str]) -> str:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line, f"worker {worker.pid} exited (code {worker.poll()})"
        return line.strip()


@contextmanager
def worker_pool(size: int) -> Iterator[WorkerPool]:
    """`size` workers, all up and ready; every one reaped on the way out."""
    with line_workers(WORKER, size) as workers:
        for worker in workers:
            assert WorkerPool._receive(worker) == "ready"
        yield WorkerPool(workers)


def lines(path: Path) -> list[str]:
    """The lines appended to `path`, none if it was never written."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
