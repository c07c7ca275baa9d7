"""A steady-state `arcade` command stays light, shell completion and the notice included."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servers import FakePostHog

HEAVY = ("posthog", "httpx", "yaml", "filelock", "requests")

pytestmark = pytest.mark.timeout(60)


def _imported_by(*args: str) -> set[str]:
    """The top-level modules `arcade ARGS` imports, as `python -X importtime` lists them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "arcade_cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name.split(".")[0])
    assert "typer" in names  # the listing is real
    return names


def test_a_tracked_command_in_the_steady_state_imports_nothing_heavy(
    posthog: FakePostHog, first_run: str
) -> None:
    assert _imported_by("usage", "status").isdisjoint(HEAVY)


def test_help_imports_nothing_heavy(posthog: FakePostHog) -> None:
    assert _imported_by("--help").isdisjoint(HEAVY)


def test_the_first_run_does_load_the_lock_library(posthog: FakePostHog) -> None:
    # The identity is created under a lock: the listing above would see a heavy import.
    assert "filelock" in _imported_by("usage", "status")
