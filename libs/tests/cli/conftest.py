"""Fixtures for the `arcade` tests: accounts, a machine past its first run, no stray sender."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.accounts import ALPHA, BRAVO, Account
from helpers import run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog


@pytest.fixture(autouse=True)
def senders_finish(work_dir: Path) -> Iterator[None]:
    """After each test, every sender an `arcade` run started for it has exited.

    Each hard-exits at the end of its life, so the wait is bounded; a test that leaves one
    running would hand its events, or its lock, to the next test's fakes.
    """
    yield
    wait_until(lambda: not sender_pids(work_dir), timeout=12)


@pytest.fixture
def account_a(cloud: FakeCloud) -> Account:
    """An account the fake Arcade Cloud knows."""
    cloud.add_account(ALPHA.key, ALPHA.principal, ALPHA.email)
    return ALPHA


@pytest.fixture
def account_b(cloud: FakeCloud) -> Account:
    """A second account, for switching."""
    cloud.add_account(BRAVO.key, BRAVO.principal, BRAVO.email)
    return BRAVO


@pytest.fixture
def first_run(posthog: FakePostHog, arcade_dir: Path) -> str:
    """Run one tracked command, so the one-time notice is spent; returns the anon id it used."""
    result = run_arcade("usage", "status")
    assert result.returncode == 0, result.stderr
    event = wait_until(posthog.command_events)[0]
    assert event["distinct_id"] == json.loads((arcade_dir / "usage.json").read_text())["anon_id"]
    wait_until(lambda: not sender_pids(arcade_dir))  # its sender has finished too
    return str(event["distinct_id"])
