"""The detached sender against a PostHog that hangs, fails, refuses, or loses its sender."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import Credentials, save_credentials
from arcade_usage import SUCCEEDED, CommandTracker, Outbox
from helpers import Stopwatch, line_workers, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

Track = Callable[..., None]
Data = Callable[[], dict[str, Any]]

DEAD_URL = "http://127.0.0.1:9"  # nobody listens on the discard port


def _outbox(work_dir: Path) -> list[dict[str, Any]]:
    outbox = Outbox(work_dir)
    messages = [outbox.read(n) for n in outbox.names()]
    return [dict(m) for m in messages if m is not None]


def _restore(posthog: FakePostHog) -> None:
    posthog.mode = "ok"
    posthog.release.set()


def _back_off_passed(work_dir: Path) -> None:
    """Wait out the back-off a failed upload left: until then a command starts no upload."""
    wait_until(lambda: not sender_pids(work_dir), timeout=11)
    wait_until(lambda: Outbox(work_dir).backoff_remaining() == 0, timeout=10)


def _names(messages: list[dict[str, Any]]) -> list[str]:
    """Each message as the user would name it: the alias, or the command that sent it."""
    return [
        m["event"] if m["event"] == "$create_alias" else m["properties"]["command_name"]
        for m in messages
    ]


def _uuids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["uuid"] for m in messages]


@pytest.mark.timeout(40)
@pytest.mark.may_be_inconclusive
def test_alias_gives_up_after_two_seconds_and_is_delivered_first_later(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, track: Track
) -> None:
    track("usage.status")
    anon_id = wait_until(posthog.command_events)[0]["distinct_id"]
    key = f"key-{uuid.uuid4().hex}"
    cloud.add_account(key, "prn_slow", "slow@example.com")
    save_credentials(Credentials(key, "slow@example.com"))
    posthog.mode = "hang"

    with Stopwatch() as watch:  # net of a busy machine's waits for a CPU
        track("login", is_login=True)
    watch.assert_within(2.0, "lookup, alias and link")  # one 2 s budget

    # The alias waits in the outbox ahead of the login event.
    queued = wait_until(lambda: len(_outbox(work_dir)) == 2 and _outbox(work_dir))
    assert [m["event"] for m in queued] == ["$create_alias", SUCCEEDED]
    assert queued[0]["distinct_id"] == anon_id
    assert queued[0]["properties"]["alias"] == "prn_slow"
    assert queued[1]["distinct_id"] == "prn_slow"
    assert posthog.aliases() == []

    _restore(posthog)
    _back_off_passed(work_dir)
    track("whoami")

    wait_until(lambda: len(posthog.command_events()) == 3)
    assert _names(posthog.events()) == ["usage.status", "$create_alias", "login", "whoami"]
    assert posthog.aliases() == [(anon_id, "prn_slow")]
    assert posthog.events()[2]["uuid"] == queued[1]["uuid"]
    assert posthog.same_person(anon_id, "prn_slow")
    wait_until(lambda: not sender_pids(work_dir))
    assert Outbox(work_dir).count() == 0


@pytest.mark.timeout(40)
def test_tracked_command_does_not_wait_for_a_hanging_posthog(
    posthog: FakePostHog, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posthog.mode = "hang"
    monkeypatch.setenv("ARCADE_USAGE_TRACKING", "0")
    with Stopwatch() as untracked:  # each net of a busy machine's waits for a CPU
        CommandTracker(cli_version="9.9.9").track_command_execution("usage.status", True)
    monkeypatch.delenv("ARCADE_USAGE_TRACKING")

    with Stopwatch() as tracked:
        CommandTracker(cli_version="9.9.9").track_command_execution("usage.status", True)

    # Milliseconds either way: the upload (5 s timeout against a 30 s hang) is elsewhere.
    assert tracked.own < untracked.own + 0.5, (tracked, untracked)
    # (A sender's /proc cmdline is empty for an instant after exec: poll, don't sample.)
    wait_until(lambda: sender_pids(work_dir), timeout=2)
    wait_until(lambda: posthog.requests >= 1)
    wait_until(lambda: not sender_pids(work_dir), timeout=11)
    assert [m["properties"]["command_name"] for m in _outbox(work_dir)] == ["usage.status"]
    assert posthog.command_events() == []


@pytest.mark.timeout(40)
def test_undelivered_events_wait_in_the_outbox_and_go_once_when_posthog_is_back(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    posthog.mode = "error"
    for name in ("one", "two", "three"):
        track(name)
    # A sender may still be on its way when the three are filed: first its refused
    # request, then its end.
    wait_until(lambda: posthog.requests >= 1)
    wait_until(lambda: Outbox(work_dir).count() == 3 and not sender_pids(work_dir))
    queued = _outbox(work_dir)
    assert posthog.command_events() == []

    posthog.mode = "ok"
    _back_off_passed(work_dir)
    track("four")

    wait_until(lambda: len(posthog.command_events()) >= 4)
    wait_until(lambda: not sender_pids(work_dir))
    delivered = posthog.command_events()
    # Queued in the order their commands filed them, delivered in that order, then the new one.
    assert _names(queued) == ["one", "two", "three"]
    assert _names(delivered) == [*_names(queued), "four"]
    assert Counter(_uuids(delivered)).most_common(1)[0][1] == 1
    for before, after in zip(queued, delivered[:3], strict=True):
        assert (after["uuid"], after["timestamp"]) == (before["uuid"], before["timestamp"])
        assert after["properties"] == {**after["properties"], **before["properties"]}
    assert Outbox(work_dir).count() == 0


@pytest.mark.timeout(40)
def test_events_for_a_host_that_refuses_connections_wait_for_it_not_for_another(
    posthog: FakePostHog, work_dir: Path, track: Track, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands run while the host refused connections keep their host: the next command,
    pointed at another PostHog, sends its own event there and never theirs."""
    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", DEAD_URL)
    for name in ("one", "two", "three"):
        track(name)
    wait_until(lambda: Outbox(work_dir).count() == 3 and not sender_pids(work_dir))

    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", posthog.url)
    track("four")
    wait_until(posthog.command_events)
    wait_until(lambda: not sender_pids(work_dir))
    assert _names(posthog.command_events()) == ["four"]
    assert _names(_outbox(work_dir)) == ["one", "two", "three"]


