"""Delivery that PostHog's refusals, rate limits and outages cannot jam, and an outbox that
touches only its own files.

Each test drives real detached senders (started by in-process trackers and services)
against a loopback PostHog that refuses, rate-limits or is down, and asserts what
PostHog and the user would see: which events arrive, once and in order, how many
requests were made, which files are left. Events are made to wait in the outbox by a
running back-off, the state an outage leaves, so that their order is known.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from arcade_usage import (
    SUCCEEDED,
    Outbox,
    UsageService,
    disable_tracking,
    enable_tracking,
    usage_log,
)
from helpers import sender_pids, wait_until
from servers import FakePostHog, closed_port

Track = Callable[..., None]

DAY = 24 * 3600.0
ALIAS = "$create_alias"

pytestmark = pytest.mark.timeout(60)


# -- what a test looks at ----------------------------------------------------------------


def _queued(work_dir: Path) -> list[dict[str, Any]]:
    """The messages waiting in the outbox, in delivery order."""
    outbox = Outbox(work_dir)
    messages = [outbox.read(n) for n in outbox.names()]
    return [dict(m) for m in messages if m is not None]


def _names(messages: list[dict[str, Any]]) -> list[str]:
    """Each message as the user would name it: the alias, or the command that sent it."""
    return [
        m["event"] if m["event"] == ALIAS else m["properties"]["command_name"] for m in messages
    ]


def _settled(work_dir: Path) -> None:
    """Every sender of this test has finished (each hard-exits at the end of its life)."""
    wait_until(lambda: not sender_pids(work_dir), timeout=12)


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes | None, str | None]]:
    """What a user would find in `directory`: each entry's type, content and link target."""
    found: dict[str, tuple[int, bytes | None, str | None]] = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
        found[str(path.relative_to(directory))] = (stat.S_IFMT(info.st_mode), content, target)
    return found


# -- senders started by this process, counted as Python starts them ----------------------

