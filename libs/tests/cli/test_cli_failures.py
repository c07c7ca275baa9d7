"""Damaged or unusable files: the commands that can still work do, the others fail in one line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from helpers import assert_one_line_error, run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

if TYPE_CHECKING:
    from cli.accounts import Account

pytestmark = pytest.mark.timeout(60)


def assert_nothing_sent(posthog: FakePostHog, work_dir: Path, already: int = 0) -> None:
    """No sender was started: none is alive, none delivered, none queued an event."""
    assert sender_pids(work_dir) == []
    assert len(posthog.events()) == already
    outbox = work_dir / "usage_outbox"
    assert not outbox.exists() or not any(outbox.glob("*.json"))


# -- damaged files -------------------------------------------------------------------------


def test_corrupt_credentials_make_whoami_fail_with_one_line(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    (arcade_dir / "credentials.yaml").write_text("cloud: [unclosed\n")
    result = run_arcade("whoami")
    assert_one_line_error(result, "credentials.yaml", "arcade login")
    assert result.stdout == ""
    failed = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed[0]["properties"]["command_name"] == "whoami"
    assert failed[0]["distinct_id"] == first_run


def test_login_replaces_corrupt_credentials(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    (arcade_dir / "credentials.yaml").write_text("- not\n- a mapping\n")
    result = run_arcade("login", "--api-key", account_a.key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in as {account_a.email}.\n"
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["api"]["key"] == account_a.key


def test_an_unusable_identity_does_not_stop_login_or_whoami(
    posthog: FakePostHog, account_a: Account, work_dir: Path, arcade_dir: Path
) -> None:
    (arcade_dir / "usage.json").mkdir(parents=True)
    login = run_arcade("login", "--api-key", account_a.key)
    assert login.returncode == 0, login.stderr
    assert login.stdout == f"Logged in as {account_a.email}.\n"
    whoami = run_arcade("whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert f"Principal: {account_a.principal}" in whoami.stdout
    assert_nothing_sent(posthog, work_dir)


def test_arcade_dir_that_is_a_file_does_not_break_usage_status(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, arcade_dir: Path
) -> None:
    arcade_dir.write_text("not a directory\n")
    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert "Tracking:         off" in status.stdout  # the opt-out file cannot be read

    whoami = assert_one_line_error(run_arcade("whoami"), "credentials.yaml", "Not a directory")
    assert "arcade login" not in whoami  # logging in again would not help here
    disable = run_arcade("usage", "disable")
    assert_one_line_error(disable, "cannot disable tracking", str(arcade_dir))
    assert_one_line_error(run_arcade("logout"), "cannot remove credentials")
    assert_nothing_sent(posthog, work_dir)
