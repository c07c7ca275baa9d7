"""Acceptance: busy servers lose nothing, and neither does a sender killed at any instant.

Black-box checks of "Sending" and "Long-lived processes" in SPEC.md: real server
processes tracking as fast as they can, senders SIGKILLed as a stopped container
or an OOM killer would, and what the loopback PostHog receives.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import server_process
import tracking_process
from arcade_usage import Outbox
from helpers import Stopwatch, sender_pids, starved, wait_until
from server_process import track_command
from servers import FakePostHog

pytestmark = pytest.mark.timeout(300)

STARTED = "MCP server started"
CALLED = "MCP tool called"


def _missing(posthog: FakePostHog, expected: set[str]) -> set[str]:
    reasons = {e["properties"].get("failure_reason") for e in posthog.events(CALLED)}
    return expected - reasons


@pytest.mark.usefixtures("production_timings")  # the last sender drains it all within its life
def test_four_servers_of_eight_threads_deliver_every_call_exactly_once(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """4 processes x 8 threads x 500 calls as fast as they go, on one home.

    Every event (4 x (1 start + 4,000 calls) = 16,004) reaches PostHog exactly once by
    uuid within 30 s of the last call: nothing dropped to the outbox's bound, nothing
    sent twice. On a machine so busy that the sender (one thread beside 32 busy ones)
    runs out of its life, what it could not post waits in the outbox: counted there,
    then brought by the next command's sender.
    """
    processes, threads, calls = 4, 8, 4000
    expected = processes * (calls + 1)

    def uuids() -> list[str]:
        return [e["uuid"] for e in posthog.events()]

    with Stopwatch() as watch:  # and how much of it other processes kept the CPUs busy
        _run_busy_servers(processes, threads, calls)
        last_call = time.monotonic()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: len(set(uuids())) >= expected, timeout=30)
    late = time.monotonic() - last_call
    if len(set(uuids())) >= expected:
        print(f"all {expected} delivered {late:.1f} s after the last call")
    else:
        # A sender's life is 10 s: one starved of CPU leaves what it could not post in the
        # outbox, for the next command's sender. Late, never lost.
        wait_until(lambda: not sender_pids(work_dir), timeout=12)
        got, waiting = len(set(uuids())), Outbox(work_dir).count()
        assert got + waiting == expected, f"{expected - got - waiting} events lost"
        why = starved(watch)
        assert why, f"{got} of {expected} delivered within 30 s of the last call"
        print(f"{waiting} of {expected} left for the next command ({why})")
        track_command("after-the-servers")
        expected += 1
        wait_until(lambda: len(set(uuids())) >= expected, timeout=30)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    delivered = uuids()
    duplicates = len(delivered) - len(set(delivered))
    assert len(set(delivered)) == expected
    assert duplicates == 0, f"{duplicates} events delivered twice"
    assert [e["event"] for e in posthog.events()].count(STARTED) == processes


def _run_busy_servers(processes: int, threads: int, calls: int) -> None:
    """`processes` tracking processes of `threads` threads making `calls` calls in all,
    as fast as they go; returns once every one has exited (each of them reaped)."""
    servers = [
        subprocess.Popen(
            [sys.executable, str(tracking_process.__file__), str(calls), str(threads), "0", "exit"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for server in servers:
            out, err = server.communicate(timeout=240)
            assert server.returncode == 0, err
            assert len(out.splitlines()) == 1, out  # tracking wrote nothing to stdout
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
                server.communicate()


@pytest.mark.usefixtures("production_timings")  # a bound in production's seconds
def test_a_start_survives_a_sigkill_of_its_sender_at_any_instant(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A server tracks its start and its whole container is killed 0-200 ms later.

    The start was safe once `track_server_start` returned: the next command brings
    it (with its own event) within 10 s. Trials: `ARCADE_TEST_ROUNDS` (the issue asks
    for 20), each at a random delay.
    """
    for trial in range(server_process.ROUNDS):
        delay = random.uniform(0, 0.2)
        report = server_process.run("start-then-kill", f"{delay:.3f}")
        ended = track_command(f"after-{trial}")
        left = max(0.1, ended + 10 - time.monotonic())

        def arrived(trial: int = trial) -> bool:
            return len({e["uuid"] for e in posthog.events(STARTED)}) > trial

        try:
            wait_until(arrived, timeout=left)
        except AssertionError:
            raise AssertionError(
                f"trial {trial}: the start killed {delay * 1000:.0f} ms after it was tracked"
                f" (its sender among the {report['killed']} processes killed) never arrived"
            ) from None
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    starts = {e["uuid"] for e in posthog.events(STARTED)}
    assert len(starts) == server_process.ROUNDS


def test_a_storm_of_sigkills_during_450_events_loses_none(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A server makes 450 events at about 100 a second; every sender that shows up working
    for its home is SIGKILLed, 30 times at most. Then one command: all 450 arrive."""
    events = 450
    driver = subprocess.Popen(
        server_process.command("paced", events, 0.01, "storm"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kills = 0
    try:
        while driver.poll() is None and kills < 30:
            for pid in sender_pids(work_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.005)  # a sampling interval, not a synchronisation
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert len(out.splitlines()) == 1, out
    print(f"{kills} senders killed during {events} events")

    ended = track_command("after-storm")
    expected = {f"storm {i}" for i in range(events - 1)}
    left = max(0.1, ended + 30 - time.monotonic())
    try:
        wait_until(
            lambda: not _missing(posthog, expected) and posthog.events(STARTED), timeout=left
        )
    except AssertionError:
        missing = _missing(posthog, expected) | (set() if posthog.events(STARTED) else {STARTED})
        raise AssertionError(
            f"{len(missing)} of {events} not delivered within 30 s of the next command,"
            f" after {kills} kills"
        ) from None
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    copies = collections.Counter(e["uuid"] for e in posthog.events())
    resent = sum(n - 1 for n in copies.values())
    print(f"{resent} duplicate rows after {kills} kills (at-least-once)")
    assert len(copies) == events + 1  # the storm's events and the last command's
