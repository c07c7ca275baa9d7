"""CommandTracker: one event per command, sent as the right person."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone

from arcade_identity import IdentityUnavailableError, UsageIdentity
from arcade_usage._consent import is_tracking_enabled, print_notice
from arcade_usage._env import debug_enabled, in_sender
from arcade_usage._events import (
    FAILED,
    SUCCEEDED,
    as_text,
    command_properties,
    finite,
    installed_version,
    truth,
)
from arcade_usage._scrub import scrub
from arcade_usage._service import UsageService

CLI_DISTRIBUTION = "arcade-dev-cli"
ALIAS_DEADLINE = 1.8
"""Seconds after the principal lookup began by which the alias must be delivered (or
queued); the last 0.2 s of the 2 s budget are for storing the link."""


class CommandTracker:
    """Records each command of a CLI as `CLI execution succeeded` or `... failed`.

    It also keeps PostHog's people right: anonymous history is aliased into the
    account when credentials first show up (at login, or found on disk), an
    account switch starts a new anonymous id before linking so two accounts are
    never merged, and logout sends its event as the account and then rotates.
    Each of these transitions is decided under the identity's lock, so that any
    number of processes doing it at once do it once.
    """

    def __init__(
        self,
        cli_version: str | None = None,
        *,
        cli_name: str = "arcade",
        service: UsageService | None = None,
        identity: UsageIdentity | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._cli_version = cli_version
        self.cli_name = cli_name
        self.work_dir = work_dir
        self.service = service or UsageService(work_dir=work_dir)
        self.identity = identity or UsageIdentity(work_dir)
        self._noticed = False

    @property
    def cli_version(self) -> str:
        """The version reported with each event: given, else arcade-dev-cli's, else "unknown"."""
        if self._cli_version is None:
            self._cli_version = installed_version(CLI_DISTRIBUTION)
        return self._cli_version

    def show_notice(self) -> None:
        """Print the one-time notice now, if this is the machine's first tracked run.

        A CLI calls it before its command runs, so that the notice comes before the
        command's own output (and before its error, when the first command fails),
        not after. It creates the identity the command's event would create anyway;
        when tracking is off it does nothing at all.
        """
        if self._noticed or in_sender() or not is_tracking_enabled(self.work_dir):
            return
        try:
            self.identity.load_or_create()
            self._notice_if_created()
        except IdentityUnavailableError:
            pass
        except Exception as exc:  # a tracking bug must never fail the user's command
            if debug_enabled():
                print(f"arcade-usage: tracking failed: {exc!r}", file=sys.stderr)

    def _notice_if_created(self) -> None:
        if self.identity.created and not self._noticed:
            self._noticed = True
            print_notice()

    @contextlib.contextmanager
    def track(self, command_name: str) -> Iterator[None]:
        """Track the block as the command `command_name`, for any CLI (click, argparse, ...).

        Times the block and records success, or the exception that ended it (a
        `SystemExit` with code 0 or None is a success), which is raised again.
        """
        self.show_notice()
        started = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            elapsed = (time.perf_counter() - started) * 1000
            error = _describe(exc)
            self.track_command_execution(
                command_name, error is None, duration_ms=elapsed, error_message=error
            )
            raise
        self.track_command_execution(
            command_name, True, duration_ms=(time.perf_counter() - started) * 1000
        )

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
        first, and a login is simply the usual first such command. Ctrl-C during
        the lookup or the alias still queues the event (anonymous, without
        waiting) before KeyboardInterrupt goes on.

        With tracking off nothing is sent, but a logout still ends the session of an
        identity that exists and is linked (`_end_untracked_session`).
        """
        if in_sender():
            return
        if not is_tracking_enabled(self.work_dir):
            if truth(is_logout) and truth(success):
                self._end_untracked_session()
            return
        finished_at = datetime.now(timezone.utc)
        # Arguments of any type: the command is recorded once, and nothing raises here.
        success, is_logout, duration_ms = truth(success), truth(is_logout), finite(duration_ms)
        try:
            self._track(command_name, success, duration_ms, error_message, is_logout, finished_at)
        except IdentityUnavailableError:
            pass  # usage.json cannot be read or written: tracking quietly does nothing
        except Exception as exc:  # a tracking bug must never fail the user's command
            if debug_enabled():
                print(f"arcade-usage: tracking failed: {exc!r}", file=sys.stderr)

    def _end_untracked_session(self) -> None:
        """A logout while tracking is off: rotate `anon_id` and clear the link, as a
        tracked logout does, without an event. Otherwise, once tracking is on again,
        every event would go out under a one-off random id (the identity still linked
        to an account whose credentials are gone), and `usage status` would show the
        account that left. Creates nothing: an identity that is not there, or not
        linked, is left as it is."""
        try:
            data = self.identity.peek()
            if data is not None and data.get("linked_principal_id"):
                self.identity.end_session()
        except Exception as exc:  # never fails the user's logout
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
        self._notice_if_created()
        error = None
        if not success:
            error = scrub(error_message, known_secrets(identity)) or (
                "failed with no error message"
            )
        event = SUCCEEDED if success else FAILED
        if is_logout:
            # Logout's own event still belongs to the account it ends.
            principal = identity.end_session() if success else identity.linked_principal_id
        else:
            try:
                principal = link_principal(identity, self.service)
            except KeyboardInterrupt:
                distinct_id, is_anon = event_sender(identity, None)
                properties = command_properties(
                    command_name, self.cli_name, self.cli_version, duration_ms, error
                )
                self.service.capture(event, distinct_id, properties, is_anon, timestamp=finished_at)
                raise
        distinct_id, is_anon = event_sender(identity, principal)
        # The org and project of the context in force: resolved above with the
        # principal (on the steady path, from the link's fingerprint: no YAML).
        properties = command_properties(
            command_name,
            self.cli_name,
            self.cli_version,
            duration_ms,
            error,
            identity.context_properties(),
        )
        self.service.capture(event, distinct_id, properties, is_anon, timestamp=finished_at)


def event_sender(identity: UsageIdentity, principal: str | None) -> tuple[str, bool]:
    """(distinct_id, is_anon) of an event, given the principal the tracker settled on.

    Without one: the principal another process linked meanwhile with these very
    credentials; else `anon_id`, unless it is linked to an account the credentials
    no longer show (replaced by B's and the switch not made in time, removed by
    hand, a lookup that failed). Then `anon_id` is that account's, and an event
    sent as it would count as theirs: it goes out under a one-off random id,
    belonging to nobody. Credentials gone for good (deleted by hand) end the
    session as a logout would, once they have been gone a while: then the event
    is the new `anon_id`'s.
    """
    if principal is not None:
        return principal, False
    identity.revalidate()
    linked = identity.get_principal_id(lookup=False)
    if linked is not None:
        return linked, False
    data = identity.load_or_create()
    if data.get("linked_principal_id"):
        if end_session_if_credentials_gone(identity):
            return identity.anon_id, True
        import uuid

        return str(uuid.uuid4()), True
    return str(data["anon_id"]), True


def end_session_if_credentials_gone(identity: UsageIdentity) -> bool:
    """`UsageIdentity.end_session_if_credentials_gone`, never waiting for the lock: a
    process that finds it held leaves the decision to the next look. Whatever fails
    here costs the decision, never the event."""
    try:
        return identity.end_session_if_credentials_gone()
    except Exception:  # IdentityBusyError, among others
        return False


def link_principal(identity: UsageIdentity, service: UsageService) -> str | None:
    """The principal to send as; aliases `anon_id` to it first if not linked yet.

    The lookup, the wait for the identity's lock and the alias share one budget:
    however slow Arcade Cloud, PostHog and other processes are, the caller waits
    at most 2 s for them and the link together. A process that cannot have the
    lock in time (another is linking right now) gets None: see `event_sender`.
    """
    started = time.monotonic()
    trusted = identity.get_principal_id(lookup=False)
    if trusted is not None:
        return trusted  # linked, with the credentials it was linked with: nothing to do
    principal = identity.get_principal_id()
    if principal is None:
        return None
    if debug_enabled():
        # Show the alias, but change nothing: it was not sent, so a later (real)
        # run must still find this principal unlinked and send it.
        service.alias(previous_id=identity.anon_id, distinct_id=principal)
        return principal
    deadline = started + ALIAS_DEADLINE

    def alias(previous_id: str, distinct_id: str) -> None:
        service.alias(previous_id, distinct_id, timeout=deadline - time.monotonic())

    try:
        identity.link_principal(principal, alias, timeout=max(0.0, deadline - time.monotonic()))
    except IdentityUnavailableError:
        return None
    return principal


def known_secrets(identity: UsageIdentity) -> list[str | None]:
    """The saved API key and email, to be scrubbed verbatim from error messages."""
    try:
        if not os.path.exists(identity.credentials_path):
            return []
        from arcade_identity import CredentialsError, read_credentials

        credentials = read_credentials(os.path.dirname(identity.path))
    except (CredentialsError, OSError):
        return []
    if credentials is None:
        return []
    return [credentials.api_key, credentials.access_token, credentials.email]


def _describe(exc: BaseException) -> str | None:
    """The error a block ended with, as the user saw it; None for a successful exit."""
    if isinstance(exc, SystemExit):
        if exc.code is None or exc.code == 0:
            return None
        return f"exit code {exc.code}" if isinstance(exc.code, int) else as_text(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        return "Aborted!"
    return as_text(exc)  # `ValueError: bad input`, even when its str() raises
