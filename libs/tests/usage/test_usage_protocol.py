"""The sending protocol's promises, each as a user would see it at PostHog.

Nothing is left for a later command after a short back-off or a killed uploader;
each message goes to the host and project of the process that captured it; a
pre-fork server's children track at once; the timings' relations hold. Real
senders, real locks, real signals, loopback PostHogs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from arcade_usage import SUCCEEDED, Outbox, UsageService
from arcade_usage._outbox import PRODUCTION, Timings, check, timings_from
from helpers import sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(90)

NO_LATER_COMMAND = 10.0
"""Seconds within which an event must arrive with no command after it (the hidden checks)."""


def _names(messages: list[dict[str, Any]]) -> list[str]:
    return [m["properties"]["command_name"] for m in messages]


def _settled(work_dir: Path) -> None:
    wait_until(lambda: not sender_pids(work_dir), timeout=12)


class _Shell:
    """One user's shell: events captured with its own PostHog host and project key."""

    def __init__(self, host: str | None = None, api_key: str | None = None) -> None:
        self.service = UsageService(host=host, api_key=api_key)
        self.distinct_id = str(uuid.uuid4())

    def run(self, name: str) -> None:
        self.service.capture(SUCCEEDED, self.distinct_id, {"command_name": name}, is_anon=True)


# -- nothing stranded ------------------------------------------------------------------------


@pytest.mark.usefixtures("production_timings")  # a bound in production's seconds
@pytest.mark.parametrize("uploader", ["still there", "gone"])
def test_the_last_command_during_a_short_back_off_arrives_with_the_backlog(
    posthog: FakePostHog, work_dir: Path, uploader: str
) -> None:
    """PostHog answered 503 once; a second after it recovered, the user's last command.

    Whether the uploader that met the 503 is still there or gone, the backlog and the
    last event arrive within 10 s, and no command comes after.
    """
    shell = _Shell()
    if uploader == "still there":
        posthog.mode = "error"
        shell.run("backlog")
        wait_until(lambda: posthog.requests >= 1)
        wait_until(lambda: posthog.statuses() == [503])
        posthog.mode = "ok"
    else:  # as an uploader leaves it: the backlog, and the first back-off (2 s)
        outbox = Outbox(work_dir)
        outbox.prepare()
        outbox.back_off(retry_after=600)  # (so that no sender starts for the backlog)
        shell.run("backlog")
        outbox.clear_backoff()
        assert outbox.back_off() == 2
    assert Outbox(work_dir).backoff_remaining() > 0
    time.sleep(1)  # the user's pause: part of the scenario, not a synchronisation

    last = time.monotonic()
    shell.run("last")
    wait_until(lambda: len(posthog.command_events()) == 2, timeout=NO_LATER_COMMAND)
    assert time.monotonic() - last < NO_LATER_COMMAND
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["backlog", "last"]
    assert Outbox(work_dir).count() == 0


@pytest.mark.usefixtures("production_timings")  # a bound in production's seconds
def test_after_an_uploader_is_killed_mid_request_the_next_command_arrives_alone(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """Its in-flight record is a back-off only as long as its request could have lasted:
    the next command's sender waits that out and delivers both, with no later command."""
    shell = _Shell()
    posthog.mode = "hang"
    shell.run("in flight")
    wait_until(lambda: posthog.requests >= 1)
    for pid in sender_pids(work_dir):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Outbox(work_dir).upload_lock_held())
    posthog.mode = "ok"
    posthog.release.set()

    next_command = time.monotonic()
    shell.run("next")
    wait_until(lambda: len(posthog.command_events()) == 2, timeout=NO_LATER_COMMAND)
    assert time.monotonic() - next_command < NO_LATER_COMMAND
    _settled(work_dir)
    assert _names(posthog.command_events()) == ["in flight", "next"]


