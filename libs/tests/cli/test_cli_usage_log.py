"""`arcade usage log`: what was sent and what waits, as PostHog got it (or will)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from arcade_usage import ServerTracker
from cli.test_cli_status import UNSEEABLE, _queue_events
from helpers import run_arcade, sender_pids, wait_until
from servers import FakePostHog

if TYPE_CHECKING:
    from cli.accounts import Account

pytestmark = pytest.mark.timeout(90)

UNTRACKED = {"ARCADE_USAGE_TRACKING": "0"}  # so that reading the log adds nothing to it


def _log(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = run_arcade("usage", "log", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_log_shows_every_event_as_posthog_got_it_newest_first(
    posthog: FakePostHog, account_a: Account, work_dir: Path, first_run: str
) -> None:
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    for args in (["usage", "status"], ["whoami"], ["usage", "status", "--json"]):
        assert run_arcade(*args).returncode == 0
    server = ServerTracker(server_version="1.2.3")
    server.track_server_start(transport="stdio", tool_count=2)
    server.track_tool_call(success=True)
    # first run, alias, login, three commands, the server's two
    wait_until(lambda: len(posthog.events()) == 8)
    wait_until(lambda: not sender_pids(work_dir))

    logged = _log(env=UNTRACKED)
    got = {e["uuid"]: e for e in posthog.events()}
    assert [e["uuid"] for e in logged if e["uuid"] not in got] == []
    # Every event; not (yet) the alias that `login` delivers itself, outside the outbox.
    missing = [e["event"] for u, e in got.items() if u not in {x["uuid"] for x in logged}]
    assert missing in ([], ["$create_alias"])
    for entry in logged:
        sent = got[entry["uuid"]]
        assert entry["sent"] is True
        for key in ("event", "distinct_id", "timestamp"):
            assert entry[key] == sent[key], key
        assert entry["properties"] == sent["properties"]
    assert [e["timestamp"] for e in logged] == sorted(
        (e["timestamp"] for e in logged), reverse=True
    )
    names = [e["properties"].get("command_name") for e in logged if e["event"].startswith("CLI")]
    assert names == ["usage.status", "whoami", "usage.status", "login", "usage.status"]
    assert [e["event"] for e in logged if e["event"].startswith("MCP")] == [
        "MCP tool called",
        "MCP server started",
    ]
    assert _log("-n", "2", env=UNTRACKED) == logged[:2]


def test_the_log_shows_what_waits_and_reads_as_a_screen(work_dir: Path) -> None:
    # PostHog is unreachable: the command's event waits in the outbox.
    assert run_arcade("whoami").returncode == 1
    wait_until(lambda: not sender_pids(work_dir))
    shown = run_arcade("usage", "log", env=UNTRACKED)
    assert shown.returncode == 0, shown.stderr
    first, properties = shown.stdout.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  waiting  CLI execution failed  as [0-9a-f-]{36}",
        first,
    ), first
    assert json.loads(properties)["error_message"] == "not logged in. Run `arcade login`."
    assert properties.startswith("    {")
    [entry] = _log(env=UNTRACKED)
    assert entry["sent"] is False


def test_after_disable_the_log_is_empty_and_says_why(posthog: FakePostHog, first_run: str) -> None:
    assert _log()
    assert run_arcade("usage", "disable").returncode == 0
    assert run_arcade("whoami").returncode == 1  # not recorded: tracking is off
    assert _log() == []
    shown = run_arcade("usage", "log")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == (
        "No events sent or waiting. Tracking is off (disabled with `arcade usage disable`).\n"
    )


# One way of not seeing it: what each looks like is the status's (`_cannot_look_in`,
# shared), whose test goes through all of them.
@pytest.mark.parametrize(("make_unseeable", "error"), UNSEEABLE[:1])
def test_the_log_says_when_it_cannot_see_the_outbox_instead_of_no_events(
    work_dir: Path,
    arcade_dir: Path,
    tmp_path: Path,
    make_unseeable: Callable[[Path, Path], None],
    error: str,
) -> None:
    """Events may wait in an outbox that cannot be looked into, as `usage status` says:
    the log says so and why, where it said "No events sent or waiting"."""
    _queue_events(work_dir, 3)
    outbox = arcade_dir / "usage_outbox"
    make_unseeable(outbox, tmp_path)
    try:
        shown = run_arcade("usage", "log", env=UNTRACKED)
        as_json = run_arcade("usage", "log", "--json", env=UNTRACKED)
    finally:
        if outbox.is_dir() and not outbox.is_symlink():
            outbox.chmod(0o700)  # so that pytest can clean up
    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == (
        f"Cannot see what waits in {outbox} ({error})."
        " Tracking is off (ARCADE_USAGE_TRACKING=0 is set).\n"
    )
    # Scripts read events alone on stdout; the note is for whoever runs them.
    assert (as_json.returncode, as_json.stdout) == (0, "")
    assert as_json.stderr == f"Cannot see what waits in {outbox} ({error}).\n"


def test_a_linked_outbox_is_neither_read_by_the_log_nor_emptied_by_disable(
    arcade_dir: Path, tmp_path: Path
) -> None:
    """`usage_outbox` made a link to a folder of the user's that happens to hold files by
    the outbox's own names: `usage log` shows none of them, `usage disable` deletes none."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sent").mkdir(parents=True)
    someone = {
        "event": "someone else's event",
        "distinct_id": "someone",
        "properties": {},
        "timestamp": "2026-12-03T10:00:00+00:00",
        "uuid": "11111111-2222-3333-4444-555555555555",
    }
    (elsewhere / "sent.log").write_text(json.dumps({"sent": time.time(), "messages": [someone]}))
    (elsewhere / "sent.log.1").write_text("kept\n")
    (elsewhere / "sent" / "notes.txt").write_text("kept")
    before = {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()}
    arcade_dir.mkdir(mode=0o700)
    outbox = arcade_dir / "usage_outbox"
    outbox.symlink_to(elsewhere, target_is_directory=True)

    shown = run_arcade("usage", "log", env=UNTRACKED)
    disabled = run_arcade("usage", "disable")

    assert (shown.returncode, shown.stderr) == (0, "")
    assert shown.stdout == (
        f"Cannot see what waits in {outbox} (Is a symbolic link)."
        " Tracking is off (ARCADE_USAGE_TRACKING=0 is set).\n"
    )
    assert disabled.returncode == 0, disabled.stderr
    assert {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()} == before
    assert outbox.is_symlink()
