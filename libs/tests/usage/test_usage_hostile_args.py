"""Tracker arguments of any type: nothing raises into the caller, every call gives one event.

A server or a CLI hands its trackers whatever it has: a `success` computed by a
library, an exception instead of its message, bytes read from a pipe, a host
name nobody checked. Whatever it is, the caller goes on, the call is recorded
once (through the real sender to a loopback PostHog), and no event is larger
than 32 KB.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from arcade_usage import CommandTracker, ServerTracker
from helpers import sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(90)

MAX_EVENT_BYTES = 32 * 1024
BIG = 100_000
SECRET = "Zq8vW3nPx7Lm"


class RaisingBool:
    """A `success` that cannot say whether it is true."""

    def __bool__(self) -> bool:
        raise RuntimeError("no truth here")


class RaisingStr:
    """A reason that cannot be turned into text."""

    def __str__(self) -> str:
        raise RuntimeError("no text here")

    __repr__ = __str__


def _delivered(posthog: FakePostHog, work_dir: Path, count: int) -> list[dict[str, Any]]:
    """The events once `count` have arrived and every sender is gone (so no more come)."""
    wait_until(lambda: len(posthog.events()) >= count, timeout=30)
    wait_until(lambda: not sender_pids(work_dir), timeout=15)
    events = posthog.events()
    assert len(events) == count, [e["event"] for e in events]
    for event in events:
        for ascii_only in (False, True):  # as the outbox keeps it; as posthog sends it
            size = len(json.dumps(event, ensure_ascii=ascii_only).encode())
            assert size <= MAX_EVENT_BYTES, (event["event"], size)
    return events


# (what the caller passes as the reason, what PostHog receives as failure_reason)
REASONS: list[tuple[object, str]] = [
    (b"tool failed: password=" + SECRET.encode(), "tool failed: password=***"),
    (b"\xff\xfe not utf-8 \xc3\xa9", "\ufffd\ufffd not utf-8 \u00e9"),
    (ValueError(f"bad token={SECRET}"), "ValueError: bad token=***"),
    (ValueError(), "ValueError"),
    (KeyError("profile"), "KeyError: 'profile'"),
    (404, "404"),
    (RaisingStr(), "RaisingStr"),
    ("xy " * BIG, ("xy " * 100)[:297] + "..."),
    (b"yz " * BIG, ("yz " * 100)[:297] + "..."),
    # One word longer than what is scrubbed: it may be a secret cut in two, so it goes.
    ("x" * BIG, "..."),
]


def test_tool_call_reasons_of_any_type_are_recorded_as_text(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = ServerTracker("1.0.0")

    for reason, _ in REASONS:
        tracker.track_tool_call(False, reason)  # type: ignore[arg-type]

    events = _delivered(posthog, work_dir, len(REASONS))
    # Delivery order is not call order (the first event may go with its sender).
    assert sorted(e["properties"]["failure_reason"] for e in events) == sorted(
        text for _, text in REASONS
    )
    assert {e["properties"]["is_execution_success"] for e in events} == {False}


def test_a_success_that_raises_in_bool_neither_escapes_nor_drops_the_call(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = ServerTracker("1.0.0")

    tracker.track_tool_call(RaisingBool())  # type: ignore[arg-type]
    tracker.track_tool_call(RaisingBool(), ValueError("boom"))  # type: ignore[arg-type]
    tracker.track_tool_call(1)  # type: ignore[arg-type]
    tracker.track_tool_call([])  # type: ignore[arg-type]

    events = _delivered(posthog, work_dir, 4)
    # Whether it succeeded cannot be known: recorded as not a success, with a reason.
    assert sorted(
        (e["properties"]["is_execution_success"], e["properties"].get("failure_reason") or "")
        for e in events
    ) == [
        (False, "ValueError: boom"),
        (False, "failed with no reason given"),
        (False, "failed with no reason given"),
        (True, ""),
    ]


def test_arguments_whose_code_waits_for_another_threads_call_do_not_deadlock(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A `__bool__` or `__str__` that waits for a tool call on another thread still
    returns: no lock of the tracker's is held while the caller's code runs."""
    tracker = ServerTracker("1.0.0")

    def tracked_elsewhere() -> bool:
        other = threading.Thread(target=tracker.track_tool_call, args=(True,))
        other.start()
        other.join(timeout=10)
        return not other.is_alive()

    class WaitingBool:
        def __bool__(self) -> bool:
            return tracked_elsewhere()

    class WaitingStr:
        def __str__(self) -> str:
            return f"other thread done: {tracked_elsewhere()}"

    tracker.track_tool_call(WaitingBool())  # type: ignore[arg-type]
    tracker.track_tool_call(False, WaitingStr())  # type: ignore[arg-type]

    events = _delivered(posthog, work_dir, 4)
    assert sorted(
        (e["properties"]["is_execution_success"], e["properties"].get("failure_reason") or "")
        for e in events
    ) == [(False, "other thread done: True"), (True, ""), (True, ""), (True, "")]


