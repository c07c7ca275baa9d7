"""The real arcade-mcp-server, with arcade-usage's ServerTracker swapped in, no adapter.

Run as `python arcade_mcp_app.py stdio [VALIDATOR]` or `python arcade_mcp_app.py http PORT`.
The swap is the one the arcade-usage README shows: one rebinding per module of
arcade-mcp-server that imports its tracker. VALIDATOR `team` gives the app a
resource-server validator (a `ResourceServerValidator` subclass named `TeamValidator`),
so that `resource_server_type` has a class name to report.

Tools: `echo` (succeeds) and `fail` (raises), each tracked by arcade-mcp-server itself.
"""

# arcade-core reads the tools' annotations as objects: no `from __future__ import annotations`.
# ruff: noqa: I002

import sys
from typing import Annotated, Literal

import arcade_mcp_server.mcp_app
import arcade_mcp_server.server
from arcade_mcp_server import MCPApp
from arcade_mcp_server.resource_server.base import ResourceOwner, ResourceServerValidator

from arcade_usage import ServerTracker

# The swap.
arcade_mcp_server.mcp_app.ServerTracker = ServerTracker  # type: ignore[attr-defined,assignment]
arcade_mcp_server.server.ServerTracker = ServerTracker  # type: ignore[attr-defined,assignment]


class TeamValidator(ResourceServerValidator):
    """A validator that accepts nobody: only its class name matters here."""

    async def validate_token(self, token: str) -> ResourceOwner:
        raise NotImplementedError


def echo(text: Annotated[str, "what to say back"]) -> str:
    """Say the text back."""
    return text


def fail(text: Annotated[str, "ignored"]) -> str:
    """Always fail."""
    raise RuntimeError("this tool always fails")


def main() -> None:
    transport: Literal["http", "stdio"] = "http" if sys.argv[1] == "http" else "stdio"
    auth = TeamValidator() if sys.argv[2:] == ["team"] else None
    app = MCPApp(name="interop", version="1.0.0", log_level="WARNING", auth=auth)
    app.tool(echo)
    app.tool(fail)
    port = int(sys.argv[2]) if transport == "http" else 8000
    app.run(transport=transport, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
