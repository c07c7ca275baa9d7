"""Fixtures for the arcade-identity tests: fresh Python processes and a refusing port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from arcade_identity import _lookup

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

RunPython = Callable[..., dict[str, Any]]


@pytest.fixture(autouse=True)
def _fresh_lookup_cache() -> Iterator[None]:
    """Each test is its own "process" as far as the once-per-process lookup is concerned."""
    _lookup._answers.clear()
    yield
    _lookup._answers.clear()


@pytest.fixture
def run_python() -> RunPython:
    """Run a script in a fresh interpreter (this test's environment); return what it emitted."""

    def run(script: str, env: dict[str, str] | None = None, timeout: float = 30) -> dict[str, Any]:
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

    return run


@pytest.fixture
def refusing_port() -> Iterator[socket.socket]:
    """A loopback socket that is bound but not listening: connections to it are refused.

    Calling `.listen()` on it later turns the same address into one that accepts.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()
