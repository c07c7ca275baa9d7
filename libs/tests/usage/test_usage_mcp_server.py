"""A real MCP server (FastMCP over stdio, `mcp_server.py`) driven by the SDK's own client.

What PostHog receives from it, and what its client sees: every tool call once,
the start even when the server exits or blocks at once, and a JSON-RPC stream
that tracking never touches (the first-run notice included).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import mcp_server
from arcade_usage import Outbox
from helpers import sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(90)

SERVER = Path(mcp_server.__file__).resolve()
STARTED = "MCP server started"
CALLED = "MCP tool called"
RUNTIME = {
    "arcade_mcp_server_version": mcp_server.SERVER_VERSION,
    "runtime_language": "python",
    "runtime_version": platform.python_version(),
    "os_type": platform.system(),
    "os_release": platform.release(),
    "is_ci": False,
}


class Session:
    """What one client session saw: tool results, stream errors, the server's stderr."""

    def __init__(self) -> None:
        self.tools: list[str] = []
        self.results: list[tuple[bool, str]] = []
        self.stream_errors: list[Exception] = []
        self.stderr = ""


def _drive(calls: list[tuple[str, dict[str, Any]]], stderr_path: Path) -> Session:
    """Start the server with the SDK's stdio client, make `calls`, close; the server exits."""
    seen = Session()

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not JSON-RPC
            seen.stream_errors.append(message)

    async def main() -> None:
        params = StdioServerParameters(
            command=sys.executable, args=[str(SERVER)], env=dict(os.environ)
        )
        with anyio.fail_after(60), stderr_path.open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=on_message) as session,
            ):
                await session.initialize()
                seen.tools = sorted(tool.name for tool in (await session.list_tools()).tools)
                for name, arguments in calls:
                    result = await session.call_tool(name, arguments)
                    text = " ".join(getattr(block, "text", "") for block in result.content)
                    seen.results.append((result.isError, text))

    anyio.run(main)
    seen.stderr = stderr_path.read_text()
    return seen


def _all_arrived(posthog: FakePostHog, work_dir: Path, count: int) -> list[dict[str, Any]]:
    """The server's events once `count` have arrived and every sender is gone."""
    wait_until(lambda: len(posthog.events()) >= count, timeout=20)
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    return posthog.events()


def test_each_tool_call_is_one_event_and_the_stream_stays_json_rpc(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    assert not work_dir.exists()  # a first run: the notice is due
    calls: list[tuple[str, dict[str, Any]]] = [
        *[("echo", {"text": f"hello {i}"}) for i in range(12)],
        *[("add", {"a": i, "b": 1}) for i in range(12)],
    ]
    seen = _drive(calls, tmp_path / "stderr.txt")

    # The client saw a clean protocol and the tools' own answers.
    assert seen.stream_errors == []
    assert seen.tools == ["add", "echo", "fail"]
    assert seen.results == [
        *[(False, f"hello {i}") for i in range(12)],
        *[(False, str(i + 1)) for i in range(12)],
    ]
    # The one-time notice went to stderr (stdout is the protocol), once.
    assert seen.stderr.count("arcade usage disable") == 1, seen.stderr
    assert "ARCADE_USAGE_TRACKING=0" in seen.stderr

    events = _all_arrived(posthog, work_dir, len(calls) + 1)
    assert [e["event"] for e in events].count(STARTED) == 1
    called = [e for e in events if e["event"] == CALLED]
    assert len(events) == len(calls) + 1, [e["event"] for e in events]
    assert len(called) == len(calls)
    assert len({e["uuid"] for e in events}) == len(events)

    started = next(e for e in events if e["event"] == STARTED)
    anon_id = started["distinct_id"]
    assert started["properties"] == {
        **started["properties"],  # the SDK's $lib and friends
        "transport": "stdio",
        "tool_count": 3,
        "$process_person_profile": False,
        **RUNTIME,
    }
    assert "host" not in started["properties"]
    assert "port" not in started["properties"]
    for event in called:
        assert event["distinct_id"] == anon_id
        assert event["properties"]["is_execution_success"] is True
        assert "failure_reason" not in event["properties"]
        assert event["properties"] == {
            **event["properties"],
            "$process_person_profile": False,
            **RUNTIME,
        }
    assert Outbox(work_dir).count() == 0


def test_a_failing_tool_is_reported_scrubbed(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("echo", {"text": "before"}),
        ("fail", {"why": "upstream refused"}),
        ("echo", {"text": "after"}),
    ]
    seen = _drive(calls, tmp_path / "stderr.txt")

    assert seen.stream_errors == []
    assert [is_error for is_error, _ in seen.results] == [False, True, False]
    assert mcp_server.SECRET in seen.results[1][1]  # the client itself gets the whole error

    events = _all_arrived(posthog, work_dir, 4)
    called = [e["properties"] for e in events if e["event"] == CALLED]
    assert [p["is_execution_success"] for p in called] == [True, False, True]
    reason = called[1]["failure_reason"]
    assert reason.startswith("upstream refused: token ")
    assert "~/project/app.py" in reason
    for secret in (mcp_server.SECRET, mcp_server.EMAIL, str(work_dir)):
        assert secret not in reason, reason
    assert len(reason) <= 300


def _start_server(after_start: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(SERVER), after_start],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def test_start_event_arrives_when_the_server_exits_right_after(
    posthog: FakePostHog, work_dir: Path
) -> None:
    process = _start_server("exit")
    try:
        stdout, _ = process.communicate(timeout=30)
    finally:
        _reap(process)
    assert process.returncode == 0
    assert stdout == b""

    events = _all_arrived(posthog, work_dir, 1)
    assert [e["event"] for e in events] == [STARTED]
    assert Outbox(work_dir).count() == 0


def test_start_event_arrives_from_a_first_run_with_stderr_closed(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A server with no stderr at all: the notice has nowhere to go, the start still does."""
    result = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" "$1" exit 2>&-', sys.executable, str(SERVER)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, b"")
    events = _all_arrived(posthog, work_dir, 1)
    assert [e["event"] for e in events] == [STARTED]


def test_start_event_arrives_while_the_server_blocks(posthog: FakePostHog, work_dir: Path) -> None:
    process = _start_server("block")
    try:
        wait_until(lambda: posthog.events(STARTED), timeout=20)
        assert process.poll() is None  # still blocked in its read: nothing waited for it
    finally:
        _reap(process)
    events = _all_arrived(posthog, work_dir, 1)
    assert [e["event"] for e in events] == [STARTED]


def test_server_pipes_close_when_it_exits_though_its_sender_still_works(
    posthog: FakePostHog, work_dir: Path
) -> None:
    """A client reading the server's stdout sees EOF at the server's exit, not the sender's.

    PostHog hangs, so the sender started for the start event is still at work when
    the server is gone; had it inherited the server's stdout or stderr, the client
    would wait for it.
    """
    posthog.mode = "hang"
    process = _start_server("exit")
    try:
        stdout, stderr = process.communicate(timeout=30)  # both pipes at EOF
        wait_until(lambda: sender_pids(work_dir), timeout=2)  # still waiting on PostHog
    finally:
        _reap(process)
    assert process.returncode == 0
    assert stdout == b""
    assert b"ARCADE_USAGE_TRACKING=0" in stderr  # the first-run notice, on stderr
    wait_until(lambda: posthog.requests >= 1, timeout=10)
    posthog.mode = "ok"
    posthog.release.set()
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    # PostHog failed the request; the sender waited out the short back-off and posted
    # again: delivered, once, with no later command.
    assert [e["event"] for e in posthog.events()] == [STARTED]
    assert Outbox(work_dir).count() == 0
