"""Damaged files, opting out, and what a user sees when things go wrong: one line, no traceback."""

from __future__ import annotations

import json
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
    outbox = work_dir / ".arcade" / "usage_outbox"
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


def test_usage_json_that_is_a_directory_does_not_break_commands(
    posthog: FakePostHog, account_a: Account, work_dir: Path, arcade_dir: Path
) -> None:
    (arcade_dir / "usage.json").mkdir(parents=True)
    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert "Anonymous id:     none yet" in status.stdout
    assert "unusable: Is a directory" in status.stdout

    login = run_arcade("login", "--api-key", account_a.key)
    assert login.returncode == 0, login.stderr
    whoami = run_arcade("whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert account_a.principal in whoami.stdout
    # Without a usable identity, tracking quietly does nothing.
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


# -- opting out ----------------------------------------------------------------------------


def test_disable_then_status_shows_off_and_sends_nothing_until_enabled(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, first_run: str
) -> None:
    disable = run_arcade("usage", "disable")
    assert disable.returncode == 0, disable.stderr
    assert "Usage tracking is off" in disable.stdout

    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert "Tracking:         off (disabled with `arcade usage disable`)" in status.stdout
    assert f"Anonymous id:     {first_run}" in status.stdout
    assert_nothing_sent(posthog, work_dir, already=1)

    # The choice survives a lost identity.
    (arcade_dir / "usage.json").unlink()
    again = run_arcade("usage", "status")
    assert "Tracking:         off" in again.stdout
    assert not (arcade_dir / "usage.json").exists()
    assert_nothing_sent(posthog, work_dir, already=1)

    enable = run_arcade("usage", "enable")
    assert enable.returncode == 0, enable.stderr
    assert enable.stdout == "Usage tracking is on.\n"
    status = run_arcade("usage", "status")
    assert "Tracking:         on (the default)" in status.stdout
    wait_until(lambda: len(posthog.command_events()) == 3)
    assert [e["properties"]["command_name"] for e in posthog.command_events()] == [
        "usage.status",
        "usage.enable",
        "usage.status",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("DO_NOT_TRACK", "1", "DO_NOT_TRACK=1"),
        ("ARCADE_USAGE_TRACKING", " Off ", "ARCADE_USAGE_TRACKING=Off"),
    ],
)
def test_environment_opt_out_shows_why_and_creates_nothing(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, variable: str, value: str, reason: str
) -> None:
    env = {variable: value}
    status = run_arcade("usage", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"Tracking:         off ({reason} is set)" in status.stdout
    assert status.stderr == ""  # no notice either

    enable = run_arcade("usage", "enable", env=env)
    assert enable.returncode == 0, enable.stderr
    assert f"still off: {reason} is set" in enable.stdout
    assert not arcade_dir.exists()
    assert_nothing_sent(posthog, work_dir)


def test_do_not_track_with_an_off_word_keeps_tracking_on(
    posthog: FakePostHog, arcade_dir: Path
) -> None:
    status = run_arcade("usage", "status", env={"DO_NOT_TRACK": "0"})
    assert "Tracking:         on" in status.stdout
    [event] = wait_until(posthog.command_events)
    assert event["distinct_id"] == json.loads((arcade_dir / "usage.json").read_text())["anon_id"]
