"""ServerTracker: an MCP server's start and every tool call, for a process that runs for hours.

A tool call costs the caller's thread a few stats and one small file: no network,
no lock held by another process, nothing on stdout (a stdio server's stdout is its
protocol). Each event goes out as the identity in force when it is tracked: a
login or logout in another terminal rewrites `usage.json`, which the next call
sees by its stat.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

from arcade_identity import IdentityUnavailableError, UsageIdentity
from arcade_usage._consent import is_tracking_enabled, print_notice
from arcade_usage._env import debug_enabled, in_sender
from arcade_usage._events import (
    SERVER_STARTED,
    TOOL_CALLED,
    installed_version,
    make_message,
    runtime_properties,
)
from arcade_usage._scrub import scrub
from arcade_usage._service import UsageService
from arcade_usage._tracker import known_secrets, link_principal

SERVER_DISTRIBUTION = "arcade-mcp-server"


class ServerTracker:
    """Records `MCP server started` and `MCP tool called`, as Arcade's MCP servers do.

    `server_version` defaults to the installed arcade-mcp-server's version, else
    "unknown". Safe to call from any thread and from inside an asyncio event loop.
    """

    def __init__(
        self,
        server_version: str | None = None,
        *,
        service: UsageService | None = None,
        identity: UsageIdentity | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._server_version = server_version
        self.work_dir = work_dir
        self.service = service or UsageService(work_dir=work_dir)
        self.identity = identity or UsageIdentity(work_dir)
        self._lock = threading.Lock()
        self._runtime: dict[str, Any] | None = None
        self._secrets: list[str | None] | None = None

    @property
    def server_version(self) -> str:
        if self._server_version is None:
            self._server_version = installed_version(SERVER_DISTRIBUTION)
        return self._server_version

    def track_server_start(
        self,
        transport: str,
        host: str | None = None,
        port: int | None = None,
        tool_count: int = 0,
    ) -> None:
        """Record the server's start; may alias the user's history first (2 s at most).

        The event is on disk (or with a sender) when this returns, so it reaches
        PostHog even if the server then blocks in its loop or exits at once.
        """
        if in_sender() or not is_tracking_enabled(self.work_dir):
            return
        properties: dict[str, Any] = {"transport": transport}
        if host is not None:
            properties["host"] = host
        if port is not None:
            properties["port"] = port
        properties["tool_count"] = tool_count
        try:
            with self._lock:
                identity = self.identity
                identity.load_or_create()
                if identity.created:
                    print_notice()
                principal = link_principal(identity, self.service)
                distinct_id = principal or identity.anon_id
            self._send(SERVER_STARTED, distinct_id, principal is None, properties)
        except IdentityUnavailableError:
            pass
        except Exception as exc:  # a tracking bug must never fail the server
            self._report(exc)

    def track_tool_call(self, success: bool, failure_reason: str | None = None) -> None:
        """Record one tool call. Never waits on the network or on another process."""
        if in_sender() or not is_tracking_enabled(self.work_dir):
            return
        properties: dict[str, Any] = {"is_execution_success": bool(success)}
        try:
            if not success:
                reason = scrub(failure_reason or "", self._known_secrets())
                properties["failure_reason"] = reason or "failed with no reason given"
            with self._lock:
                identity = self.identity
                identity.revalidate()
                principal = identity.get_principal_id(lookup=False)
                distinct_id = principal or identity.anon_id
            self._send(TOOL_CALLED, distinct_id, principal is None, properties)
        except IdentityUnavailableError:
            pass
        except Exception as exc:
            self._report(exc)

    def _send(
        self, event: str, distinct_id: str, is_anon: bool, properties: dict[str, Any]
    ) -> None:
        if self._runtime is None:
            self._runtime = runtime_properties(self.server_version)
        message = make_message(event, distinct_id, {**properties, **self._runtime}, is_anon=is_anon)
        self.service.send(message)

    def _known_secrets(self) -> list[str | None]:
        if self._secrets is None:
            self._secrets = known_secrets(self.identity)
        return self._secrets

    def _report(self, exc: Exception) -> None:
        if debug_enabled():
            with contextlib.suppress(OSError, ValueError):
                print(f"arcade-usage: tracking failed: {exc!r}", file=sys.stderr)