def test_server_start_with_huge_and_odd_arguments_gives_one_bounded_event(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = ServerTracker("1.0.0")

    tracker.track_server_start(
        "t" * BIG,
        host="h" * BIG,
        port=10**30,  # beyond what PostHog stores as a number
        tool_count=RaisingStr(),  # type: ignore[arg-type]
    )
    tracker.track_server_start(b"stdio", host=b"\xff" * BIG, port="8000")  # type: ignore[arg-type]
    # More digits than Python turns into text by default (str() raises).
    tracker.track_server_start("http", port=10**5000, tool_count=float("nan"))  # type: ignore[arg-type]
    # What JSON escapes most: 12 bytes a character, in every text the caller gives.
    emoji = "\U0001f600" * BIG
    tracker.track_server_start(emoji, host=emoji, port=emoji, tool_count=emoji)  # type: ignore[arg-type]

    events = _delivered(posthog, work_dir, 4)
    assert {e["event"] for e in events} == {"MCP server started"}
    by_transport = {e["properties"]["transport"][:1]: e for e in events}
    first, second, third = by_transport["t"], by_transport["s"], by_transport["h"]
    assert by_transport["\U0001f600"]["properties"]["host"] == "\U0001f600" * 500
    props = first["properties"]
    assert props["transport"] == "t" * 500
    assert props["host"] == "h" * 500
    assert props["port"] == str(10**30)
    assert props["tool_count"] == "RaisingStr"
    assert (second["properties"]["transport"], second["properties"]["port"]) == ("stdio", "8000")
    assert second["properties"]["host"] == "\ufffd" * 500
    assert (third["properties"]["port"], third["properties"]["tool_count"]) == ("int", None)


def test_command_tracker_with_hostile_arguments_records_each_command_once(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = CommandTracker(cli_version="9.9.9")

    tracker.track_command_execution("deploy", RaisingBool())  # type: ignore[arg-type]
    tracker.track_command_execution(
        "c" * BIG,
        False,
        duration_ms=float("nan"),
        error_message=ValueError(f"api_key={SECRET}"),  # type: ignore[arg-type]
    )
    tracker.track_command_execution(
        b"sync",  # type: ignore[arg-type]
        False,
        duration_ms="slow",  # type: ignore[arg-type]
        error_message=b"\xff" + b"e " * BIG,  # type: ignore[arg-type]
    )
    tracker.track_command_execution("status", True, duration_ms=float("inf"))

    events = _delivered(posthog, work_dir, 4)
    by_name = {e["properties"]["command_name"][:6]: e for e in events}
    assert by_name["deploy"]["event"] == "CLI execution failed"
    assert by_name["deploy"]["properties"]["error_message"] == "failed with no error message"
    cut = by_name["cccccc"]["properties"]
    assert len(cut["command_name"]) < 2000
    assert cut["error_message"] == "ValueError: api_key=***"
    assert "duration" not in cut  # not a number: not sent, rather than invalid JSON
    sync = by_name["sync"]["properties"]
    assert sync["error_message"] == ("\ufffd" + "e " * 150)[:297] + "..."
    assert "duration" not in sync
    assert "duration" not in by_name["status"]["properties"]
    assert by_name["status"]["event"] == "CLI execution succeeded"


class Unprintable(Exception):
    """An exception whose text cannot be had."""

    def __str__(self) -> str:
        raise RuntimeError("no text here")


def test_a_tracked_block_ending_in_an_unprintable_exception_raises_that_exception(
    posthog: FakePostHog, work_dir: Path
) -> None:
    tracker = CommandTracker(cli_version="9.9.9")

    with pytest.raises(Unprintable), tracker.track("sync"):
        raise Unprintable
    with pytest.raises(SystemExit), tracker.track("exit"):
        raise SystemExit(RaisingStr())

    events = _delivered(posthog, work_dir, 2)
    assert sorted((e["event"], e["properties"]["error_message"]) for e in events) == [
        ("CLI execution failed", "RaisingStr"),
        ("CLI execution failed", "Unprintable"),
    ]
