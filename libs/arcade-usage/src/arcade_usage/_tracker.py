"""CommandTracker: one event per command, sent as the right person."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone

from arcade_identity import IdentityUnavailableError, UsageIdentity
from arcade_usage._consent import is_tracking_enabled
from arcade_usage._notice import print_notice
from arcade_usage._properties import FAILED, SUCCEEDED, command_properties, scrub
from arcade_usage._service import UsageService
from arcade_usage._settings import debug_enabled
from arcade_usage._version import installed_version

ALIAS_DEADLINE = 1.8
"""Seconds after the principal lookup began by which the alias must be delivered (or
queued); the last 0.2 s of the 2 s budget are for storing the link."""


class CommandTracker:
    """Records each command of a CLI as `CLI execution succeeded` or `... failed`.

    It also keeps PostHog's people right: anonymous history is aliased into the
    account when credentials first show up (at login, or found on disk), an
    account switch starts a new anonymous id before linking so two accounts are
    never merged, and logout sends its event as the account and then rotates.
    """

    def __init__(
        self,
        cli_version: str | None = None,
        *,
        service: UsageService | None = None,
        identity: UsageIdentity | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._cli_version = cli_version
        self.work_dir = work_dir
        self.service = service or UsageService(work_dir=work_dir)
        self.identity = identity or UsageIdentity(work_dir)

    @property
    def cli_version(self) -> str:
        """The version reported with each event: given, else arcade-cli's, else "unknown"."""
        if self._cli_version is None:
            self._cli_version = installed_version("arcade-cli")
        return self._cli_version

    def track_command_execution(
        self,
        command_name: str,
        success: bool,
        duration_ms: float | None = None,
        error_message: str | None = None,
        is_login: bool = False,
        is_logout: bool = False,
    ) -> None:
        """Send one event for a finished command. Never raises, never waits on PostHog.

        `is_logout` sends the event as the principal the logout ends, then (if it
        succeeded) rotates the anonymous id. `is_login` needs no path of its own:
        every command that finds credentials of a principal not linked yet aliases
        first, and a login is simply the usual first such command.
        """
        if not is_tracking_enabled(self.work_dir):
            return
        finished_at = datetime.now(timezone.utc)
        try:
            self._track(command_name, success, duration_ms, error_message, is_logout, finished_at)
        except IdentityUnavailableError:
            pass  # usage.json cannot be read or written: tracking quietly does nothing
        except Exception as exc:  # a tracking bug must never fail the user's command
            if debug_enabled():
                print(f"arcade-usage: tracking failed: {exc!r}", file=sys.stderr)

    def _track(
        self,
        command_name: str,
        success: bool,
        duration_ms: float | None,
        error_message: str | None,
        is_logout: bool,
        finished_at: datetime,
    ) -> None:
        identity = self.identity
        identity.load_or_create()
        if identity.created:
            print_notice()
        if not success:
            error_message = self._scrubbed(error_message)
        properties = command_properties(
            command_name, self.cli_version, duration_ms, None if success else error_message
        )
        event = SUCCEEDED if success else FAILED
        if is_logout:
            # Logout's own event still belongs to the account it ends.
            linked = identity.linked_principal_id
            self.service.capture(
                event, linked or identity.anon_id, properties, linked is None, timestamp=finished_at
            )
            if success and linked:
                identity.reset_to_anonymous()
            return
        principal = self._link_principal()
        self.service.capture(
            event,
            principal or identity.anon_id,
            properties,
            principal is None,
            timestamp=finished_at,
        )

    def _link_principal(self) -> str | None:
        """The principal to send as; aliases `anon_id` to it first if not linked yet.

        Linked to A but the credentials now hold B: `anon_id` already belongs to A,
        so a fresh one is aliased to B instead. The link is stored even when the
        alias could only be queued (it is delivered first later) or when PostHog
        declines to merge, so the alias is never sent twice for the same pair.

        The lookup and the alias share one budget: however slow Arcade Cloud and
        PostHog are, a command waits at most 2 s for them and the link together.
        """
        identity = self.identity
        started = time.monotonic()
        principal = identity.get_principal_id()
        if principal is None:
            return None
        linked = identity.linked_principal_id
        if principal != linked:
            if debug_enabled():
                # Show the alias, but change nothing: it was not sent, so a later
                # (real) run must still find this principal unlinked and send it.
                self.service.alias(previous_id=identity.anon_id, distinct_id=principal)
                return principal
            if linked is not None:
                identity.reset_to_anonymous()
            left = ALIAS_DEADLINE - (time.monotonic() - started)
            self.service.alias(previous_id=identity.anon_id, distinct_id=principal, timeout=left)
            identity.set_linked_principal_id(principal)
        return principal

    def _scrubbed(self, error_message: str | None) -> str:
        secrets: list[str | None] = []
        if error_message and os.path.exists(self.identity.credentials_path):
            from arcade_identity import CredentialsError, read_credentials

            try:
                credentials = read_credentials(self.work_dir)
            except CredentialsError:
                credentials = None
            if credentials is not None:
                secrets += [credentials.api_key, credentials.email]
        message = scrub(error_message or "", secrets)
        return message or "failed with no error message"
