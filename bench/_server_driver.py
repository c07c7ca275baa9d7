"""A long-lived MCP-server-like process: tracks its start, then tool calls at a steady rate.

Run inside a side's venv as `python -c <this file's text> SIDE ENDING CALLS RATE`
(passed as text so the bench directory is not on its `sys.path`):

- SIDE: `ours` (arcade-usage's `ServerTracker`), `posthog` (posthog-python's own
  client, one `capture` per event), `mcp-server` (arcade-mcp-server's
  `ServerTracker`), or `none` (the same loop tracking nothing: the baseline whose
  CPU is subtracted).
- ENDING: `exit` (a normal exit; posthog's client gets its `shutdown()`) or
  `kill` (SIGKILL right after the last call, before anything else can run).

Prints one JSON line before it ends: `start_ms` (the start call on the caller's
thread) and `call_ms` (each tool call's), and `traffic_s` (first to last call).
This module imports only the standard library at the top: it is not part of
the bench's own process.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

Call = Callable[[], None]


def _nothing() -> None:
    pass


def _ours() -> tuple[Call, Call, Call]:
    tracker = importlib.import_module("arcade_usage").ServerTracker(server_version="1.2.3")

    def start() -> None:
        tracker.track_server_start(
            transport="stdio", host=None, port=None, tool_count=3, resource_server_validator=None
        )

    def call() -> None:
        tracker.track_tool_call(success=True, failure_reason=None)

    return start, call, _nothing


def _mcp_server() -> tuple[Call, Call, Call]:
    tracker = importlib.import_module("arcade_mcp_server.usage").ServerTracker()

    def start() -> None:
        tracker.track_server_start(
            transport="stdio", host=None, port=None, tool_count=3, resource_server_validator=None
        )

    def call() -> None:
        tracker.track_tool_call(success=True, failure_reason=None)

    return start, call, _nothing


def _posthog() -> tuple[Call, Call, Call]:
    """The client as its README shows it, with the same events and properties a server sends."""
    client = importlib.import_module("posthog").Posthog(
        os.environ["ARCADE_USAGE_POSTHOG_API_KEY"], host=os.environ["ARCADE_USAGE_POSTHOG_HOST"]
    )
    distinct_id = str(uuid.uuid4())
    common: dict[str, Any] = {
        "arcade_mcp_server_version": "1.2.3",
        "runtime_language": "python",
        "runtime_version": platform.python_version(),
        "os_type": platform.system(),
        "os_release": platform.release(),
        "is_ci": False,
        "$process_person_profile": False,
    }

    def start() -> None:
        properties = {**common, "transport": "stdio", "tool_count": 3}
        client.capture("MCP server started", distinct_id=distinct_id, properties=properties)

    def call() -> None:
        properties = {**common, "is_execution_success": True}
        client.capture("MCP tool called", distinct_id=distinct_id, properties=properties)

    return start, call, client.shutdown


SIDES: dict[str, Callable[[], tuple[Call, Call, Call]]] = {
    "ours": _ours,
    "posthog": _posthog,
    "mcp-server": _mcp_server,
    "none": lambda: (_nothing, _nothing, _nothing),
}


def main() -> None:
    side, ending, calls, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    start, call, finish = SIDES[side]()
    began = time.perf_counter()
    start()
    start_ms = (time.perf_counter() - began) * 1000
    call_ms: list[float] = []
    first = time.perf_counter()
    for i in range(calls):
        delay = first + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        call()
        call_ms.append((time.perf_counter() - began) * 1000)
    traffic_s = time.perf_counter() - first
    sys.stdout.write(
        json.dumps({"start_ms": start_ms, "call_ms": call_ms, "traffic_s": traffic_s}) + "\n"
    )
    sys.stdout.flush()
    if ending == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    finish()


if __name__ == "__main__":
    main()