@pytest.mark.timeout(60)
def test_a_burst_of_50_commands_is_uploaded_by_one_sender_at_a_time(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = CommandTracker(cli_version="9.9.9")
    for i in range(50):
        tracker.track_command_execution(f"burst.{i}", True)

    wait_until(lambda: len(posthog.command_events()) >= 50, timeout=40)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    delivered = posthog.command_events()
    assert len(delivered) == 50
    assert len(set(_uuids(delivered))) == 50
    assert sorted(_names(delivered)) == sorted(f"burst.{i}" for i in range(50))
    assert len({m["distinct_id"] for m in delivered}) == 1
    assert posthog.max_in_flight <= 1
    assert Outbox(work_dir).count() == 0


@pytest.mark.timeout(40)
def test_a_sender_killed_mid_upload_loses_nothing(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    posthog.mode = "hang"
    track("doomed")
    wait_until(lambda: posthog.requests >= 1)
    pids = sender_pids(work_dir)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not sender_pids(work_dir))
    # Until the dying process has closed its files, its upload lock still says "at work".
    wait_until(lambda: not Outbox(work_dir).upload_lock_held())

    queued = _outbox(work_dir)
    assert _names(queued) == ["doomed"]
    assert not [p for p in Path(Outbox(work_dir).directory).iterdir() if p.suffix == ".tmp"]

    # A killed upload counts as a failed one: its back-off passes, then the next command
    # delivers both.
    _restore(posthog)
    _back_off_passed(work_dir)
    track("next")

    wait_until(lambda: len(posthog.command_events()) >= 2)
    wait_until(lambda: not sender_pids(work_dir))
    delivered = posthog.command_events()
    assert _names(delivered) == ["doomed", "next"]
    assert delivered[0]["uuid"] == queued[0]["uuid"]
    assert delivered[0]["timestamp"] == queued[0]["timestamp"]
    assert Outbox(work_dir).count() == 0


HOLD_UPLOAD_LOCK = """
import fcntl, os, sys
fd = os.open(os.path.join(sys.argv[1], ".upload.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@contextmanager
def last_request_under_way(work_dir: Path) -> Iterator[tuple[Outbox, int]]:
    """Another uploader is in its last request: it accepts no more (the accepting lock is
    free) but holds the upload lock until the block ends. The caller records how the
    request ended (`clear_backoff()`: a success, `back_off()`: a failure)."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    with line_workers(HOLD_UPLOAD_LOCK, 1, outbox.directory) as (holder,):
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield outbox, holder.pid


def _first_command_delivered(posthog: FakePostHog, work_dir: Path, track: Track) -> None:
    track("first")
    wait_until(posthog.command_events)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)


