"""Opting out in every supported way, debug mode, and the one-time notice."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from arcade_identity import Credentials, save_credentials
from arcade_usage import (
    CommandTracker,
    Outbox,
    disable_tracking,
    enable_tracking,
    is_tracking_enabled,
)
from helpers import run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

NOTICE_MARK = "Opt out with"

pytestmark = pytest.mark.timeout(60)


def _run_commands() -> None:
    """What a CLI does over a session: a success, a failure, a login, a logout."""
    tracker = CommandTracker(cli_version="9.9.9")
    tracker.track_command_execution("usage.status", True, duration_ms=3.0)
    tracker.track_command_execution("whoami", False, error_message="not logged in")
    tracker.track_command_execution("login", True, is_login=True)
    tracker.track_command_execution("logout", True, is_logout=True)


def _assert_nothing_happened(
    posthog: FakePostHog,
    capfd: pytest.CaptureFixture[str],
    children: Callable[[], list[int]],
    work_dir: Path,
    files: set[str],
) -> None:
    assert children() == [], "a sender was spawned"
    assert posthog.requests == 0
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    home = work_dir.parent
    assert {str(p.relative_to(home)) for p in home.rglob("*")} == files


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARCADE_USAGE_TRACKING", "0"),
        ("ARCADE_USAGE_TRACKING", " FALSE "),
        ("ARCADE_USAGE_TRACKING", "No"),
        ("ARCADE_USAGE_TRACKING", "\toFF\n"),
        ("DO_NOT_TRACK", "1"),
        ("DO_NOT_TRACK", "true"),
        ("DO_NOT_TRACK", " YES "),
    ],
)
def test_environment_opt_out_sends_spawns_and_writes_nothing(
    posthog: FakePostHog,
    cloud: FakeCloud,
    work_dir: Path,
    capfd: pytest.CaptureFixture[str],
    child_pids: Callable[[], list[int]],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert not is_tracking_enabled()

    _run_commands()

    _assert_nothing_happened(posthog, capfd, child_pids, work_dir, set())
    assert cloud.validations == 0


def test_persisted_opt_out_also_stops_alias_and_lookup(
    posthog: FakePostHog,
    cloud: FakeCloud,
    work_dir: Path,
    capfd: pytest.CaptureFixture[str],
    child_pids: Callable[[], list[int]],
) -> None:
    disable_tracking()
    key = f"key-{uuid.uuid4().hex}"
    cloud.add_account(key, "prn_quiet", "quiet@example.com")
    save_credentials(Credentials(key, "quiet@example.com"))

    _run_commands()

    files = {".arcade", ".arcade/usage_disabled", ".arcade/credentials.yaml"}
    _assert_nothing_happened(posthog, capfd, child_pids, work_dir, files)
    assert cloud.validations == 0

    # Turning it back on works, and is the user's choice alone.
    assert enable_tracking()
    CommandTracker(cli_version="9.9.9").track_command_execution("usage.enable", True)
    assert wait_until(posthog.command_events)[0]["distinct_id"] == "prn_quiet"


@pytest.mark.parametrize("value", ["0", "", "  ", "false", "off"])
def test_do_not_track_set_to_a_false_value_keeps_tracking_on(
    posthog: FakePostHog, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", value)
    CommandTracker(cli_version="9.9.9").track_command_execution("usage.status", True)
    assert wait_until(posthog.command_events)[0]["properties"]["command_name"] == "usage.status"


@pytest.mark.parametrize("kind", ["no-permission", "symlink-loop", "dangling-symlink"])
def test_a_disabled_file_that_cannot_be_read_keeps_tracking_off(
    posthog: FakePostHog,
    arcade_dir: Path,
    work_dir: Path,
    capfd: pytest.CaptureFixture[str],
    child_pids: Callable[[], list[int]],
    kind: str,
) -> None:
    disabled = arcade_dir / "usage_disabled"
    disable_tracking()
    if kind == "no-permission":
        disabled.chmod(0)
    elif kind == "symlink-loop":
        disabled.unlink()
        disabled.symlink_to(disabled)
    else:  # e.g. a dotfiles link into a drive that is not mounted
        disabled.unlink()
        disabled.symlink_to(work_dir / "unmounted" / "usage_disabled")

    assert not is_tracking_enabled()
    _run_commands()

    _assert_nothing_happened(
        posthog, capfd, child_pids, work_dir, {".arcade", ".arcade/usage_disabled"}
    )


def test_debug_prints_each_event_and_sends_nothing(
    posthog: FakePostHog,
    cloud: FakeCloud,
    work_dir: Path,
    capfd: pytest.CaptureFixture[str],
    child_pids: Callable[[], list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARCADE_USAGE_DEBUG", "1")
    tracker = CommandTracker(cli_version="9.9.9")
    tracker.track_command_execution("usage.status", True, duration_ms=3.0)
    tracker.track_command_execution("whoami", False, error_message="not logged in")

    out, err = capfd.readouterr()
    assert out == ""
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [m["properties"]["command_name"] for m in lines] == ["usage.status", "whoami"]
    assert [m["event"] for m in lines] == ["CLI execution succeeded", "CLI execution failed"]
    assert all(m["uuid"] and m["timestamp"] for m in lines)
    assert lines[1]["properties"]["error_message"] == "not logged in"
    assert child_pids() == []
    assert Outbox(work_dir).count() == 0
    assert posthog.requests == 0


def test_first_run_notice_on_stderr_once(posthog: FakePostHog, work_dir: Path) -> None:
    first = run_arcade("usage", "status")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(NOTICE_MARK) == 1
    assert "ARCADE_USAGE_TRACKING=0" in first.stderr
    assert "arcade usage disable" in first.stderr
    assert NOTICE_MARK not in first.stdout
    assert "ARCADE_USAGE_TRACKING" not in first.stdout
    assert "Tracking:         on" in first.stdout

    second = run_arcade("usage", "status")
    assert second.returncode == 0, second.stderr
    assert NOTICE_MARK not in second.stderr
    assert NOTICE_MARK not in second.stdout
    wait_until(lambda: len(posthog.command_events()) == 2)
    wait_until(lambda: not sender_pids(work_dir))


def test_opted_out_arcade_shows_no_notice_and_leaves_no_file(
    posthog: FakePostHog, work_dir: Path
) -> None:
    result = run_arcade("usage", "status", env={"DO_NOT_TRACK": "1"})
    assert result.returncode == 0, result.stderr
    assert "Tracking:         off" in result.stdout
    assert NOTICE_MARK not in result.stderr + result.stdout
    assert list(work_dir.parent.iterdir()) == []
    assert posthog.requests == 0
    assert not work_dir.exists()


def test_debug_shows_the_alias_but_leaves_it_for_a_real_run(
    posthog: FakePostHog,
    cloud: FakeCloud,
    work_dir: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloud.add_account("key-debug", "prn_debug", "debug@example.com")
    save_credentials(Credentials("key-debug", "debug@example.com"))
    monkeypatch.setenv("ARCADE_USAGE_DEBUG", "1")
    CommandTracker(cli_version="9.9.9").track_command_execution("login", True, is_login=True)
    printed = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line[:1] == "{"]
    assert [m["event"] for m in printed] == ["$create_alias", "CLI execution succeeded"]
    assert posthog.requests == 0

    monkeypatch.delenv("ARCADE_USAGE_DEBUG")
    tracker = CommandTracker(cli_version="9.9.9")
    tracker.track_command_execution("whoami", True)
    anon = tracker.identity.anon_id
    wait_until(posthog.command_events)
    assert posthog.aliases() == [(anon, "prn_debug")]
    assert posthog.command_events()[0]["distinct_id"] == "prn_debug"
    assert posthog.same_person(anon, "prn_debug")


@pytest.mark.parametrize("state", ["anonymous", "logged in"])
def test_the_notice_is_true_whoever_the_user_is(
    posthog: FakePostHog,
    cloud: FakeCloud,
    work_dir: Path,
    state: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole notice, the same for a logged-in user's first command as for anyone's."""
    monkeypatch.delenv("COLUMNS", raising=False)
    if state == "logged in":
        key = f"key-{uuid.uuid4().hex}"
        cloud.add_account(key, "prn_notice", "notice@example.com")
        save_credentials(Credentials(key, "notice@example.com"))
    tracker = CommandTracker(cli_version="9.9.9", cli_name="othertool")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        tracker.track_command_execution("sync", True)
    assert stderr.getvalue() == (  # no terminal behind stderr: wrapped to 80 columns
        "Arcade tools collect usage data to improve them: the name of the command or\n"
        "tool, whether it succeeded, how long it took, the error if any, and the versions\n"
        "of the tool, Python and your OS. Never your API key, files or arguments. Events\n"
        "are linked to your Arcade account while you are logged in, and anonymous\n"
        "otherwise.\n"
        "Opt out with ARCADE_USAGE_TRACKING=0 (or DO_NOT_TRACK=1), or run\n"
        "`arcade usage disable`.\n"
    )
    [event] = wait_until(posthog.command_events)
    expected = (
        "prn_notice"
        if state == "logged in"
        else json.loads((work_dir / "usage.json").read_bytes())["anon_id"]
    )
    assert event["distinct_id"] == expected
    assert event["properties"]["cli_name"] == "othertool"
