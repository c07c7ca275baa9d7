"""ServerTracker in a process that lives for hours: bursts, threads, asyncio, kills, identity.

Bursts run in `tracking_process.py` (a real process that counts the senders it
starts); the rest runs a ServerTracker in the test process itself, as a server
would, while other processes log in, log out, or hold the locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tracking_process
from arcade_identity import Credentials, save_credentials
from arcade_usage import Outbox, ServerTracker
from helpers import Stopwatch, run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

Data = Callable[[], dict[str, Any]]

pytestmark = pytest.mark.timeout(90)

DRIVER = Path(tracking_process.__file__).resolve()
STARTED = "MCP server started"
CALLED = "MCP tool called"


def _key() -> str:
    """An API key no other test of this process has looked up (lookups are cached per process)."""
    return f"key-{uuid.uuid4().hex}"


def _run_driver(calls: int, threads: int, pause: float, ending: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(calls), str(threads), str(pause), ending],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == (-9 if ending == "kill" else 0), result.stderr
    assert result.stderr == ""  # the notice is not due: every test makes its identity first
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # tracking wrote nothing to stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def _delivered(posthog: FakePostHog, work_dir: Path, count: int) -> list[dict[str, Any]]:
    """The events once `count` have arrived and every sender is gone (no later arrival)."""
    wait_until(lambda: len(posthog.events()) >= count, timeout=30)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    events = posthog.events()
    assert len(events) == count, [e["event"] for e in events]
    assert len({e["uuid"] for e in events}) == count
    return events


def _check_server_events(events: list[dict[str, Any]], calls: int) -> None:
    """One start and `calls` tool calls, every tenth a failure, as the driver tracked them."""
    assert [e["event"] for e in events].count(STARTED) == 1
    called = [e["properties"] for e in events if e["event"] == CALLED]
    assert len(called) == calls
    failed = sorted(p["failure_reason"] for p in called if not p["is_execution_success"])
    assert failed == sorted(f"call {i} failed" for i in range(9, calls, 10))


@pytest.fixture
def identity_made(work_dir: Path) -> None:
    """An identity on disk, as after a first run (so no process here owes the notice)."""
    ServerTracker(server_version="1.2.3").identity.load_or_create()


# -- bursts ------------------------------------------------------------------------------


@pytest.mark.usefixtures("identity_made", "production_timings")  # pacing: 1 request/s
@pytest.mark.parametrize(
    ("calls", "threads", "pause"),
    [(500, 1, 0.0), (500, 8, 0.0), (300, 1, 1 / 150)],
    ids=["500-at-once", "500-from-8-threads", "300-at-150-per-s"],
)
def test_a_burst_is_delivered_once_by_few_senders_and_requests(
    posthog: FakePostHog, work_dir: Path, calls: int, threads: int, pause: float
) -> None:
    report = _run_driver(calls, threads, pause, "exit")

    events = _delivered(posthog, work_dir, calls + 1)
    _check_server_events(events, calls)
    seconds = math.ceil(report["traffic_s"])
    # About one sender and one request per second of traffic, not one per event
    # (a request takes at most 100 events, so a fast burst needs a few more).
    assert 1 <= report["senders"] <= seconds + 2, report
    assert posthog.requests <= math.ceil((calls + 1) / 100) + seconds + 2, (
        posthog.requests,
        report,
    )
    assert posthog.gzipped_requests == posthog.requests
    assert Outbox(work_dir).count() == 0


@pytest.mark.usefixtures("identity_made", "production_timings")  # pacing: 1 request/s
@pytest.mark.parametrize(("threads", "calls"), [(1, 700), (8, 704)])
def test_traffic_outliving_an_uploader_starts_one_sender_at_a_time(
    posthog: FakePostHog, work_dir: Path, threads: int, calls: int
) -> None:
    """Seven seconds at 100 calls/s: uploaders hand over (each lives a few seconds at most).

    At each hand-over the threads that find nobody at work (8 calls at once, as
    concurrent requests come) must not all start a sender: at most one start per
    outbox per second, whatever the rate.
    """
    report = _run_driver(calls, threads, threads / 100, "exit")

    events = _delivered(posthog, work_dir, calls + 1)
    _check_server_events(events, calls)
    starts = sorted(report["sender_starts"])
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(starts) >= 2, report  # an uploader was replaced at least once
    assert min(gaps) > 0.5, [round(t, 3) for t in starts]
    assert posthog.requests <= math.ceil(report["traffic_s"]) + 4, posthog.requests


@pytest.mark.usefixtures("identity_made")
@pytest.mark.parametrize("ending", ["kill", "os_exit"])
def test_a_process_killed_right_after_its_last_call_loses_none(
    posthog: FakePostHog, work_dir: Path, ending: str
) -> None:
    calls = 200
    _run_driver(calls, 1, 0.005, ending)  # about a second of traffic, the uploader at work
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    before = len(posthog.events())
    assert before <= calls + 1

    # The next sender, as the next command or server start would give it.
    later = subprocess.run(
        [sys.executable, "-m", "arcade_usage"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (later.returncode, later.stdout, later.stderr) == (0, b"", b"")

    events = _delivered(posthog, work_dir, calls + 1)
    _check_server_events(events, calls)
    assert Outbox(work_dir).count() == 0


# -- the caller's thread -----------------------------------------------------------------


HOLD_LOCKS = """
import fcntl, os, sys
from filelock import FileLock
arcade = sys.argv[1]
outbox = os.path.join(arcade, "usage_outbox")
os.makedirs(outbox, mode=0o700, exist_ok=True)
identity_lock = FileLock(os.path.join(arcade, "usage.json.lock"))
identity_lock.acquire()
fd = os.open(os.path.join(outbox, ".upload.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def locks_held(arcade_dir: Path) -> Iterator[Callable[[], None]]:
    """Another process holds the identity's lock and the upload lock; call the result to release."""
    pytest.importorskip("fcntl")  # the holder takes the upload lock with flock
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCKS, str(arcade_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    stdin = holder.stdin

    def release() -> None:
        if not stdin.closed:
            stdin.close()
        holder.wait(timeout=10)

    try:
        assert holder.stdout.readline() == "held\n"
        yield release
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()
        stdin.close()


SIGNALLED_CALLS = """
import json, signal
from arcade_usage import ServerTracker
tracker = ServerTracker("1.2.3")
made = {"main": 0, "handler": 0}
def on_alarm(signum, frame):
    tracker.track_tool_call(False, "interrupted")  # e.g. a call cut short by a timeout
    made["handler"] += 1
    if made["handler"] < 100:  # re-armed until the 100th: never one more
        signal.setitimer(signal.ITIMER_REAL, 0.0005)
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.0005)
while made["handler"] < 100:
    tracker.track_tool_call(True)
    made["main"] += 1
print(json.dumps(made), flush=True)
"""


@pytest.mark.usefixtures("identity_made")
def test_a_signal_handler_tracking_a_call_during_another_neither_hangs_nor_loses_it(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A handler (a timeout's SIGALRM, a SIGTERM) may track a call while the thread it
    interrupted is in the middle of tracking one: both are recorded, nothing hangs."""
    if not hasattr(signal, "setitimer"):
        pytest.skip("no interval timers here (Windows)")
    result = subprocess.run(
        [sys.executable, "-c", SIGNALLED_CALLS],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)

    events = _delivered(posthog, work_dir, made["main"] + made["handler"])
    reasons = [e["properties"].get("failure_reason") for e in events]
    assert reasons.count("interrupted") == made["handler"] == 100


def test_tool_calls_inside_an_event_loop_never_stall_it(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    """Calls from a coroutine, while another process holds every lock we have: the loop runs on.

    A call that waited for the identity's lock or the upload lock (5 s), or for
    PostHog, would show as a gap of seconds between the ticks of the loop's other task.
    """
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=1)
    wait_until(lambda: posthog.events(STARTED))
    wait_until(lambda: not sender_pids(work_dir), timeout=12)

    calls = 200
    gaps: list[float] = []

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def tick() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0)
                now = loop.time()
                gaps.append(now - last)
                last = now

        async def handle_calls() -> None:
            for _ in range(calls):
                tracker.track_tool_call(success=True)
                await asyncio.sleep(0)
            done.set()

        await asyncio.wait_for(asyncio.gather(tick(), handle_calls()), timeout=30)

    with locks_held(arcade_dir):
        asyncio.run(serve())

    assert len(gaps) >= calls
    assert max(gaps) < 1.0, max(gaps)  # a budget with room, not a benchmark
    events = _delivered(posthog, work_dir, calls + 1)
    assert [e["event"] for e in events].count(CALLED) == calls


def test_a_tool_call_does_not_wait_for_a_start_busy_with_a_hanging_cloud(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """One thread starts the server (its lazy alias waits on Arcade Cloud), another serves a call.

    The call must not queue behind the start's lookup: it returns while the start
    is still waiting on the network.
    """
    tracker = ServerTracker(server_version="1.2.3")
    tracker.identity.load_or_create()
    key = _key()
    cloud.add_account(key, "prn_busy", "busy@example.com")
    save_credentials(Credentials(key, "busy@example.com"))
    cloud.mode = "hang"

    start = threading.Thread(
        target=tracker.track_server_start, kwargs={"transport": "stdio", "tool_count": 1}
    )
    start.start()
    try:
        wait_until(lambda: cloud.validations >= 1, timeout=10)  # the lookup is in flight
        tracker.track_tool_call(success=True)
    finally:
        start.join(timeout=10)
        cloud.release.set()
    events = {e["event"]: e for e in _delivered(posthog, work_dir, 2)}
    # Each event is dated when it was tracked: a call that had waited for the lookup
    # would be dated after the start, which is dated once the lookup gave up.
    assert events[CALLED]["timestamp"] < events[STARTED]["timestamp"], (
        "the tool call waited for the start's lookup"
    )


# -- identity in a long-lived process ----------------------------------------------------


def _server_events(posthog: FakePostHog) -> list[dict[str, Any]]:
    return [e for e in posthog.events() if e["event"] in (STARTED, CALLED)]


def _login(cloud: FakeCloud, principal: str) -> None:
    key = _key()
    cloud.add_account(key, principal, f"{principal}@example.com")
    result = run_arcade("login", "--api-key", key)
    assert result.returncode == 0, result.stderr


def test_a_logout_elsewhere_makes_the_next_call_anonymous(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, usage_data: Data
) -> None:
    _login(cloud, "prn_server")
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=1)
    tracker.track_tool_call(success=True)
    wait_until(lambda: len(_server_events(posthog)) == 2)
    linked = _server_events(posthog)
    assert [e["distinct_id"] for e in linked] == ["prn_server", "prn_server"]
    assert all("$process_person_profile" not in e["properties"] for e in linked)
    old_anon = usage_data()["anon_id"]

    result = run_arcade("logout")
    assert result.returncode == 0, result.stderr
    new_anon = usage_data()["anon_id"]
    assert new_anon != old_anon

    tracker.track_tool_call(success=True)
    wait_until(lambda: len(_server_events(posthog)) == 3)
    after = _server_events(posthog)[2]
    assert after["distinct_id"] == new_anon
    assert after["properties"]["$process_person_profile"] is False
    assert not posthog.same_person(new_anon, "prn_server")


def test_a_login_elsewhere_makes_the_next_call_the_principals(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, usage_data: Data
) -> None:
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=1)
    tracker.track_tool_call(success=True)
    wait_until(lambda: len(_server_events(posthog)) == 2)
    anon_id = usage_data()["anon_id"]
    assert [e["distinct_id"] for e in _server_events(posthog)] == [anon_id, anon_id]

    _login(cloud, "prn_later")
    tracker.track_tool_call(success=True)
    wait_until(lambda: len(_server_events(posthog)) == 3)
    after = _server_events(posthog)[2]
    assert after["distinct_id"] == "prn_later"
    assert "$process_person_profile" not in after["properties"]
    assert posthog.aliases() == [(anon_id, "prn_later")]
    assert posthog.same_person(anon_id, "prn_later")


# -- a start with everything hanging -----------------------------------------------------


@pytest.mark.may_be_inconclusive
@pytest.mark.parametrize("cloud_mode", ["hang", "ok"])
def test_start_with_cloud_and_posthog_hanging_returns_in_time_and_arrives_later(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, usage_data: Data, cloud_mode: str
) -> None:
    """Credentials not linked yet: the start does the lazy alias, under the 2 s budget."""
    ServerTracker(server_version="1.2.3").identity.load_or_create()
    anon_id = usage_data()["anon_id"]
    key = _key()
    cloud.add_account(key, "prn_slow", "slow@example.com")
    save_credentials(Credentials(key, "slow@example.com"))
    cloud.mode = cloud_mode
    posthog.mode = "hang"

    tracker = ServerTracker(server_version="1.2.3")
    with Stopwatch() as watch:  # net of a busy machine's waits for a CPU
        tracker.track_server_start(transport="stdio", tool_count=1)
    watch.assert_within(2.5, "the start")  # a budget, not a benchmark

    # The start is filed (behind the alias, if one was queued) and its sender's request
    # hangs (so does the alias's, abandoned); PostHog fails it, the sender waits out
    # the short back-off and posts again: no later call is needed.
    queued = 1 if cloud_mode == "hang" else 2
    wait_until(lambda: posthog.requests == queued, timeout=10)
    assert Outbox(work_dir).count() == queued
    posthog.mode = "ok"
    posthog.release.set()
    cloud.mode = "ok"
    cloud.release.set()
    wait_until(lambda: len(posthog.events()) == queued, timeout=12)
    tracker.track_tool_call(success=True)

    if cloud_mode == "hang":  # no principal known: both anonymous
        events = _delivered(posthog, work_dir, 2)
        assert [(e["event"], e["distinct_id"]) for e in events] == [
            (STARTED, anon_id),
            (CALLED, anon_id),
        ]
    else:  # the alias was queued, and goes first
        events = _delivered(posthog, work_dir, 3)
        assert [e["event"] for e in events] == ["$create_alias", STARTED, CALLED]
        assert posthog.aliases() == [(anon_id, "prn_slow")]
        assert [e["distinct_id"] for e in events[1:]] == ["prn_slow", "prn_slow"]
        assert posthog.same_person(anon_id, "prn_slow")


# -- a first run that starts with a tool call --------------------------------------------


def test_a_first_call_before_any_start_prints_the_notice_on_stderr_only(
    posthog: FakePostHog, work_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_tool_call(success=True)
    tracker.track_tool_call(success=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert err.count("ARCADE_USAGE_TRACKING=0") == 1, err
    _delivered(posthog, work_dir, 2)


def test_a_first_call_does_not_wait_for_another_process_holding_the_identity_lock(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    """No identity yet, and another process holds its lock: the call must not wait for it."""
    tracker = ServerTracker(server_version="1.2.3")
    call = threading.Thread(target=tracker.track_tool_call, kwargs={"success": True})
    with locks_held(arcade_dir) as release:
        call.start()
        call.join(timeout=2.0)  # a budget: the lock would keep it 5 s
        returned = not call.is_alive()
        release()
        call.join(timeout=10)
    assert returned, "the tool call waited for another process's lock"
    # Not dropped for the wait it did not do: it goes out once the identity exists.
    [event] = _delivered(posthog, work_dir, 1)
    assert event["event"] == CALLED


FIRST_CALL_THEN_EXIT = """
import os
from arcade_usage import ServerTracker
ServerTracker(server_version="1.2.3").track_tool_call(success=True)
os._exit(0)
"""


def test_a_first_call_survives_an_exit_while_another_process_holds_the_identity_lock(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    """Once track_tool_call has returned, the call survives the process, whatever it waited for."""
    with locks_held(arcade_dir) as release:
        result = subprocess.run(
            [sys.executable, "-c", FIRST_CALL_THEN_EXIT],
            capture_output=True,
            timeout=30,
            check=False,
        )
        release()
    assert (result.returncode, result.stdout) == (0, b"")
    later = subprocess.run(
        [sys.executable, "-m", "arcade_usage"], capture_output=True, timeout=30, check=False
    )
    assert later.returncode == 0
    [event] = _delivered(posthog, work_dir, 1)
    assert event["event"] == CALLED


# -- consent changed by another process ----------------------------------------------------


def test_a_disable_elsewhere_stops_the_next_call_and_an_enable_resumes(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=1)
    _delivered(posthog, work_dir, 1)

    assert run_arcade("usage", "disable").returncode == 0
    disabled_requests = posthog.requests
    for _ in range(5):
        tracker.track_tool_call(success=True)
    assert not sender_pids(work_dir)
    assert Outbox(work_dir).count() == 0
    assert posthog.requests == disabled_requests

    assert run_arcade("usage", "enable").returncode == 0  # a tracked command of its own
    tracker.track_tool_call(success=False, failure_reason="after enable")
    wait_until(lambda: len(_server_events(posthog)) >= 2)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    events = _server_events(posthog)
    assert [e["event"] for e in events] == [STARTED, CALLED]
    assert events[1]["properties"]["failure_reason"] == "after enable"
    assert posthog.requests > disabled_requests


def test_a_key_saved_while_the_server_runs_is_scrubbed_from_later_failures(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """A login in another terminal after a first failure: its key never reaches PostHog."""
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_tool_call(success=False, failure_reason="no credentials yet")
    key = _key()
    cloud.add_account(key, "prn_later", "later@example.com")
    save_credentials(Credentials(key, "later@example.com"))
    tracker.track_tool_call(success=False, failure_reason=f"upstream refused {key} today")

    events = _delivered(posthog, work_dir, 2)
    reasons = sorted(e["properties"]["failure_reason"] for e in events)
    assert reasons == ["no credentials yet", "upstream refused *** today"]
