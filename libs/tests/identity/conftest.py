"""Fixtures for the arcade-identity tests: fresh Python processes and a refusing port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from arcade_identity import _lookup
from identity import _helpers
from identity._helpers import RunPython


@pytest.fixture(autouse=True)
def _fresh_lookup_cache() -> Iterator[None]:
    """Each test is its own "process" as far as the once-per-process lookup is concerned."""
    _lookup._answers.clear()
    yield
    _lookup._answers.clear()


@pytest.fixture
def run_python() -> RunPython:
    """Run a script in a fresh interpreter (this test's environment); return what it emitted."""
    return _helpers.run_python


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
