"""A real MCP server for the tests: FastMCP over stdio, every tool call tracked with ServerTracker.

Run as `python mcp_server.py [AFTER_START]`. The start is tracked before the
server loop, as an Arcade MCP server does it; then AFTER_START decides what the
process does:

- `serve` (default): the stdio server loop, until the client closes stdin.
- `exit`: `os._exit(0)` right after the start was tracked (nothing else runs).
- `block`: a blocking read on stdin that nobody writes to, forever.

Tools: `echo` (a coroutine), `add` (a plain function) and `fail`, which raises
with a secret, an email and the home directory in its message, so that the
`failure_reason` PostHog receives shows what scrubbing left.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from mcp.server.fastmcp import FastMCP

from arcade_usage import ServerTracker

SERVER_VERSION = "1.2.3"
SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
EMAIL = "someone@example.com"

tracker = ServerTracker(server_version=SERVER_VERSION)
server = FastMCP("tracked")


def tracked(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` as a tool whose every call is tracked, as a success or with its error."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await function(*args, **kwargs)
            except Exception as exc:
                tracker.track_tool_call(success=False, failure_reason=str(exc))
                raise
            tracker.track_tool_call(success=True)
            return result

        return server.tool()(call_async)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            tracker.track_tool_call(success=False, failure_reason=str(exc))
            raise
        tracker.track_tool_call(success=True)
        return result

    return server.tool()(call)


@tracked
async def echo(text: str) -> str:
    """Return `text` unchanged."""
    return text


@tracked
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@tracked
def fail(why: str) -> str:
    """Always fail, with a message that holds what must never reach PostHog."""
    home = os.path.expanduser("~")
    raise RuntimeError(f"{why}: token {SECRET} rejected for {EMAIL} reading {home}/project/app.py")


TOOLS = (echo, add, fail)


def main() -> None:
    after_start = sys.argv[1] if len(sys.argv) > 1 else "serve"
    tracker.track_server_start(transport="stdio", host=None, port=None, tool_count=len(TOOLS))
    if after_start == "exit":
        os._exit(0)
    if after_start == "block":
        os.read(sys.stdin.fileno(), 1)
        return
    server.run("stdio")


if __name__ == "__main__":
    main()
