"""Fixtures for the `arcade` end-to-end tests: known accounts, a machine past its first run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog


@dataclass(frozen=True)
class Account:
    key: str
    principal: str
    email: str


@pytest.fixture
def account_a(cloud: FakeCloud) -> Account:
    """An account the fake Arcade Cloud knows."""
    account = Account("arc_key_alpha_0123456789", "prn_alpha", "alpha@example.com")
    cloud.add_account(account.key, account.principal, account.email)
    return account


@pytest.fixture
def account_b(cloud: FakeCloud) -> Account:
    """A second account, for switching."""
    account = Account("arc_key_bravo_9876543210", "prn_bravo", "bravo@example.com")
    cloud.add_account(account.key, account.principal, account.email)
    return account


@pytest.fixture
def first_run(posthog: FakePostHog, arcade_dir: Path) -> str:
    """Run one tracked command, so the one-time notice is spent; returns the anon id it used."""
    result = run_arcade("usage", "status")
    assert result.returncode == 0, result.stderr
    event = wait_until(posthog.command_events)[0]
    assert event["distinct_id"] == json.loads((arcade_dir / "usage.json").read_text())["anon_id"]
    wait_until(lambda: not sender_pids(arcade_dir.parent))  # its sender has finished too
    return str(event["distinct_id"])
