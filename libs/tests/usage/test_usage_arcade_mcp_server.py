"""The real arcade-mcp-server with our ServerTracker swapped in, over stdio and streamable HTTP.

`arcade_mcp_app.py` rebinds the tracker name in each module of arcade-mcp-server
that imports it, as the arcade-usage README shows, and adds nothing else: the
server calls our tracker with its own arguments. The SDK's own client drives it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from helpers import sender_pids, wait_until
from servers import FakePostHog

# arcade-mcp-server locks with portalocker, which needs fcntl or Windows' msvcrt: where
# neither imports (the tests' Windows surface on Linux), the real server cannot run.
arcade_mcp_app = pytest.importorskip("arcade_mcp_app")

pytestmark = pytest.mark.timeout(120)

APP = Path(arcade_mcp_app.__file__).resolve()
STARTED = "MCP server started"
CALLED = "MCP tool called"
CALLS = [("echo", True), ("fail", False), ("echo", True), ("echo", True)]


async def _call_tools(session: ClientSession) -> list[bool]:
    await session.initialize()
    # arcade-mcp-server names a tool after its app too (`Interop_Echo`).
    tools = {
        tool.name.rsplit("_", 1)[-1].lower(): tool.name
        for tool in (await session.list_tools()).tools
    }
    assert sorted(tools) == ["echo", "fail"]
    ok = []
    for name, _ in CALLS:
        result = await session.call_tool(tools[name], {"text": "hi"})
        ok.append(not result.isError)
    return ok


def _exactly_once(posthog: FakePostHog, work_dir: Path) -> list[dict[str, Any]]:
    """The N+1 events, once all senders are done: nothing missing, nothing twice."""
    wait_until(lambda: len(posthog.events()) >= len(CALLS) + 1, timeout=30)
    wait_until(lambda: not sender_pids(work_dir), timeout=15)
    events = posthog.events()
    assert len(events) == len(CALLS) + 1
    assert len({e["uuid"] for e in events}) == len(events)
    assert [e["event"] for e in events].count(STARTED) == 1
    calls = [e for e in events if e["event"] == CALLED]
    assert sorted(e["properties"]["is_execution_success"] for e in calls) == sorted(
        ok for _, ok in CALLS
    )
    for event in events:
        assert event["properties"]["$geoip_disable"] is True
        assert event["properties"]["arcade_mcp_server_version"] == _installed_version()
    return events


def _installed_version() -> str:
    from importlib.metadata import version

    return version("arcade-mcp-server")


@pytest.mark.parametrize("validator", [None, "team"])
def test_stdio_gives_n_plus_one_events_and_a_clean_stdout(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path, validator: str | None
) -> None:
    stream_errors: list[Exception] = []
    results: list[bool] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not JSON-RPC
            stream_errors.append(message)

    async def main() -> None:
        args = [str(APP), "stdio", *([validator] if validator else [])]
        params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
        with anyio.fail_after(90), (tmp_path / "stderr").open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=on_message) as session,
            ):
                results.extend(await _call_tools(session))

    anyio.run(main)

    assert results == [ok for _, ok in CALLS]
    assert stream_errors == []
    assert "Traceback" not in (tmp_path / "stderr").read_text()
    events = _exactly_once(posthog, work_dir)
    [start] = [e for e in events if e["event"] == STARTED]
    assert start["properties"]["transport"] == "stdio"
    assert start["properties"]["tool_count"] == 2
    assert start["properties"]["resource_server_type"] == ("TeamValidator" if validator else "none")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_streamable_http_gives_n_plus_one_events(
    posthog: FakePostHog, work_dir: Path, tmp_path: Path
) -> None:
    port = _free_port()
    stderr = (tmp_path / "stderr").open("w")
    server = subprocess.Popen(
        [sys.executable, str(APP), "http", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    results: list[bool] = []
    try:
        wait_until(lambda: _accepts(port) or server.poll() is not None, timeout=60)
        assert server.poll() is None, (tmp_path / "stderr").read_text()

        async def main() -> None:
            client: Callable[..., AbstractAsyncContextManager[Any]] = streamable_http_client
            with anyio.fail_after(60):
                async with (
                    client(f"http://127.0.0.1:{port}/mcp") as (read, write, _),
                    ClientSession(read, write) as session,
                ):
                    results.extend(await _call_tools(session))

        anyio.run(main)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            out, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
        stderr.close()

    assert results == [ok for _, ok in CALLS]
    # stdout holds uvicorn's access log, and nothing of tracking's: the one-time
    # notice went to stderr.
    assert b"collect usage data" not in out
    assert b"MCP server started" not in out
    errors = (tmp_path / "stderr").read_text()
    assert "collect usage data" in errors
    assert "Traceback" not in errors
    events = _exactly_once(posthog, work_dir)
    [start] = [e for e in events if e["event"] == STARTED]
    assert (start["properties"]["transport"], start["properties"]["port"]) == ("http", port)
    assert start["properties"]["host"] == "127.0.0.1"
    assert start["properties"]["resource_server_type"] == "none"