def test_an_event_captured_while_the_sender_takes_its_final_look_is_not_stranded(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """Captures at every moment of senders' lives (a steady trickle across several
    hand-overs): every event arrives, none waits for a later command."""
    shell = _Shell()
    names = [f"tick.{i}" for i in range(60)]
    for name in names:
        shell.run(name)
        time.sleep(0.05)  # the trickle itself: 20 commands a second for three seconds
    wait_until(lambda: len(posthog.command_events()) == 60, timeout=NO_LATER_COMMAND)
    _settled(work_dir)
    assert sorted(_names(posthog.command_events())) == sorted(names)


def test_a_capture_asks_the_accepting_lock_of_the_file_now_in_place(work_dir: Path) -> None:
    """A thread keeps the descriptor on which it found the accepting lock held. When
    `.accept.lock` has been moved aside and let go since, the sender it starts holds the
    lock of the file now at the path, not of the old one; and while that one is held,
    nothing is started."""
    fcntl = pytest.importorskip("fcntl")
    outbox = Outbox(work_dir)
    outbox.prepare()
    path = Path(outbox.directory) / ".accept.lock"
    destination = ("http://127.0.0.1:9", "phc_test")
    handed: list[int] = []

    def start(fd: int | None) -> bool:
        assert fd is not None
        handed.append(os.fstat(fd).st_ino)
        return False  # nothing started: the capture lets the lock go

    def held_elsewhere() -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    holder = held_elsewhere()
    assert outbox.hand_over(destination, start) is False
    assert handed == []  # a sender accepts: nothing started
    old = path.stat().st_ino
    path.rename(path.with_name(".accept.lock.aside"))
    os.close(holder)
    outbox.hand_over(destination, start)
    assert handed == [path.stat().st_ino]
    assert handed[0] != old

    holder = held_elsewhere()
    outbox.hand_over(destination, start)
    assert handed == [path.stat().st_ino]  # held: nothing more started
    os.close(holder)
    outbox.hand_over(destination, start)
    assert handed == [path.stat().st_ino] * 2


# -- each message to its own destination -------------------------------------------------------


def test_two_shells_with_two_projects_each_send_to_their_own(work_dir: Path) -> None:
    """A staging shell and a default one, interleaved in one home: every event reaches its
    own host with its own key, none the other's, whichever process uploads it."""
    staging, default = FakePostHog(), FakePostHog()
    staging.api_keys, default.api_keys = {"phc_staging"}, {"phc_default"}
    staging.start()
    default.start()
    try:
        shells = {
            "staging": _Shell(staging.url, "phc_staging"),
            "default": _Shell(default.url, "phc_default"),
        }
        for i in range(3):
            for name, shell in shells.items():
                shell.run(f"{name}.{i}")
        wait_until(lambda: len(staging.events()) + len(default.events()) >= 6)
        _settled(work_dir)
        assert _names(staging.command_events()) == [f"staging.{i}" for i in range(3)]
        assert _names(default.command_events()) == [f"default.{i}" for i in range(3)]
        assert set(staging.statuses()) == set(default.statuses()) == {200}
    finally:
        staging.stop()
        default.stop()


# -- fork --------------------------------------------------------------------------------------

PRE_FORK = """
import json, os, sys, threading
from arcade_usage import ServerTracker

calls = int(sys.argv[1])
tracker = ServerTracker(server_version="1.2.3")
tracker.track_server_start(transport="http", tool_count=1)
stop = threading.Event()
made = [0]

def busy():  # a parent thread tracking while the parent forks
    while not stop.is_set():
        tracker.track_tool_call(success=True)
        made[0] += 1

threads = [threading.Thread(target=busy) for _ in range(2)]
for t in threads:
    t.start()
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        for _ in range(calls):
            tracker.track_tool_call(success=True)
        os._exit(0)
    children.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in children]
stop.set()
for t in threads:
    t.join()
print(json.dumps({"statuses": statuses, "parent_calls": made[0]}), flush=True)
"""


@pytest.mark.parametrize("trial", range(3))
def test_children_forked_while_a_parent_thread_tracks_work_at_once(
    posthog: FakePostHog, work_dir: Path, trial: int
) -> None:
    calls = 25
    result = subprocess.run(
        [sys.executable, "-c", PRE_FORK, str(calls)],
        capture_output=True,
        text=True,
        timeout=30,  # a child deadlocked on a lock held at fork would hang here
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["statuses"] == [0, 0, 0, 0]
    expected = 1 + report["parent_calls"] + 4 * calls
    wait_until(lambda: len(posthog.events()) >= expected, timeout=30)
    _settled(work_dir)
    events = posthog.events()
    assert len(events) == expected
    assert len({e["uuid"] for e in events}) == expected


# -- timings -----------------------------------------------------------------------------------


def test_the_production_timings_keep_their_relations() -> None:
    """The relations the protocol relies on, on the production figures."""
    t = PRODUCTION
    assert (t.life, t.request, t.linger, t.interval, t.backoff) == (10.0, 5.0, 1.0, 1.0, 2.0)
    check(t)
    assert t.linger < t.accept_window  # a sender lingers before it must stop accepting
    assert t.accept_window + t.request + t.exit_margin <= t.life  # its final request fits
    assert t.backoff <= t.waitable  # PostHog's hiccup (503 once) is waited out
    assert t.request <= t.waitable  # so is a killed uploader's in-flight record


@pytest.mark.parametrize(
    "text",
    ["linger=6", "interval=5", "backoff=9", "request=9", "life=x", "linger=-1"],
)
def test_timings_that_break_a_relation_are_refused(text: str) -> None:
    name, value = text.split("=")
    with pytest.raises(ValueError, match="breaks"):
        Timings(**{name: float(value) if value != "x" else float("nan")})
    assert timings_from(text) is PRODUCTION


def test_shortened_timings_keep_the_relations() -> None:
    short = timings_from("life=4,request=2,linger=0.2,interval=0.1,backoff=0.5")
    assert short is not PRODUCTION
    assert (short.life, short.linger) == (4.0, 0.2)


# -- ambiguous answers -------------------------------------------------------------------------


def test_a_batch_that_timed_out_is_sent_whole_once_more_then_halved(
    posthog: FakePostHog, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout may hide a delivery: the batch goes whole once more, then half of it,
    so that a slow PostHog does not get the same events again and again."""
    monkeypatch.setenv(
        "ARCADE_USAGE_TIMINGS", "life=6,request=1,linger=0.2,interval=0.2,backoff=0.25"
    )
    shell = _Shell()
    outbox = Outbox(work_dir)
    outbox.prepare()
    outbox.back_off(retry_after=600)
    for i in range(8):
        shell.run(f"queued.{i}")
    names = outbox.names()
    first, last = outbox.read(names[0]), outbox.read(names[-1])
    assert first is not None
    assert last is not None
    outbox.clear_backoff()
    posthog.mode = "hang"
    shell.run("queued.8")
    wait_until(lambda: posthog.requests >= 3, timeout=10)  # whole, whole again, half
    posthog.mode = "ok"
    posthog.release.set()
    wait_until(lambda: len(posthog.command_events()) == 9, timeout=12)
    _settled(work_dir)
    # The head went in every request; the tail in the two whole ones and the last.
    assert posthog.times_carried(last["uuid"]) == 3, posthog.log()
    assert posthog.times_carried(first["uuid"]) == 4, posthog.log()


# -- platforms ---------------------------------------------------------------------------------


def test_the_platform_decisions() -> None:
    from arcade_usage._outbox import hands_lock_to_child, lock_kind
    from arcade_usage._service import spawn_options

    assert [lock_kind(p, True) for p in ("linux", "darwin", "win32")] == [
        "flock",
        "flock",
        "msvcrt",
    ]
    assert [hands_lock_to_child(p, True) for p in ("linux", "darwin", "win32")] == [
        True,
        True,
        False,
    ]
    # A Python without fcntl on a Unix (the tests' Windows surface): POSIX record locks,
    # which a child does not inherit.
    assert (lock_kind("linux", False), hands_lock_to_child("linux", False)) == ("lockf", False)
    assert spawn_options("linux", 7) == {"start_new_session": True, "pass_fds": (7,)}
    assert spawn_options("darwin", None) == {"start_new_session": True}
    # Detached, its own process group, no console window; no descriptor to hand over.
    assert spawn_options("win32", None) == {"creationflags": 0x08000208}


def test_on_windows_the_sender_is_the_windowless_interpreter_beside_python(
    tmp_path: Path,
) -> None:
    python = tmp_path / "python.exe"
    python.touch()
    assert sender_executable_for("win32", python) == str(python)  # no pythonw.exe there
    (tmp_path / "pythonw.exe").touch()
    assert sender_executable_for("win32", python) == str(tmp_path / "pythonw.exe")
    assert sender_executable_for("linux", python) == str(python)


def sender_executable_for(platform: str, python: Path) -> str:
    from arcade_usage._service import sender_executable

    return sender_executable(platform, str(python))


def test_where_a_lock_cannot_be_handed_over_nothing_is_stranded_nor_posted_twice_at_once(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """Windows' path, run here on flock: the capture releases the accepting lock and the
    sender takes it. Captures from 4 threads: every event arrives, one upload at a time."""
    import threading

    service = UsageService()
    outbox = Outbox(work_dir)
    outbox.hands_lock = False
    destination = (service.host, service.api_key)
    started: list[bool] = []

    def start(fd: int | None) -> bool:
        assert fd is None
        started.append(service.start_sender(outbox, fd))
        return started[-1]

    def capture(thread: int) -> None:
        for i in range(10):
            message: Any = {
                "event": SUCCEEDED,
                "distinct_id": "me",
                "properties": {"command_name": f"t{thread}.{i}"},
                "timestamp": "2026-01-01T00:00:00+00:00",
                "uuid": str(uuid.uuid4()),
            }
            outbox.deliver(message, destination, start)
            time.sleep(0.02)  # a trickle across the senders' lives

    threads = [threading.Thread(target=capture, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: len(posthog.command_events()) == 40, timeout=NO_LATER_COMMAND)
    _settled(work_dir)
    assert len({e["uuid"] for e in posthog.command_events()}) == 40
    assert posthog.max_in_flight == 1
    assert 1 <= len(started) <= 3, started


# -- the log a user can read (`arcade usage log`) --------------------------------------------


def test_the_usage_log_shows_what_was_sent_and_what_waits_newest_first(
    posthog: FakePostHog, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arcade_usage import disable_tracking, usage_log

    shell = _Shell()
    for name in ("one", "two"):
        shell.run(name)
    wait_until(lambda: len(posthog.command_events()) == 2)
    _settled(work_dir)
    Outbox(work_dir).back_off(retry_after=600)
    shell.run("three")  # waits: the back-off is long

    log = usage_log()
    assert [(e["properties"]["command_name"], e["sent"]) for e in log] == [
        ("three", False),
        ("two", True),
        ("one", True),
    ]
    delivered = {e["uuid"]: e for e in posthog.command_events()}
    for entry in log[1:]:
        got = delivered[entry["uuid"]]
        assert {k: entry[k] for k in ("event", "distinct_id", "timestamp")} == {
            k: got[k] for k in ("event", "distinct_id", "timestamp")
        }
        assert entry["properties"].items() <= got["properties"].items()
    sent = Path(Outbox(work_dir).directory) / "sent.log"
    assert sent.stat().st_mode & 0o777 == 0o600

    disable_tracking()
    assert usage_log() == []
    monkeypatch.setenv("ARCADE_USAGE_TRACKING", "0")
    shell.run("off")
    assert usage_log() == []