_recorders: list[list[list[str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and _recorders:
        argv = [str(a) for a in args[1]] if isinstance(args[1], (list, tuple)) else [str(args[1])]
        if "arcade_usage" in argv:
            for recorder in _recorders:
                recorder.append(argv)


sys.addaudithook(_audit)


@pytest.fixture
def spawns() -> Iterator[list[list[str]]]:
    """The command line of every sender this process starts during the test (an audit hook:
    nothing is replaced, Python reports each `subprocess.Popen`)."""
    recorder: list[list[str]] = []
    _recorders.append(recorder)
    try:
        yield recorder
    finally:
        _recorders.remove(recorder)


# -- making events wait ------------------------------------------------------------------


class _Commands:
    """Events as a CLI would capture them, for one anonymous user."""

    def __init__(self) -> None:
        self.service = UsageService()
        self.distinct_id = str(uuid.uuid4())

    def run(self, name: str, **properties: Any) -> None:
        self.service.capture(
            SUCCEEDED, self.distinct_id, {"command_name": name, **properties}, is_anon=True
        )


@pytest.fixture
def commands() -> _Commands:
    return _Commands()


def _hold_back(work_dir: Path) -> Outbox:
    """A back-off, as an outage leaves it: captures file their events and start no sender."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    outbox.back_off(retry_after=600)
    return outbox


def _clock(shift: float) -> Callable[[], float]:
    """A wall clock `shift` seconds off (ahead when positive)."""
    return lambda: time.time() + shift


def _has_command(posthog: FakePostHog, name: str) -> bool:
    return name in _names(posthog.command_events())


def _more_requests_than(posthog: FakePostHog, count: int) -> bool:
    return len(posthog.log()) > count


def _message(event: str, distinct_id: str, /, **properties: Any) -> Any:
    """A message as `UsageService` builds it (typed loosely: tests also build broken ones)."""
    return {
        "event": event,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "uuid": str(uuid.uuid4()),
    }


def _file_many(outbox: Outbox, count: int, destination: tuple[str, str] | None = None) -> list[str]:
    """File `count` command events named m0, m1...; returns those names, in order."""
    names = [f"m{i}" for i in range(count)]
    for name in names:
        outbox.put(_message(SUCCEEDED, "me", command_name=name), destination)
    return names


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", [400, 413])
def test_one_refused_message_among_seven_is_dropped_and_the_rest_go_in_order(
    posthog: FakePostHog,
    work_dir: Path,
    commands: _Commands,
    spawns: list[list[str]],
    refusal: int,
) -> None:
    outbox = _hold_back(work_dir)
    names = [f"cmd.{i}" for i in range(7)]
    for name in names:
        if name != "cmd.3":
            commands.run(name)
        elif refusal == 400:  # something in it PostHog will not parse
            posthog.refuse_message("poison", 400)
            commands.run(name, error_message="poison")
        else:  # larger than PostHog takes
            posthog.max_message_bytes = 32_000
            commands.run(name, output="x" * 40_000)
    assert spawns == []
    queued = _queued(work_dir)
    assert _names(queued) == names
    poison = queued[3]["uuid"]

    outbox.clear_backoff()
    commands.run("cmd.7")
    wait_until(lambda: len(posthog.command_events()) == 7)
    _settled(work_dir)

    delivered = posthog.command_events()
    assert _names(delivered) == ["cmd.0", "cmd.1", "cmd.2", "cmd.4", "cmd.5", "cmd.6", "cmd.7"]
    assert [m["uuid"] for m in delivered[:6]] == [m["uuid"] for m in queued if m["uuid"] != poison]
    assert Outbox(work_dir).count() == 0
    # Only the requests that carried the poison were refused; finding it took a few
    # splits of the batch, not a request per message.
    log = posthog.log()
    assert posthog.times_carried(poison) >= 1  # dropped because PostHog refused it
    assert [e.status for e in log if poison in e.uuids] == [refusal] * posthog.times_carried(poison)
    assert all(e.delivered for e in log if poison not in e.uuids)
    assert len(log) <= 1 + 2 * math.ceil(math.log2(8)), posthog.statuses()
    assert Outbox(work_dir).backoff_remaining() == 0

    # Later commands are delivered one request each; the poison is never posted again.
    before = len(log)
    for name in ("later.0", "later.1", "later.2"):
        commands.run(name)
        wait_until(partial(_has_command, posthog, name))
    _settled(work_dir)
    later = posthog.log()[before:]
    assert all(e.delivered and len(e.uuids) == 1 for e in later), later
    assert len(later) == 3
    assert posthog.times_carried(poison) == len([e for e in log if poison in e.uuids])
    assert _names(posthog.command_events())[-3:] == ["later.0", "later.1", "later.2"]


@pytest.mark.parametrize("status", [401, 400])
def test_posthog_refusing_everything_drops_the_events_and_never_retries_them(
    posthog: FakePostHog,
    work_dir: Path,
    commands: _Commands,
    track: Track,
    status: int,
) -> None:
    if status == 401:  # a project key PostHog does not know
        posthog.api_keys = {"phc_the_real_project"}
    else:
        posthog.mode, posthog.refuse_status = "refuse", 400
    outbox = _hold_back(work_dir)
    for i in range(10):
        commands.run(f"queued.{i}")
    queued = [m["uuid"] for m in _queued(work_dir)]
    outbox.clear_backoff()
    commands.run("trigger")
    wait_until(lambda: Outbox(work_dir).count() == 0)
    _settled(work_dir)

    log = posthog.log()
    assert posthog.events() == []
    assert {e.status for e in log} == {status}
    carried = {u for e in log for u in e.uuids}
    assert set(queued) < carried
    assert len(carried) == 11
    if status == 401:  # the key is wrong for every message alike: one request says so
        assert len(log) == 1
    else:  # each message is posted at most once per halving of the batch
        assert max(posthog.times_carried(u) for u in carried) <= 1 + math.ceil(math.log2(11))
        assert len(log) <= 2 * 11 - 1
    assert Outbox(work_dir).backoff_remaining() == 0

    # Every later command makes one request with its own event only: nothing comes back.
    for i in range(4):
        before = len(posthog.log())
        track(f"later.{i}")
        wait_until(partial(_more_requests_than, posthog, before))
        wait_until(lambda: Outbox(work_dir).count() == 0)
    _settled(work_dir)
    later = posthog.log()[len(log) :]
    assert len(later) == 4
    assert all(len(e.uuids) == 1 and e.uuids[0] not in carried for e in later), later
    assert posthog.events() == []


@pytest.mark.parametrize("path", ["handed-over", "queued"])
def test_a_non_utf8_path_in_an_error_is_repaired_and_strict_posthog_takes_it(
    posthog: FakePostHog, work_dir: Path, track: Track, path: str
) -> None:
    where = os.fsdecode(b"/tmp/\xff")  # a lone surrogate, as os.listdir would give it
    assert where.endswith("\udcff")
    outbox = _hold_back(work_dir) if path == "queued" else None
    track("deploy", False, error_message="cannot open " + where)
    if outbox is not None:
        assert Outbox(work_dir).count() == 1
        outbox.clear_backoff()
        track("after")

    wait_until(lambda: Outbox(work_dir).count() == 0 and posthog.command_events())
    _settled(work_dir)
    deploy = posthog.command_events()[0]
    assert deploy["properties"]["command_name"] == "deploy"
    shown = deploy["properties"]["error_message"]
    assert shown.startswith("cannot open /tmp/\ufffd")
    assert shown.rstrip("\ufffd") == "cannot open /tmp/"
    assert 400 not in posthog.statuses()


def test_lone_surrogates_anywhere_in_a_captured_event_are_repaired(
    posthog: FakePostHog, work_dir: Path
) -> None:
    bad = os.fsdecode(b"\xfe")
    UsageService().capture(
        "tool " + bad,
        "user-" + bad,
        {"command_name": "x" + bad, "key" + bad: ["a" + bad, {"n" + bad: bad}]},
    )
    [message] = wait_until(posthog.events)
    _settled(work_dir)
    # (U+FFFD where the byte was: one or more, as the decoder sees the surrogate.)
    assert message["event"].rstrip("\ufffd") == "tool "
    assert message["distinct_id"].rstrip("\ufffd") == "user-"
    assert message["properties"]["command_name"].rstrip("\ufffd") == "x"
    [(key, value)] = [(k, v) for k, v in message["properties"].items() if k.startswith("key")]
    assert key.rstrip("\ufffd") == "key"
    assert value[0].rstrip("\ufffd") == "a"
    [(inner_key, inner_value)] = value[1].items()
    assert inner_key.rstrip("\ufffd") == "n"
    assert set(inner_value) == {"\ufffd"}
    assert posthog.statuses() == [200]


@pytest.mark.parametrize(("path", "size"), [("handed-over", 200_000), ("queued", 300_000)])
def test_a_large_event_posthog_would_take_is_delivered_not_lost_or_stuck(
    posthog: FakePostHog, work_dir: Path, commands: _Commands, path: str, size: int
) -> None:
    # PostHog takes events up to about 1 MB. Linux refuses an environment string over
    # 128 KiB (E2BIG), so such an event cannot be handed over in the environment.
    outbox = _hold_back(work_dir) if path == "queued" else None
    commands.run("big", output="y" * size)
    if outbox is not None:
        assert _names(_queued(work_dir)) == ["big"]
        outbox.clear_backoff()
    commands.run("small")

    wait_until(lambda: "small" in _names(posthog.command_events()))
    _settled(work_dir)
    assert sorted(_names(posthog.command_events())) == ["big", "small"]
    assert Outbox(work_dir).count() == 0


# -- rate limits and outages -------------------------------------------------------------


def test_429_with_retry_after_30_holds_every_command_back_then_delivers_once(
    posthog: FakePostHog, work_dir: Path, track: Track, spawns: list[list[str]]
) -> None:
    posthog.rate_limit(1, "30")
    track("first")
    wait_until(lambda: posthog.statuses() == [429])
    _settled(work_dir)
    assert 25 < Outbox(work_dir).backoff_remaining() <= 30

    spawns.clear()
    for i in range(5):
        track(f"held.{i}")
    assert spawns == []
    assert posthog.requests == 1
    held = _queued(work_dir)
    assert _names(held) == ["first", *(f"held.{i}" for i in range(5))]

    # The user's clock moves 31 s on: the back-off is as if recorded that long ago.
    Outbox(work_dir, clock=_clock(-31)).back_off(retry_after=30)
    assert Outbox(work_dir).backoff_remaining() == 0
    track("after")

    wait_until(lambda: len(posthog.command_events()) == 7)
    _settled(work_dir)
    delivered = posthog.command_events()
    assert _names(delivered) == [*_names(held), "after"]
    assert [m["uuid"] for m in delivered[:6]] == [m["uuid"] for m in held]
    assert posthog.statuses() == [429, 200]
    assert len(spawns) == 1
    assert Outbox(work_dir).count() == 0
    assert Outbox(work_dir).backoff_remaining() == 0


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("30", 25, 30),
        ("an HTTP date 60 s ahead", 55, 60),
        ("99999999", 3600 - 60, 3600),  # an hour at most
        ("inf", 3600 - 60, 3600),
        ("1e309", 3600 - 60, 3600),
        ("nan", 3600 - 60, 3600),
    ],
)
def test_retry_after_sets_the_back_off_every_process_honours(
    posthog: FakePostHog,
    work_dir: Path,
    track: Track,
    retry_after: str | None,
    low: float,
    high: float,
) -> None:
    if retry_after == "an HTTP date 60 s ahead":
        when = datetime.now(timezone.utc) + timedelta(seconds=60)
        retry_after = format_datetime(when, usegmt=True)
    posthog.rate_limit(1, retry_after)
    track("limited")
    wait_until(lambda: posthog.statuses() == [429])
    _settled(work_dir)
    assert low < Outbox(work_dir).backoff_remaining() <= high
    assert _names(_queued(work_dir)) == ["limited"]


@pytest.mark.parametrize("retry_after", ["0", "soon", None, "2"])
def test_a_short_back_off_is_waited_out_by_the_sender_that_met_it(
    posthog: FakePostHog, work_dir: Path, track: Track, retry_after: str | None
) -> None:
    """A back-off that ends within the sender's life (the first one, 2 s, or a short
    `Retry-After`) leaves nothing for a later command: the same sender posts again."""
    posthog.rate_limit(1, retry_after)
    track("limited")
    wait_until(posthog.command_events, timeout=12)
    _settled(work_dir)
    assert posthog.statuses() == [429, 200]
    assert _names(posthog.command_events()) == ["limited"]
    assert Outbox(work_dir).count() == 0
    assert Outbox(work_dir).backoff_remaining() == 0


@pytest.mark.usefixtures("production_timings")  # the back-off's steps: 2 s, 4 s, 8 s
@pytest.mark.parametrize("outage", ["503", "refused"])
def test_during_an_outage_a_command_files_its_event_and_starts_no_sender(
    posthog: FakePostHog,
    work_dir: Path,
    track: Track,
    spawns: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
    outage: str,
) -> None:
    with closed_port() as down:
        if outage == "503":
            posthog.mode = "error"
        else:
            monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", down)
        track("first")
        wait_until(lambda: sender_pids(work_dir))  # (it lives for seconds: it is seen)
        _settled(work_dir)  # it tried, waited out 2 s and 4 s, and left an 8 s back-off
        assert len(spawns) == 1
        assert posthog.requests == (3 if outage == "503" else 0)
        Outbox(work_dir).back_off()  # the outage goes on: 16 s, longer than a sender lives
        requests = posthog.requests

        for name in ("two", "three", "four"):
            track(name)
        assert Outbox(work_dir).backoff_remaining() > 0
        assert len(spawns) == 1
        assert sender_pids(work_dir) == []
        assert posthog.requests == requests
        assert _names(_queued(work_dir)) == ["first", "two", "three", "four"]


# -- an outbox that touches only its own files -------------------------------------------


def test_a_symlinked_outbox_is_never_followed(
    posthog: FakePostHog,
    work_dir: Path,
    arcade_dir: Path,
    track: Track,
    spawns: list[list[str]],
) -> None:
    project = work_dir.parent / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "mine"}')
    (project / "config.json").write_text("{}")
    (project / "x.json").write_text("[1]")
    users_message = _message(SUCCEEDED, "someone", command_name="not-yours")
    (project / f"000000000001-{int(time.time())}-abcdef.json").write_text(json.dumps(users_message))
    # Files by the names of the outbox's own: what `disable` deletes and `usage log` reads
    # in a real outbox.
    sent_line = {"sent": time.time(), "messages": [users_message]}
    (project / "sent.log").write_text(json.dumps(sent_line) + "\n")
    (project / "sent.log.1").write_text(json.dumps(sent_line) + "\n")
    (project / "sent").mkdir()
    (project / "sent" / "precious.txt").write_text("keep me")
    before = _snapshot(project)
    arcade_dir.mkdir(mode=0o700)
    (arcade_dir / "usage_outbox").symlink_to(project, target_is_directory=True)

    for name in ("one", "two", "three"):
        track(name)
    assert Outbox(work_dir).names() == []
    assert Outbox(work_dir).count() == 0
    assert usage_log() == []  # nothing read through it
    disable_tracking()
    enable_tracking()
    assert spawns == []
    sender = subprocess.run(
        [sys.executable, "-m", "arcade_usage"],
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    _settled(work_dir)

    assert (sender.returncode, sender.stdout, sender.stderr) == (0, "", "")
    assert posthog.requests == 0
    assert _snapshot(project) == before
    assert (arcade_dir / "usage_outbox").is_symlink()


def _foreign(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What a snapshot holds beside the outbox's bookkeeping (dot files, the sent log)."""
    return {k: v for k, v in snapshot.items() if not k.startswith((".", "sent"))}


DOT_TMP_NAMES = (".mine.tmp", ".notes.json.tmp", ".sent.log.tmp")


def _foreign_entries(directory: Path, home: Path, queued: int) -> None:
    """What the outbox did not write, named (but one) as its messages, dated `queued`."""
    (home / "notes.json").write_text('{"mine": true}')
    as_dir = directory / f"000000000000-{queued:010d}-d1.json"
    as_dir.mkdir()
    (as_dir / "inside.txt").write_text("kept")
    os.mkfifo(directory / f"000000000000-{queued:010d}-f1f0.json")
    (directory / f"000000000000-{queued:010d}-a1.json").symlink_to(home / "notes.json")
    (directory / "backup.json").write_text(json.dumps(_message(SUCCEEDED, "x", command_name="b")))
    (directory / "README").write_text("hello")
    for name in DOT_TMP_NAMES:  # a dot and .tmp, but not named as its own temp files are
        (directory / name).write_text("kept")
        two_hours_ago = time.time() - 7200
        os.utime(directory / name, (two_hours_ago, two_hours_ago))


@pytest.mark.parametrize("dated", ["now", "8 days ago"])
def test_entries_the_outbox_did_not_write_are_left_alone_and_never_stall_it(
    posthog: FakePostHog, work_dir: Path, track: Track, dated: str
) -> None:
    outbox = Outbox(work_dir)
    outbox.prepare()
    queued = int(time.time() - (8 * DAY if dated != "now" else 0))
    _foreign_entries(Path(outbox.directory), work_dir, queued)
    # A temp file of its own, left by a writer killed two hours ago: that one goes.
    own_temp = Path(outbox.directory) / ".sent.log.0123abcd.tmp"
    own_temp.write_text('{"sent": 1')
    os.utime(own_temp, (time.time() - 7200, time.time() - 7200))
    before = _snapshot(Path(outbox.directory))
    notes = (work_dir / "notes.json").read_bytes()

    started = time.monotonic()
    for name in ("one", "two", "three"):
        track(name)
    wait_until(lambda: len(posthog.command_events()) == 3, timeout=8)
    delivered_after = time.monotonic() - started
    _settled(work_dir)
    finished_after = time.monotonic() - started

    assert sorted(_names(posthog.command_events())) == ["one", "three", "two"]
    assert set(posthog.statuses()) == {200}
    after = _snapshot(Path(outbox.directory))
    assert _foreign(after) == _foreign(before)
    assert [after.get(name) for name in DOT_TMP_NAMES] == [before[name] for name in DOT_TMP_NAMES]
    assert not own_temp.exists()
    assert (work_dir / "notes.json").read_bytes() == notes
    # Delivered as on a good day, and the uploader leaves once it is done (it lingers
    # about a second), not at its deadline, held by entries that are not its own.
    assert delivered_after < 3, delivered_after
    assert finished_after < delivered_after + 3, (delivered_after, finished_after)
    assert Outbox(work_dir).count() == 0


def test_disable_leaves_entries_it_did_not_write(work_dir: Path) -> None:
    outbox = Outbox(work_dir)
    outbox.prepare()
    _foreign_entries(Path(outbox.directory), work_dir, int(time.time()))
    outbox.put(_message(SUCCEEDED, "me", command_name="mine"))
    before = _snapshot(Path(outbox.directory))

    disable_tracking()

    after = _snapshot(Path(outbox.directory))
    assert [k for k in _foreign(before) if k not in after] == [
        name for name in before if name.startswith("000000000001-")
    ]
    assert all(after[k] == before[k] for k in _foreign(after))


BOOKKEEPING = (".seq", ".accept.lock", ".upload.lock", ".backoff")


@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory"])
def test_anything_planted_as_its_bookkeeping_files_blocks_nothing_and_is_left_whole(
    posthog: FakePostHog,
    work_dir: Path,
    track: Track,
    spawns: list[list[str]],
    planted: str,
) -> None:
    """A link, a FIFO or a directory in place of `.seq`, the locks and the back-off: moved
    aside (never followed, read or deleted), and every event goes."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    user_file = work_dir / "thesis.txt"
    user_file.write_bytes(b"three years of work")
    for name in BOOKKEEPING:
        path = Path(outbox.directory) / name
        if planted == "symlink":
            path.symlink_to(user_file)
        elif planted == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
            (path / "inside").write_text("kept")

    for i in range(5):
        track(f"cmd.{i}")
    wait_until(lambda: len(posthog.command_events()) == 5, timeout=12)
    _settled(work_dir)

    assert sorted(_names(posthog.command_events())) == [f"cmd.{i}" for i in range(5)]
    assert len(spawns) <= 3
    assert user_file.read_bytes() == b"three years of work"
    moved = [p for p in Path(outbox.directory).iterdir() if p.name.endswith(".displaced")]
    assert len(moved) == 3 + (planted == "directory")  # a file at .backoff is replaced
    if planted == "directory":
        assert all((p / "inside").read_text() == "kept" for p in moved)


@pytest.mark.parametrize("broken", ["a file in its place", "mode 000"])
def test_an_outbox_broken_then_mended_delivers_what_waits(
    posthog: FakePostHog, work_dir: Path, track: Track, spawns: list[list[str]], broken: str
) -> None:
    """While the outbox cannot be written, captures start no sender (nothing to carry);
    once it is mended, the next command's sender delivers what waited and the new event."""
    if broken == "mode 000" and os.geteuid() == 0:
        pytest.skip("root writes through mode 000")
    outbox = _hold_back(work_dir)
    track("waiting")
    directory = Path(outbox.directory)
    aside = directory.with_name("usage_outbox.aside")
    if broken == "mode 000":
        directory.chmod(0)
    else:
        directory.rename(aside)
        directory.write_text("not a directory")
    try:
        for i in range(20):
            track(f"while-broken.{i}")
        assert spawns == []
    finally:
        if broken == "mode 000":
            directory.chmod(0o700)
        else:
            directory.unlink()
            aside.rename(directory)
    outbox.clear_backoff()
    track("after")
    wait_until(lambda: "after" in _names(posthog.command_events()), timeout=12)
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["waiting", "after"]
    assert len(spawns) == 1


def test_sequence_numbers_of_any_length_keep_the_order(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    """`.seq` made a sparse terabyte: 13-digit numbers, still in order, all delivered."""
    outbox = _hold_back(work_dir)
    seq = Path(outbox.directory) / ".seq"
    with seq.open("ab") as f:
        f.truncate(10**12 - 3)
    for i in range(4):
        track(f"cmd.{i}")
    names = Outbox(work_dir).names()
    assert [len(n.split("-")[0]) for n in names] == [12, 12, 13, 13]
    outbox.clear_backoff()
    track("cmd.4")
    wait_until(lambda: len(posthog.command_events()) == 5, timeout=12)
    _settled(work_dir)
    assert _names(posthog.command_events()) == [f"cmd.{i}" for i in range(5)]


def test_an_entry_caught_mid_write_is_neither_sent_nor_dropped_nor_in_the_way(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    """An entry is created under its name, then written: a sender may list it between the
    two (its writer preempted, stopped, or killed there). Such an entry is left for its
    writer and holds nothing back; once written it goes like any other; one still empty
    an hour on was a writer's killed mid-write, and is dropped."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    directory = Path(outbox.directory)
    token = uuid.uuid4().hex
    writing = directory / f"000000000000-{int(time.time())}-{token}.json"
    writing.touch(mode=0o600)  # numbered first: created, not written yet
    killed = directory / f"000000000000-{int(time.time())}-{uuid.uuid4().hex}.json"
    killed.touch(mode=0o600)
    an_hour_ago = time.time() - 3700
    os.utime(killed, (an_hour_ago, an_hour_ago))

    track("after.1")
    track("after.2")
    wait_until(lambda: len(posthog.command_events()) == 2, timeout=8)
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["after.1", "after.2"]
    assert writing.read_bytes() == b""  # left to its writer
    assert not killed.exists()

    # The writer goes on: its entry is delivered by the next sender, as written.
    message = _message(SUCCEEDED, "me", command_name="written.late")
    entry = {"host": posthog.url, "api_key": "phc_test", "message": message}
    with writing.open("ab") as f:
        f.write(json.dumps(entry).encode())
    track("after.3")
    wait_until(lambda: len(posthog.command_events()) == 4, timeout=8)
    assert sorted(_names(posthog.command_events())[2:]) == ["after.3", "written.late"]
    assert [m["uuid"] for m in posthog.messages if m["uuid"] == message["uuid"]] == [
        message["uuid"]
    ]


def test_a_symlink_put_in_place_of_the_sent_log_is_never_followed(
    work_dir: Path, tmp_path: Path
) -> None:
    """`sent.log` replaced by a link to a file of the user's after one delivery: the next
    delivery writes neither there nor through it, and the log goes on beside."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    first, second = (_message(SUCCEEDED, "me", command_name=n) for n in "ab")
    outbox.log_sent([first])
    sent = Path(outbox.directory) / "sent.log"
    assert [json.loads(line)["messages"] for line in sent.read_bytes().splitlines()] == [[first]]
    users = tmp_path / "users-file"
    users.write_bytes(b"three years of work")
    sent.unlink()
    sent.symlink_to(users)
    outbox.log_sent([second])
    assert users.read_bytes() == b"three years of work"
    assert not sent.is_symlink()
    assert [m for sent_, m in outbox.log() if sent_] == [second]


def test_the_sent_log_stays_within_its_bound_and_shows_the_newest_first(work_dir: Path) -> None:
    """What `arcade usage log` reads: appended a batch at a time, never past its byte bound
    however much is sent, newest first; an older version's `sent/` is removed."""
    from arcade_usage._outbox import SENT_MAX_BYTES

    outbox = Outbox(work_dir)
    outbox.prepare()
    legacy = Path(outbox.directory) / "sent"
    legacy.mkdir()
    (legacy / f"000000000001-{int(time.time())}-abcdef.json").write_text("{}")
    padding = "x" * 2000
    sent = 0
    while sent * 2000 < 3 * SENT_MAX_BYTES:  # three times the bound, in batches of 100
        batch = [
            _message(SUCCEEDED, "me", command_name=f"c{sent + i}", pad=padding) for i in range(100)
        ]
        outbox.log_sent(batch)
        sent += 100
    outbox.prune()
    files = [p for p in Path(outbox.directory).iterdir() if p.name.startswith("sent")]
    assert sorted(p.name for p in files) == ["sent.log", "sent.log.1"]
    assert sum(p.stat().st_size for p in files) <= SENT_MAX_BYTES + 100 * 3000
    shown = [m["properties"]["command_name"] for was_sent, m in outbox.log() if was_sent]
    assert shown[0] == f"c{sent - 1}"
    assert shown == [f"c{i}" for i in range(sent - 1, sent - 1 - len(shown), -1)]
    assert len(shown) > SENT_MAX_BYTES // 2 // 2500


@pytest.mark.parametrize("through_descriptor", [True, False], ids=["dir-fd", "by-path"])
def test_an_older_versions_sent_directory_goes_and_what_it_links_to_stays(
    work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, through_descriptor: bool
) -> None:
    """`sent/` (a file per event, an older version's log) is deleted at the next prune,
    on POSIX through a descriptor of it, elsewhere (Windows) by path: its files go, a link
    in it and the user's file behind the link stay."""
    if not through_descriptor:
        monkeypatch.setattr(os, "supports_dir_fd", set())
    outbox = Outbox(work_dir)
    outbox.prepare()
    legacy = Path(outbox.directory) / "sent"
    legacy.mkdir()
    (legacy / f"000000000001-{int(time.time())}-abcdef.json").write_text("{}")
    users = tmp_path / "users-file"
    users.write_text("three years of work")
    (legacy / "link.json").symlink_to(users)
    outbox.prune()
    assert users.read_text() == "three years of work"
    assert [p.name for p in legacy.iterdir()] == ["link.json"]
    (legacy / "link.json").unlink()
    outbox.prune()
    assert not legacy.exists()


def test_the_sent_log_keeps_seven_days_on_disk_while_deliveries_go_on(work_dir: Path) -> None:
    """A delivery a day for three weeks, each sender pruning as it starts: what is on disk,
    not only what `usage log` shows, is never much older than seven days, and the last
    seven days are all there."""
    start = time.time()
    now = [start]
    outbox = Outbox(work_dir, clock=lambda: now[0])
    outbox.prepare()
    sent = Path(outbox.directory) / "sent.log"
    for day in range(21):
        now[0] = start + day * DAY
        outbox.prune()
        outbox.log_sent([_message(SUCCEEDED, "me", command_name=f"day.{day}")])
        os.utime(sent, (now[0], now[0]))  # the file's date, as days really passing give it
        on_disk = [json.loads(line)["sent"] for line in sent.read_bytes().splitlines()]
        assert now[0] - min(on_disk) <= 7 * DAY + 3600, f"day {day}"
    shown = [m["properties"]["command_name"] for was_sent, m in outbox.log() if was_sent]
    assert shown == [f"day.{d}" for d in range(20, 12, -1)]


def test_a_line_of_the_sent_log_cut_short_spoils_only_itself(work_dir: Path) -> None:
    """A crash (or a full disk) mid-line: the next delivery is logged on a line of its own."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    first, second, third = (_message(SUCCEEDED, "me", command_name=n) for n in "abc")
    outbox.log_sent([first])
    sent = Path(outbox.directory) / "sent.log"
    line = sent.read_bytes()
    outbox.log_sent([second])
    sent.write_bytes(line + sent.read_bytes()[len(line) :][:40])  # `second` cut short
    outbox.log_sent([third])
    assert [m for was_sent, m in outbox.log() if was_sent] == [third, first]


def test_a_message_no_utf8_can_hold_is_logged_as_sent_without_raising(work_dir: Path) -> None:
    """An entry of foreign make may hold a lone surrogate: the log takes it (ASCII lines)."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    odd = _message(SUCCEEDED, "me", command_name="odd\udce9")
    outbox.log_sent([odd])
    assert [m for was_sent, m in outbox.log() if was_sent] == [odd]


def test_a_directory_in_place_of_the_older_sent_log_does_not_unbound_it(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sent.log.1` made a directory: rotation moves it aside and goes on; the bound holds."""
    import arcade_usage._outbox as outbox_module

    monkeypatch.setattr(outbox_module, "SENT_MAX_BYTES", 20_000)
    outbox = Outbox(work_dir)
    outbox.prepare()
    directory = Path(outbox.directory)
    (directory / "sent.log.1").mkdir()
    (directory / "sent.log.1" / "kept").write_text("the user's")
    for i in range(60):
        outbox.log_sent([_message(SUCCEEDED, "me", command_name=f"c{i}", pad="x" * 800)])
    assert (directory / "sent.log.1").is_file()
    parts = [p for p in (directory / "sent.log", directory / "sent.log.1") if p.exists()]
    assert sum(p.stat().st_size for p in parts) <= 20_000 + 2000
    moved = [p for p in directory.iterdir() if p.name.startswith("sent.log.1.")]
    assert [(p / "kept").read_text() for p in moved] == ["the user's"]
    shown = [m["properties"]["command_name"] for was_sent, m in outbox.log() if was_sent]
    assert shown[:3] == ["c59", "c58", "c57"]


def test_an_entry_removed_while_its_writer_was_stopped_is_filed_again(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stopped between creating its entry and writing it for over an hour (or a
    clock that jumped): a reader drops the empty entry as abandoned. The writer, back,
    files the message again under a new number rather than into the removed file."""
    import arcade_usage._outbox as outbox_module

    real_write_all = outbox_module._write_all
    stalls = [1]

    def write_after_a_reader_took_it(fd: int, data: bytes, *, durable: bool) -> None:
        if stalls:
            stalls.pop()
            (name,) = Outbox(work_dir).names()
            an_hour_ago = time.time() - 3700
            os.utime(Path(Outbox(work_dir).directory) / name, (an_hour_ago, an_hour_ago))
            assert Outbox(work_dir).read(name) is None  # the reader's look: dropped
            assert Outbox(work_dir).names() == []
        real_write_all(fd, data, durable=durable)

    monkeypatch.setattr(outbox_module, "_write_all", write_after_a_reader_took_it)
    message = _message(SUCCEEDED, "me", command_name="stalled")
    outbox = Outbox(work_dir)
    name = outbox.put(message)
    assert outbox.names() == [name]
    assert outbox.read(name) == message


# -- a clock set forward and back --------------------------------------------------------


def test_an_alias_queued_while_the_clock_ran_fast_is_still_delivered_first(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    anon, principal = str(uuid.uuid4()), f"prn_{uuid.uuid4().hex[:8]}"
    ahead = Outbox(work_dir, clock=_clock(3 * DAY))
    ahead.put(_message(ALIAS, anon, distinct_id=anon, alias=principal))
    # The clock is set right: the login event is dated three days before the alias.
    Outbox(work_dir).put(_message(SUCCEEDED, principal, command_name="login"))
    track("whoami")

    wait_until(lambda: len(posthog.events()) == 3)
    _settled(work_dir)
    assert _names(posthog.events()) == [ALIAS, "login", "whoami"]
    assert posthog.same_person(anon, principal)
    assert Outbox(work_dir).count() == 0


def test_entries_dated_more_than_seven_days_away_either_way_are_dropped_unsent(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    stale = []
    for shift in (8 * DAY, -8 * DAY):
        message = _message(SUCCEEDED, "me", command_name=f"shifted {shift:+.0f}")
        Outbox(work_dir, clock=_clock(shift)).put(message)
        stale.append(message["uuid"])
    Outbox(work_dir, clock=_clock(6 * DAY)).put(
        _message(SUCCEEDED, "me", command_name="six days ahead")
    )
    track("now")

    wait_until(lambda: len(posthog.command_events()) == 2)
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["six days ahead", "now"]
    assert all(posthog.times_carried(u) == 0 for u in stale)
    assert Outbox(work_dir).count() == 0


def test_during_an_outage_the_cap_keeps_the_newest_ten_thousand_by_order_not_by_date(
    work_dir: Path,
) -> None:
    first = _message(SUCCEEDED, "me", command_name="first, clock ahead")
    Outbox(work_dir, clock=_clock(6 * DAY)).put(first)
    outbox = Outbox(work_dir)
    _file_many(outbox, 9997)
    last = _message(SUCCEEDED, "me", command_name="last, clock behind")
    Outbox(work_dir, clock=_clock(-6 * DAY)).put(last)
    # (The 10,000th is filed by today's clock: the one that files it prunes, by its clock.)
    outbox.put(_message(SUCCEEDED, "me", command_name="m9997"))
    outbox.put(_message(SUCCEEDED, "me", command_name="one too many"))
    # No outage, so nothing is dropped for the backlog's length: PostHog taking it all
    # (no failure recorded), a hiccup a sender waits out, or an hour's back-off of
    # another destination that ended an hour ago.
    assert len(outbox.prune()) == 10_001
    outbox.back_off()
    assert len(outbox.prune()) == 10_001
    Outbox(work_dir, clock=_clock(-2 * 3600)).back_off(3600, ("http://127.0.0.1:9", "phc_gone"))
    assert len(outbox.prune()) == outbox.count() == 10_001

    outbox.back_off(retry_after=60)  # PostHog is down for a while: an outage
    kept = outbox.prune()

    assert len(kept) == outbox.count() == 10_000
    names = _names(_queued(work_dir))
    assert names[0] == "m0"
    assert names[-3:] == ["last, clock behind", "m9997", "one too many"]
    assert "first, clock ahead" not in names


def test_during_an_outage_the_capturing_process_keeps_the_outbox_within_the_cap(
    work_dir: Path,
) -> None:
    """No sender comes during a long back-off: the process filing applies the cap."""
    outbox = Outbox(work_dir)
    outbox.prepare()
    outbox.back_off(retry_after=600)
    _file_many(outbox, 11_000)
    wait_until(lambda: outbox.count() == 10_000)  # pruned on a thread of its own
    assert _names(_queued(work_dir))[0] == "m1000"


def test_with_no_sender_at_work_the_capturing_process_applies_the_age_bound(
    work_dir: Path,
) -> None:
    """No sender came (none could be started, say): the process filing prunes."""
    for _ in range(10):
        Outbox(work_dir, clock=_clock(-8 * DAY)).put(_message(SUCCEEDED, "me", command_name="old"))
    outbox = Outbox(work_dir)
    _file_many(outbox, 990)  # the 1,000th entry has the bounds applied on a thread
    wait_until(lambda: outbox.count() == 990)
    assert "old" not in _names(_queued(work_dir))


def test_a_backlog_past_ten_thousand_while_posthog_takes_everything_is_delivered_whole(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    """Busy servers can file faster than the sender gets the CPU to post: late, not lost."""
    outbox = Outbox(work_dir)
    backlog = _file_many(outbox, 10_050)
    track("last")

    wait_until(lambda: len(posthog.command_events()) == len(backlog) + 1, timeout=40)
    _settled(work_dir)
    assert _names(posthog.command_events()) == [*backlog, "last"]  # in order, once each
    assert outbox.count() == 0


@pytest.mark.usefixtures("production_timings")  # the accepting window ends inside the back-off
def test_a_backlog_past_ten_thousand_is_delivered_whole_by_the_final_look(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    """PostHog asks to wait 5 s: the sender stops accepting before it may post, so what
    waits goes in its final look, every entry of it, the last command's included."""
    outbox = Outbox(work_dir)
    backlog = _file_many(outbox, 10_050)
    posthog.rate_limit(1, "5")
    track("last")

    wait_until(lambda: len(posthog.command_events()) == len(backlog) + 1, timeout=20)
    assert _names(posthog.command_events()) == [*backlog, "last"]
    assert posthog.statuses()[0] == 429
    _settled(work_dir)
    assert outbox.count() == 0


def test_entries_cleared_during_a_request_are_not_sent_from_the_senders_memory(
    work_dir: Path,
) -> None:
    """`disable` then `enable` while PostHog takes the first of several batches: what was
    cleared and not yet posted is never sent ("nothing recorded before it is sent after it").
    The uploader itself, in this process, its request a function of the test's."""
    from arcade_usage._outbox import run_sender, timings_from

    destination = ("http://127.0.0.1:9", "phc_test")
    outbox = Outbox(work_dir)
    _file_many(outbox, 7000, destination)  # three batches and more
    posted: list[int] = []

    def post(batch: list[dict[str, Any]], *, host: str, api_key: str, timeout: float) -> None:
        posted.append(len(batch))
        if len(posted) == 1:
            disable_tracking()
            enable_tracking()

    run_sender(
        outbox,
        post=post,
        default=destination,
        started=time.monotonic(),
        accept_fd=None,
        take_accept=False,
        timings=timings_from("linger=0.2"),  # a batch a second: not listed again meanwhile
    )
    assert len(posted) == 1
    assert posted[0] < 7000
    assert outbox.count() == 0


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers")
def test_a_capture_from_a_signal_handler_amid_a_capture_files_both(work_dir: Path) -> None:
    """A server's signal handler may track an event while its own thread is filing one."""
    outbox = Outbox(work_dir)
    from_handler: list[str] = []

    def handler(signum: int, frame: object) -> None:
        from_handler.append(outbox.put(_message(SUCCEEDED, "me", command_name="handler")))

    previous = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, 0.0002, 0.0002)  # every 0.2 ms of CPU
    try:
        _file_many(outbox, 2000)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    assert from_handler
    numbers = [name.split("-")[0] for name in outbox.names()]
    assert len(numbers) == 2000 + len(from_handler)
    assert len(set(numbers)) == len(numbers)  # each its own place in the order


def test_a_back_off_recorded_while_the_clock_ran_ahead_ends_after_its_delay(
    work_dir: Path,
) -> None:
    outbox = Outbox(work_dir)
    outbox.prepare()
    # Recorded for an hour while the clock was two hours ahead; the clock is right now.
    Outbox(work_dir, clock=_clock(2 * 3600)).back_off(retry_after=3600)
    assert outbox.backoff_remaining() == 0
    # Recorded for an hour while the clock was two hours behind: an hour, no more.
    Outbox(work_dir, clock=_clock(-2 * 3600)).back_off(retry_after=3600)
    assert outbox.backoff_remaining() == 0
    outbox.back_off(retry_after=3600)
    assert 3500 < outbox.backoff_remaining() <= 3600


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not UTF-8",
        b"[1, 2]",
        b'{"until": "soon", "delay": 2}',
        b'{"until": 1'
        + b"0" * 400
        + b', "delay": 1'
        + b"0" * 400
        + b', "failures": 1'
        + b"0" * 400
        + b"}",
        b'{"until": 1e999, "delay": 1e999, "failures": 1e999, "pending": true}',
        b'{"http://h phc": {"until": 1e999, "delay": 1e999, "failures": 1e999}}',
        b'{"http://h phc": {"until": NaN, "delay": NaN, "failures": "many"}}',
    ],
    ids=["empty", "not-utf8", "a-list", "a-string", "huge-integers", "infinite", "inf", "nan"],
)
def test_a_back_off_file_that_makes_no_sense_holds_nothing_back(
    work_dir: Path, content: bytes
) -> None:
    outbox = Outbox(work_dir)
    outbox.prepare()
    (Path(outbox.directory) / ".backoff").write_bytes(content)
    destination = ("http://h", "phc")
    assert outbox.backoff_remaining() == 0
    assert outbox.blocking_backoff(destination) == 0
    assert 0 < outbox.back_off(None, destination) <= 3600  # a failure starts one afresh
    assert 0 < outbox.backoff_remaining(destination) <= 3600


# -- consent, checked by the sender itself -----------------------------------------------


@pytest.mark.parametrize("off", ["DO_NOT_TRACK=1", "ARCADE_USAGE_TRACKING=off", "usage_disabled"])
def test_a_sender_run_while_tracking_is_off_uploads_nothing(
    posthog: FakePostHog, work_dir: Path, off: str
) -> None:
    env = {**os.environ}
    if off == "usage_disabled":
        disable_tracking()
    else:
        name, value = off.split("=")
        env[name] = value
    outbox = Outbox(work_dir)
    for i in range(3):  # left by an earlier process, or filed in a race with `disable`
        outbox.put(_message(SUCCEEDED, "me", command_name=f"waiting.{i}"))
    before = _snapshot(Path(outbox.directory))

    sender = subprocess.run(
        [sys.executable, "-m", "arcade_usage"],
        env=env,
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )

    assert (sender.returncode, sender.stdout, sender.stderr) == (0, "", "")
    assert posthog.requests == 0
    assert _snapshot(Path(outbox.directory)) == before


def test_events_waiting_at_disable_are_never_sent_after_enable(
    posthog: FakePostHog, work_dir: Path, track: Track
) -> None:
    outbox = _hold_back(work_dir)
    track("before.0")
    track("before.1")
    assert Outbox(work_dir).count() == 2

    disable_tracking()
    assert Outbox(work_dir).count() == 0
    track("while-off")
    assert enable_tracking()
    outbox.clear_backoff()
    track("after")

    wait_until(posthog.command_events)
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["after"]
    assert Outbox(work_dir).count() == 0
