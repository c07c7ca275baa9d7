"""The public face of arcade_usage: one name table, lazy loading, a lean hand-over path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arcade_usage import (
    DeliveryError,
    MessageRefusedError,
    UsageError,
    exceptions,
)

# What a sender that finds another accepting may import before it leaves, beyond what
# `python -s -m <module>` itself loads: the package, the protocol, the file names of
# `.arcade`, and the watchdog. No json, no pathlib, no posthog.
LEAVING_ALLOWED = {
    "__future__",
    "arcade_usage",
    "arcade_usage._sender",
    "arcade_usage._consent",
    "arcade_usage._env",
    "arcade_usage._outbox",
    "arcade_identity",
    "arcade_identity._paths",
    "arcade_identity.exceptions",
    "faulthandler",
    "fcntl",
}


def test_every_error_has_the_package_root_and_none_is_an_os_error() -> None:
    errors = [
        v for v in vars(exceptions).values() if isinstance(v, type) and issubclass(v, Exception)
    ]
    assert {DeliveryError, MessageRefusedError, UsageError} <= set(errors)
    for error in errors:
        assert issubclass(error, UsageError)
        assert not issubclass(error, OSError), error  # `except OSError` must not swallow it


def _modules_after(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout)
    return modules


def test_importing_the_package_loads_none_of_its_modules() -> None:
    loaded = _modules_after("import arcade_usage")
    assert [m for m in loaded if m.startswith("arcade_usage.")] == []
    assert "arcade_identity" not in loaded


def _imported(args: list[str], cwd: Path, env: dict[str, str]) -> set[str]:
    """Modules a fresh `python -s -X importtime` imported, by their importtime lines."""
    result = subprocess.run(
        [sys.executable, "-s", "-X", "importtime", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }


@pytest.mark.timeout(60)
def test_a_sender_that_finds_another_accepting_leaves_at_once_importing_little(
    arcade_dir: Path, tmp_path: Path
) -> None:
    """(On Windows a capture cannot hand its lock over; a sender run by hand neither.)"""
    outbox = arcade_dir / "usage_outbox"
    outbox.mkdir(parents=True, mode=0o700)
    (outbox / "000000000001-0000000000-ab.json").write_text("{}")
    fcntl = pytest.importorskip("fcntl")
    lock = os.open(outbox / ".accept.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {**os.environ, "ARCADE_USAGE_OUTBOX": str(outbox)}
        baseline = _imported(["-m", "__hello__"], tmp_path, env)
        leaving = _imported(["-m", "arcade_usage"], tmp_path, env)
    finally:
        os.close(lock)

    assert leaving - baseline - {"__hello__"} <= LEAVING_ALLOWED
    # It left the entry to the sender accepting (a bad one: that sender drops it).
    assert [p.name for p in outbox.iterdir() if p.suffix == ".json"] == [
        "000000000001-0000000000-ab.json"
    ]
