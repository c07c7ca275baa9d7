"""`arcade usage status` (the screen and `--json`), `enable`/`disable`, `--version`, `-h`."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from cli.accounts import Account
from helpers import ARCADE, assert_one_line_error, run_arcade, sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(60)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def screen(text: str, work_dir: Path) -> str:
    """The screen with its volatile parts named: the test's work dir, uuids."""
    return UUID.sub("<uuid>", text.replace(str(work_dir), "<work>"))


def anon_id(arcade_dir: Path) -> str:
    return str(json.loads((arcade_dir / "usage.json").read_text())["anon_id"])


def status_json(**env: str) -> dict[str, Any]:
    result = run_arcade("usage", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_first_status_shows_the_whole_screen_and_the_notice_goes_to_stderr(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    result = run_arcade("usage", "status")

    assert result.returncode == 0, result.stderr
    assert screen(result.stdout, work_dir) == (
        "Tracking:         on (the default)\n"
        "Anonymous id:     <uuid>\n"
        "Linked principal: none\n"
        "Identity file:    <work>/usage.json\n"
        "Outbox:           0 event(s) waiting in <work>/usage_outbox\n"
    )
    assert f"Anonymous id:     {anon_id(arcade_dir)}\n" in result.stdout
    assert "arcade usage disable" in result.stderr  # the one-time notice, never on stdout
    [event] = wait_until(posthog.command_events)
    assert event["event"] == "CLI execution succeeded"
    assert event["distinct_id"] == anon_id(arcade_dir)
    assert event["properties"]["command_name"] == "usage.status"
    assert event["properties"]["cli_version"] == version("arcade-dev-cli")


def test_status_json_and_screen_show_what_waits_in_the_outbox(
    work_dir: Path, arcade_dir: Path
) -> None:
    # PostHog is unreachable: the first command's event stays in the outbox.
    assert run_arcade("usage", "status").returncode == 0
    wait_until(lambda: not sender_pids(work_dir))

    assert status_json() == {
        "tracking": True,
        "reason": "the default",
        "anon_id": anon_id(arcade_dir),
        "linked_principal_id": None,
        "identity_file": str(arcade_dir / "usage.json"),
        "identity_problem": None,
        "outbox_waiting": 1,
        "outbox_dir": str(arcade_dir / "usage_outbox"),
        "outbox_error": None,
    }
    wait_until(lambda: not sender_pids(work_dir))
    result = run_arcade("usage", "status")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert screen(result.stdout, work_dir) == (
        "Tracking:         on (the default)\n"
        "Anonymous id:     <uuid>\n"
        "Linked principal: none\n"
        "Identity file:    <work>/usage.json\n"
        "Outbox:           2 event(s) waiting in <work>/usage_outbox\n"
    )


def test_status_json_when_logged_in(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    data = status_json()
    assert (data["tracking"], data["anon_id"], data["linked_principal_id"]) == (
        True,
        first_run,
        account_a.principal,
    )


def test_disable_then_status_shows_off_and_sends_nothing_until_enabled(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, first_run: str
) -> None:
    disable = run_arcade("usage", "disable")
    assert disable.returncode == 0, disable.stderr
    assert (
        disable.stdout == f"Usage tracking is off (recorded in {arcade_dir / 'usage_disabled'}).\n"
    )

    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert screen(status.stdout, work_dir) == (
        "Tracking:         off (disabled with `arcade usage disable`)\n"
        "Anonymous id:     <uuid>\n"
        "Linked principal: none\n"
        "Identity file:    <work>/usage.json\n"
        "Outbox:           0 event(s) waiting in <work>/usage_outbox\n"
    )
    assert f"Anonymous id:     {first_run}\n" in status.stdout
    assert sender_pids(work_dir) == []

    enable = run_arcade("usage", "enable")
    assert enable.returncode == 0, enable.stderr
    assert enable.stdout == "Usage tracking is on.\n"
    assert run_arcade("usage", "status").returncode == 0
    wait_until(lambda: len(posthog.command_events()) == 3)
    assert [e["properties"]["command_name"] for e in posthog.command_events()] == [
        "usage.status",
        "usage.enable",
        "usage.status",
    ]


def test_disable_as_the_first_command_shows_no_notice_and_creates_no_identity(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    """Someone who opts out before anything else is not told that data is collected, and
    no anonymous id is made for them."""
    disable = run_arcade("usage", "disable")
    assert (disable.returncode, disable.stderr) == (0, "")
    assert disable.stdout == (
        f"Usage tracking is off (recorded in {arcade_dir / 'usage_disabled'}).\n"
    )
    assert sorted(p.name for p in arcade_dir.iterdir()) == ["usage_disabled"]
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0

    # Turned on again, the notice comes once, with the first event's identity.
    enable = run_arcade("usage", "enable")
    assert enable.returncode == 0, enable.stderr
    assert "Arcade tools collect usage data" in enable.stderr
    event = wait_until(posthog.command_events)[0]
    assert event["properties"]["command_name"] == "usage.enable"
    assert run_arcade("usage", "status").stderr == ""


def test_disable_that_cannot_write_names_the_file_the_user_knows(arcade_dir: Path) -> None:
    """A directory where `usage_disabled` goes: the error names it, not the temp file the
    failed rename held."""
    (arcade_dir / "usage_disabled").mkdir(parents=True)
    disable = run_arcade("usage", "disable", env={"ARCADE_USAGE_TRACKING": "0"})
    assert_one_line_error(
        disable, f"cannot disable tracking: Is a directory: {arcade_dir / 'usage_disabled'}"
    )
    assert ".tmp" not in disable.stderr
    assert sorted(p.name for p in arcade_dir.iterdir()) == ["usage_disabled"]


def test_disable_deletes_what_waits_in_the_outbox_and_says_so(
    work_dir: Path, arcade_dir: Path
) -> None:
    # PostHog is unreachable: the first command's event stays in the outbox.
    assert run_arcade("usage", "status").returncode == 0
    wait_until(lambda: not sender_pids(work_dir))
    disable = run_arcade("usage", "disable")
    assert disable.returncode == 0, disable.stderr
    assert disable.stdout == (
        f"Usage tracking is off (recorded in {arcade_dir / 'usage_disabled'}).\n"
        "Deleted 1 event(s) that were waiting to be sent.\n"
    )
    assert status_json()["outbox_waiting"] == 0


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
    assert status.stderr == ""  # no notice either
    assert screen(status.stdout, work_dir) == (
        f"Tracking:         off ({reason} is set)\n"
        "Anonymous id:     none yet\n"
        "Linked principal: none\n"
        "Identity file:    <work>/usage.json\n"
        "Outbox:           0 event(s) waiting in <work>/usage_outbox\n"
    )
    assert status_json(**env) == {
        "tracking": False,
        "reason": f"{reason} is set",
        "anon_id": None,
        "linked_principal_id": None,
        "identity_file": str(arcade_dir / "usage.json"),
        "identity_problem": None,
        "outbox_waiting": 0,
        "outbox_dir": str(arcade_dir / "usage_outbox"),
        "outbox_error": None,
    }

    enable = run_arcade("usage", "enable", env=env)
    assert enable.returncode == 0, enable.stderr
    assert enable.stdout == f"Usage tracking is still off: {reason} is set.\n"
    assert not arcade_dir.exists()
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0


def test_usage_json_that_is_a_directory_is_shown_as_unusable(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    (arcade_dir / "usage.json").mkdir(parents=True)
    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert screen(status.stdout, work_dir) == (
        "Tracking:         on (the default)\n"
        "Anonymous id:     none yet\n"
        "Linked principal: none\n"
        "Identity file:    <work>/usage.json"
        " (unusable: Is a directory)\n"
        "Outbox:           0 event(s) waiting in <work>/usage_outbox\n"
    )
    assert status_json()["identity_problem"] == "Is a directory"


@pytest.mark.parametrize("planted", ["symlink", "directory"])
def test_a_lock_file_replaced_is_named_and_what_a_link_leads_to_is_untouched(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, tmp_path: Path, planted: str
) -> None:
    """`usage.json.lock` made a link to a file of the user's (or a directory): the status
    names the lock, not `usage.json`, and the file keeps its bytes and mode (a lock
    opened through the link, as filelock before 3.20.3 opens it, would empty it)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    notes.chmod(0o644)
    arcade_dir.mkdir(mode=0o700)
    lock = arcade_dir / "usage.json.lock"
    if planted == "symlink":
        lock.symlink_to(notes)
    else:
        lock.mkdir()
    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    problem = status_json()["identity_problem"]
    assert problem.endswith(f": {lock}"), problem
    assert screen(status.stdout, work_dir).splitlines()[3] == (
        f"Identity file:    <work>/usage.json (unusable: {screen(problem, work_dir)})"
    )
    assert notes.read_text() == "my notes"
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644
    assert not (arcade_dir / "usage.json").exists()


def _queue_events(work_dir: Path, count: int) -> None:
    """`count` events waiting in the outbox (PostHog is unreachable), no sender left."""
    for _ in range(count):
        assert run_arcade("whoami").returncode == 1  # not logged in: an event all the same
    wait_until(lambda: not sender_pids(work_dir))
    assert status_json()["outbox_waiting"] == count


def _symlink(outbox: Path, tmp_path: Path) -> None:
    """The outbox moved aside and a symbolic link to it put in its place."""
    outbox.rename(tmp_path / "elsewhere")
    outbox.symlink_to(tmp_path / "elsewhere", target_is_directory=True)


def _file(outbox: Path, tmp_path: Path) -> None:
    outbox.rename(tmp_path / "elsewhere")
    outbox.write_text("not a directory")


def _mode_000(outbox: Path, tmp_path: Path) -> None:
    outbox.chmod(0)


def _another_users(outbox: Path, tmp_path: Path) -> None:
    os.chown(outbox, 65534, 65534)  # nobody


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UNSEEABLE = [
    pytest.param(_symlink, "Is a symbolic link", id="symlink"),
    pytest.param(_file, "Not a directory", id="file"),
    pytest.param(
        _mode_000,
        "Permission denied",
        id="mode-000",
        marks=pytest.mark.skipif(
            IS_ROOT or os.name == "nt", reason="root reads a mode 000 directory"
        ),
    ),
    pytest.param(
        _another_users,
        "Owned by another user",
        id="another-user",
        marks=pytest.mark.skipif(not IS_ROOT, reason="only root can give a directory away"),
    ),
]


@pytest.mark.parametrize(("make_unseeable", "error"), UNSEEABLE)
def test_status_says_when_it_cannot_see_the_outbox_instead_of_zero(
    work_dir: Path,
    arcade_dir: Path,
    tmp_path: Path,
    make_unseeable: Callable[[Path, Path], None],
    error: str,
) -> None:
    _queue_events(work_dir, 3)
    outbox = arcade_dir / "usage_outbox"
    make_unseeable(outbox, tmp_path)
    try:
        env = {"ARCADE_USAGE_TRACKING": "0"}  # nothing new filed, so the screen is stable
        data = status_json(**env)
        result = run_arcade("usage", "status", env=env)
    finally:
        if outbox.is_dir() and not outbox.is_symlink():
            outbox.chmod(0o700)  # so that pytest can clean up
    assert (data["outbox_waiting"], data["outbox_error"]) == (None, error)
    assert data["outbox_dir"] == str(outbox)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert screen(result.stdout, work_dir).splitlines()[-1] == (
        f"Outbox:           cannot see what waits in <work>/usage_outbox ({error})"
    )


def test_an_outbox_not_made_yet_is_zero_waiting_not_an_error(work_dir: Path) -> None:
    data = status_json(ARCADE_USAGE_TRACKING="0")
    assert (data["outbox_waiting"], data["outbox_error"]) == (0, None)


@pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="macOS and Windows keep file names in Unicode"
)
@pytest.mark.parametrize(
    "stdout_encoding",
    [
        pytest.param("utf-8", id="strict"),  # PYTHONIOENCODING=utf-8: no surrogate written
        pytest.param("utf-8:surrogateescape", id="locale"),  # a UTF-8 locale's: the raw byte
    ],
)
def test_a_work_dir_that_is_not_utf8_is_shown_with_replacement_characters(
    tmp_path: Path, stdout_encoding: str
) -> None:
    """A configuration folder whose name holds a byte that is not UTF-8 (a Latin-1 home):
    the commands that show its path work, and show that byte as U+FFFD, on the screen
    and in valid UTF-8 JSON (not `Error: unexpected UnicodeEncodeError`, after `disable`
    had taken effect, nor a raw byte that no JSON parser takes)."""
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    shown = str(tmp_path / "caf\ufffd")
    env = {
        "ARCADE_WORK_DIR": folder,
        "PYTHONIOENCODING": stdout_encoding,
        "ARCADE_USAGE_TRACKING": "0",  # no sender, which `sender_pids` could not look for
    }

    def run(*args: str) -> tuple[int, str, str]:
        result = subprocess.run(
            [str(ARCADE), *args],
            capture_output=True,
            env={**os.environ, **env},
            timeout=60,
            check=False,
        )
        return result.returncode, result.stdout.decode("utf-8"), result.stderr.decode("utf-8")

    assert run("usage", "status") == (
        0,
        "Tracking:         off (ARCADE_USAGE_TRACKING=0 is set)\n"
        "Anonymous id:     none yet\n"
        "Linked principal: none\n"
        f"Identity file:    {shown}/usage.json\n"
        f"Outbox:           0 event(s) waiting in {shown}/usage_outbox\n",
        "",
    )
    code, stdout, stderr = run("usage", "status", "--json")
    assert (code, stderr) == (0, "")
    data = json.loads(stdout)
    assert (data["identity_file"], data["outbox_dir"]) == (
        f"{shown}/usage.json",
        f"{shown}/usage_outbox",
    )
    assert run("usage", "disable") == (
        0,
        f"Usage tracking is off (recorded in {shown}/usage_disabled).\n",
        "",
    )
    assert os.path.exists(os.path.join(folder, "usage_disabled"))


def test_version_prints_the_installed_version_and_sends_nothing(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    result = run_arcade("--version")
    assert result.returncode == 0
    assert result.stdout == version("arcade-dev-cli") + "\n"
    assert result.stderr == ""
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0
    assert not arcade_dir.exists()


COMMANDS = [
    [],
    ["login"],
    ["logout"],
    ["whoami"],
    ["usage"],
    ["usage", "status"],
    ["usage", "enable"],
    ["usage", "disable"],
]


def test_dash_h_is_help_everywhere(posthog: FakePostHog, arcade_dir: Path) -> None:
    for command in COMMANDS:
        long = run_arcade(*command, "--help")
        short = run_arcade(*command, "-h")
        assert long.returncode == 0, (command, long.stderr)
        assert short.returncode == 0, (command, short.stderr)
        assert short.stdout == long.stdout
        assert short.stdout.startswith(f"Usage: arcade {' '.join(command)}".rstrip() + " ")
        assert "-h, --help" in short.stdout
        assert short.stderr == ""
    assert posthog.requests == 0
    assert not arcade_dir.exists()
