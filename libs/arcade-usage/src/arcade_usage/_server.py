"""ServerTracker: an MCP server's start and every tool call, for a process that runs for hours.

A tool call costs the caller's thread a few stats and one small file: no network,
no lock held by another process, nothing on stdout (a stdio server's stdout is its
protocol). Each event goes out as the identity in force when it is tracked: a
login or logout in another terminal rewrites `usage.json`, which the next call
sees by its stat; arcade-core's (a login, a refreshed OAuth token) rewrites only
the credentials, whose account a thread of the tracker's then looks up.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
import time
import uuid
import weakref
from typing import Any

from arcade_identity import CREDENTIALS_GONE_GRACE, IdentityUnavailableError, UsageIdentity
from arcade_usage._consent import print_notice, state_in
from arcade_usage._env import debug_enabled, in_sender
from arcade_usage._events import (
    SERVER_STARTED,
    TOOL_CALLED,
    UNNAMED,
    bounded,
    installed_version,
    make_message,
    repair,
    runtime_properties,
    truth,
)
from arcade_usage._scrub import scrub
from arcade_usage._service import UsageService
from arcade_usage._tracker import (
    end_session_if_credentials_gone,
    event_sender,
    known_secrets,
    link_principal,
)

SERVER_DISTRIBUTION = "arcade-mcp-server"
RELINK_RETRY = 300.0
"""Seconds before credentials in which `_relink` found no one are looked up again (as
long as a lookup Cloud failed is remembered)."""

_TRACKERS: weakref.WeakSet[ServerTracker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A pre-fork server's child gets fresh locks: one a parent thread held at fork()
    would stay locked here forever, with no thread to release it."""
    for tracker in list(_TRACKERS):
        tracker._lock = threading.RLock()
        tracker._creating = threading.Lock()
        tracker._relinking = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        self._service = service
        self._identity = identity
        self._arcade: str | None = None
        # Guards the shared identity's cache (never held long). Reentrant, as the outbox's
        # filing lock is: a signal handler may track a call on the thread that holds it.
        self._lock = threading.RLock()
        self._creating = threading.Lock()
        self._relinking = threading.Lock()  # held by the thread of `_relink`
        self._relinked: tuple[object, float] | None = None  # (credentials' version, when)
        self._claim: tuple[object, str | None] | None = None  # (its version, account named)
        _TRACKERS.add(self)
        self._runtime: dict[str, Any] | None = None
        self._secrets: tuple[object, list[str | None]] | None = None  # (credentials' stat, ...)

    def _resolve(self) -> str | None:
        """`.arcade` as an absolute path, found once (a relative ARCADE_WORK_DIR included).

        The service and identity are made for that one place, so that a call costs
        no path resolution and keeps its open outbox. None: no home directory.
        """
        if self._arcade is None:
            from arcade_identity import arcade_dir

            try:
                arcade = arcade_dir(self.work_dir)
            except IdentityUnavailableError:
                return None
            if self._service is None:
                self._service = UsageService(work_dir=arcade)
            if self._identity is None:
                self._identity = UsageIdentity(arcade)
            self._arcade = str(arcade)
        return self._arcade

    def _arcade_or_work_dir(self) -> str | os.PathLike[str] | None:
        return self._arcade if self._arcade is not None else self.work_dir

    @property
    def service(self) -> UsageService:
        self._resolve()
        return self._service or UsageService(work_dir=self.work_dir)

    @property
    def identity(self) -> UsageIdentity:
        self._resolve()
        return self._identity or UsageIdentity(self.work_dir)

    def _enabled(self) -> bool:
        if in_sender():
            return False
        arcade = self._resolve()
        return arcade is not None and state_in(arcade)[0]

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
        resource_server_validator: object = None,
    ) -> None:
        """Record the server's start; may alias the user's history first (2 s at most).

        The arguments are arcade-mcp-server's own tracker's, positional or by keyword,
        so a server swaps trackers by rebinding a name. `resource_server_type` is the
        validator's class name, or `none` without one. The event is on disk (or with
        a sender) when this returns, so it reaches PostHog even if the server then
        blocks in its loop or exits at once.
        """
        if not self._enabled():
            return
        properties: dict[str, Any] = {"transport": transport}
        if host is not None:
            properties["host"] = host
        if port is not None:
            properties["port"] = port
        properties["tool_count"] = tool_count
        properties["resource_server_type"] = (
            "none"
            if resource_server_validator is None
            else type(resource_server_validator).__name__
        )
        try:
            # An identity of its own: the lookup may take up to 2 s, and tool calls
            # made meanwhile on other threads must not wait for it.
            identity = UsageIdentity(self._arcade_or_work_dir())
            identity.load_or_create()
            if identity.created:
                print_notice()
            distinct_id, is_anon = event_sender(identity, link_principal(identity, self.service))
            self._send(SERVER_STARTED, distinct_id, is_anon, properties)
        except IdentityUnavailableError:
            pass
        except Exception as exc:  # a tracking bug must never fail the server
            self._report(exc)

    def track_tool_call(self, success: bool, failure_reason: str | None = None) -> None:
        """Record one tool call. Never waits on the network or on another process.

        Arguments of any type are taken (see `_events.truth`, `as_text`): the call
        is recorded once, and nothing raises into the caller.
        """
        if not self._enabled():
            return
        success = truth(success)
        properties: dict[str, Any] = {"is_execution_success": success}
        try:
            if not success:
                reason = scrub(failure_reason, self._known_secrets())
                properties["failure_reason"] = reason or "failed with no reason given"
            with self._lock:
                identity = self.identity
                identity.revalidate()
                data = identity.peek()
                principal = identity.get_principal_id(lookup=False) if data else None
            if data is None:
                data = self._create_now(identity)
            if data is None:
                # Another process holds the lock that creating the identity needs. The
                # call is recorded now, its sender to be named by the uploader (the
                # anon_id the identity will have), and a thread of ours creates it.
                self._send(TOOL_CALLED, UNNAMED, True, properties)
                threading.Thread(
                    target=self._create_identity, name="arcade-usage-identity", daemon=True
                ).start()
                return
            linked = data.get("linked_principal_id")
            if principal is None and linked:
                # The credentials changed under the link. Until a thread of ours has
                # found whose they are now (`_relink`), the call is the linked account's
                # if the context in force still names it (arcade-core refreshed its
                # OAuth token); else nobody's: never the anon_id linked to that account.
                version = self._credentials_version()
                principal = linked if self._claimed_account(version) == linked else None
                self._relink(version)
                distinct_id = principal or str(uuid.uuid4())
            else:
                distinct_id = principal or str(data["anon_id"])
            self._send(TOOL_CALLED, distinct_id, principal is None, properties)
        except IdentityUnavailableError:
            pass
        except Exception as exc:
            self._report(exc)

    def _relink(self, version: object) -> None:
        """Find, on a thread of ours, whose the credentials are since they changed under
        a link (arcade-core refreshed the OAuth token, or logged in as another account):
        the same account → the link stands for the new file; another → `anon_id` is
        rotated and aliased to it, as a command would. Once per version of the file
        (again after RELINK_RETRY, if it found no one), one at a time. `version`: the
        file's, as `_credentials_version` gives it."""
        now, last = time.monotonic(), self._relinked
        # No file (deleted by hand): looked at again once its session may be ended.
        retry = RELINK_RETRY if version is not None else CREDENTIALS_GONE_GRACE
        if last is not None and last[0] == version and now - last[1] < retry:
            return
        if not self._relinking.acquire(blocking=False):
            return
        self._relinked = (version, now)
        try:
            threading.Thread(
                target=self._relink_now, name="arcade-usage-relink", daemon=True
            ).start()
        except BaseException:
            self._relinking.release()
            raise

    def _claimed_account(self, version: object, *, parse: bool | None = None) -> str | None:
        """The account the context in force names itself (an OAuth login's `account_id`,
        as arcade-core writes it, while its token is valid), for this version of the
        credentials file (`version`). Parsed here only if `parse`, by default when YAML
        is loaded already (in arcade-mcp-server, by arcade-core): a tool call never
        imports it."""
        claim = self._claim
        if claim is not None and claim[0] == version:
            return claim[1]
        if not (parse if parse is not None else "yaml" in sys.modules):
            return None  # until the thread of `_relink` has read it
        from arcade_identity import CredentialsError, read_credentials

        try:
            credentials = read_credentials(self._arcade_or_work_dir())
        except (CredentialsError, OSError):
            credentials = None
        account = None
        if credentials is not None and credentials.secret and not credentials.expired(time.time()):
            account = credentials.account_id
        self._claim = (version, account)
        return account

    def _relink_now(self) -> None:
        try:
            self._claimed_account(self._credentials_version(), parse=True)
            identity = UsageIdentity(self._arcade_or_work_dir())
            identity.load_or_create()
            if not end_session_if_credentials_gone(identity):
                link_principal(identity, self.service)
        except IdentityUnavailableError:
            pass
        except Exception as exc:
            self._report(exc)
        finally:
            if self._relinked is not None:  # the next look counts from this one's end
                self._relinked = (self._relinked[0], time.monotonic())
            self._relinking.release()

    def _create_now(self, identity: UsageIdentity) -> dict[str, Any] | None:
        """Create the identity if its lock is free right now; None if another holds it."""
        from arcade_identity import IdentityBusyError

        try:
            with self._lock:
                data = identity.load_or_create(timeout=0)
        except IdentityBusyError:
            return None
        if identity.created:
            print_notice()
        return data

    def _create_identity(self) -> None:
        try:
            with self._creating:
                identity = UsageIdentity(self._arcade_or_work_dir())
                identity.load_or_create()
                if identity.created:
                    print_notice()
        except IdentityUnavailableError:
            pass
        except Exception as exc:
            self._report(exc)

    def _send(
        self, event: str, distinct_id: str, is_anon: bool, properties: dict[str, Any]
    ) -> None:
        if self._runtime is None:  # the same for every call: bounded and repaired once
            self._runtime = repair(bounded(runtime_properties(self.server_version)))
        message = make_message(
            event, distinct_id, bounded(properties), is_anon=is_anon, repaired=self._runtime
        )
        self.service.send(message)

    def _known_secrets(self) -> list[str | None]:
        """The saved API key and email, read again whenever the credentials file changes
        (a login in another terminal), so that a new key is scrubbed too."""
        version = self._credentials_version()
        if self._secrets is None or self._secrets[0] != version:
            self._secrets = (version, known_secrets(self.identity))
        return self._secrets[1]

    def _credentials_version(self) -> object:
        """What tells one version of the credentials file from the next, by its stat; None
        when there is no file (nothing, or not a file: a directory, a FIFO)."""
        try:
            st = os.stat(self.identity.credentials_path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _report(self, exc: Exception) -> None:
        if debug_enabled():
            with contextlib.suppress(OSError, ValueError):
                print(f"arcade-usage: tracking failed: {exc!r}", file=sys.stderr)
