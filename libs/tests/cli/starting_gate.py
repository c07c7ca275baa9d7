"""Start many real `arcade` processes at the same instant, for race tests.

Each process begins as a small Python launcher that loads `arcade` and the libraries its
commands load as they go (httpx, pyyaml, posthog), says it is ready on one pipe and then
blocks reading another; when every launcher is ready, the test closes that pipe's write
end, so they all see end-of-file together and each runs `arcade ARGS`, as the `arcade`
script does. Python's start-up, the imports and the launchers' own scheduling are thus
out of the way before the race begins: twelve processes on two CPUs meet at the
identity's lock, not at the 2 s lookup budget that importing inside it would eat up on
a slow machine, and what they do then is what a user's shell would have run.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from helpers import ARCADE

LAUNCHER = """\
import os, sys
ready, gate = int(sys.argv[1]), int(sys.argv[2])
del sys.path[0]  # as in the `arcade` script: nothing from the working directory
import httpx, posthog.request, yaml, arcade_cli.main
os.write(ready, b".")
os.close(ready)
while os.read(gate, 1):
    pass
os.close(gate)
sys.argv = sys.argv[3:]
arcade_cli.main.main()
"""


@dataclass(frozen=True)
class Finished:
    """What one `arcade` run left for its user: exit code and both streams."""

    returncode: int
    stdout: str
    stderr: str


def run_together(
    commands: Sequence[Sequence[str]], env: dict[str, str], timeout: float = 60
) -> list[Finished]:
    """Run `arcade` once per argument list, all released at once; their results, in order.

    `env` is the whole environment of every process. Every process is reaped
    before this returns, whatever happened (killed first if still running).
    """
    ready_read, ready_write = os.pipe()
    gate_read, gate_write = os.pipe()
    child_ends = [ready_write, gate_read]
    our_ends = [ready_read, gate_write]
    procs: list[subprocess.Popen[str]] = []
    deadline = time.monotonic() + timeout
    try:
        for args in commands:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        LAUNCHER,
                        str(ready_write),
                        str(gate_read),
                        str(ARCADE),
                        *args,
                    ],
                    pass_fds=(ready_write, gate_read),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        _close(child_ends)
        _wait_ready(ready_read, len(procs), deadline)
        _close(our_ends)  # end-of-file on the gate: every launcher goes at once
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            results.append(Finished(proc.returncode, stdout, stderr))
        return results
    finally:
        # Killed before the gate is closed, so a launcher never goes on after a failure.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        _close(child_ends + our_ends)
        for proc in procs:
            proc.communicate()


def _wait_ready(ready_read: int, expected: int, deadline: float) -> None:
    """Block until `expected` launchers have written their byte, or fail at `deadline`."""
    seen = 0
    while seen < expected:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([ready_read], [], [], max(0.0, left))
        if not readable:
            raise AssertionError(f"only {seen} of {expected} launchers were ready in time")
        chunk = os.read(ready_read, expected - seen)
        if not chunk:
            raise AssertionError(f"only {seen} of {expected} launchers started")
        seen += len(chunk)


def _close(fds: list[int]) -> None:
    """Close each descriptor still open in `fds`, and forget it."""
    while fds:
        os.close(fds.pop())
