"""Fixtures for the arcade-usage tests: trackers that spawn real senders, and their cleanup."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arcade_usage import CommandTracker
from helpers import sender_pids, wait_until

CLI_VERSION = "9.9.9"


def _children(*, exited: bool) -> list[int]:
    """This process's children (Linux /proc): exited ones waiting to be reaped, or live ones.

    A sender started by an in-process `capture` is a live child from the moment it is
    forked, even before its command line shows up in /proc.
    """
    if not os.path.isdir("/proc"):
        return []  # elsewhere an exited child waits for the test process's own end
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and (fields[0] == "Z") == exited:
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def senders_finish(work_dir: Path) -> Iterator[None]:
    """After each test: every sender working for this test has exited, and ours are reaped.

    Senders started in-process by `UsageService.capture` are children of the test
    process; senders started by a `arcade` subprocess belong to init. Either way no
    sender outlives its test (it hard-exits at the end of its life, so the wait is bounded).
    """
    yield
    try:
        wait_until(lambda: not sender_pids(work_dir), timeout=12)
    finally:
        for pid in _children(exited=True):
            with contextlib.suppress(ChildProcessError):  # reaped meanwhile by its reaper
                os.waitpid(pid, 0)


@pytest.fixture
def track() -> Callable[..., None]:
    """Run one tracked command as a fresh process would (a new tracker, nothing cached)."""

    def run(command_name: str, success: bool = True, **kwargs: Any) -> None:
        CommandTracker(cli_version=CLI_VERSION).track_command_execution(
            command_name, success, **kwargs
        )

    return run


@pytest.fixture
def usage_data(arcade_dir: Path) -> Callable[[], dict[str, Any]]:
    """What `usage.json` holds right now."""

    def read() -> dict[str, Any]:
        data: dict[str, Any] = json.loads((arcade_dir / "usage.json").read_bytes())
        return data

    return read


@pytest.fixture
def child_pids() -> Callable[[], list[int]]:
    """Live children of the test process (see `_children`)."""
    return lambda: _children(exited=False)