@pytest.mark.timeout(40)
def test_an_event_filed_during_another_uploaders_last_request_goes_when_it_succeeds(
    posthog: FakePostHog, work_dir: Path, track: Track, child_pids: Callable[[], list[int]]
) -> None:
    """No later command is needed: a sender waits for the upload lock, then uploads.

    While it waits it holds the accepting lock, so the commands that follow start no
    sender of their own.
    """
    _first_command_delivered(posthog, work_dir, track)
    with last_request_under_way(work_dir) as (outbox, holder):
        track("during")
        [waiting] = wait_until(lambda: sender_pids(work_dir))
        track("after")
        # (A sender started now would be a child already.)
        assert sorted(child_pids()) == sorted([waiting, holder])
        assert outbox.accepting()
        assert _names(posthog.command_events()) == ["first"]
        outbox.clear_backoff()  # the request went through

    wait_until(lambda: len(posthog.command_events()) == 3, timeout=12)
    assert _names(posthog.command_events()) == ["first", "during", "after"]
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    assert Outbox(work_dir).count() == 0


@pytest.mark.timeout(40)
def test_an_event_filed_during_another_uploaders_last_request_waits_out_its_failure(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    _first_command_delivered(posthog, work_dir, track)
    with last_request_under_way(work_dir) as (outbox, _):
        track("during")
        wait_until(lambda: sender_pids(work_dir))
        outbox.back_off(retry_after=60)  # the request failed: a real back-off now
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    assert posthog.requests == 1  # the waiting sender made no attempt of its own
    assert _names(_outbox(work_dir)) == ["during"]


@pytest.mark.timeout(40)
def test_the_sender_leaves_the_users_python_configuration_out(
    posthog: FakePostHog, work_dir: Path, track: Track, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user whose Python turns warnings into errors and opens a prompt after every
    # script must still get a sender that just runs, silently, and ends.
    monkeypatch.setenv("PYTHONWARNINGS", "error")
    monkeypatch.setenv("PYTHONINSPECT", "1")
    posthog.mode = "hang"  # keeps the sender alive long enough to look at it
    track("usage.status")
    wait_until(lambda: posthog.requests >= 1)
    [pid] = sender_pids(work_dir)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert argv[1:4] == [b"-s", b"-m", b"arcade_usage"]
    assert b"PYTHONWARNINGS=ignore" in environ
    assert not [v for v in environ if v.startswith(b"PYTHONINSPECT=")]
    assert Path(f"/proc/{pid}/cwd").resolve() == work_dir.resolve()

    _restore(posthog)  # the hung upload fails; after the back-off, the next sender delivers both
    _back_off_passed(work_dir)
    track("whoami")
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert _names(posthog.command_events()) == ["usage.status", "whoami"]


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("production_timings")  # its exit code counts: a starved one needs 10 s
def test_the_sender_runs_without_typer(posthog: FakePostHog, tmp_path: Path) -> None:
    message = {
        "event": SUCCEEDED,
        "distinct_id": str(uuid.uuid4()),
        "properties": {"command_name": "direct", "$process_person_profile": False},
        "timestamp": "2025-01-01T00:00:00+00:00",
        "uuid": str(uuid.uuid4()),
    }
    Outbox().put(message)  # type: ignore[arg-type]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "arcade_usage"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "posthog" in imported  # the measurement sees the sender's imports
    assert not {m for m in imported if m.split(".")[0] == "typer"}
    assert _uuids(posthog.command_events()) == [message["uuid"]]
