"""The detached sender: `python -m arcade_usage` (the environment it gets: `_env`).

It checks consent, files the event it was handed in the outbox, and then either
leaves it to the uploader at work (the hand-over: nothing beyond `os`, `time`
and `faulthandler` imported), or becomes the one uploader. Whatever happens,
DNS included, the process is gone after HARD_EXIT_SECONDS; it never prints, and
never records an event or starts a sender of its own.
"""

from __future__ import annotations

import faulthandler
import os
import time

from arcade_usage._consent import state_in
from arcade_usage._env import (
    EVENT_ENV,
    OUTBOX_ENV,
    SENDER_ENV,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._outbox import Outbox

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

HARD_EXIT_SECONDS = 10.0
LAST_START_MARGIN = 0.5
WAIT_MARGIN = 1.0
"""A sender gives up waiting for the upload lock this long before its last start."""


def main() -> None:
    started = time.monotonic()
    _exit_after(HARD_EXIT_SECONDS)
    os.environ[SENDER_ENV] = "1"
    try:  # noqa: SIM105 - no contextlib on the hand-over path
        os.nice(10)  # background work: the user's own commands come first
    except (AttributeError, OSError):
        pass
    event = os.environ.pop(EVENT_ENV, "")
    outbox = Outbox(directory=os.environ.get(OUTBOX_ENV) or _default_outbox())
    arcade = os.path.dirname(outbox.directory)
    if not state_in(arcade)[0]:
        return  # tracking is off: nothing is filed, nothing uploaded
    if event:
        try:
            outbox.file(event.encode("utf-8", "replace"), durable=True)
        except OSError:
            return  # nowhere to keep it; the command has long finished either way
    if outbox.uploader_at_work() or outbox.held_back():
        return
    from arcade_usage._posthog import SEND_TIMEOUT

    # The last moment a request may start and still end before the hard exit.
    last_start = started + HARD_EXIT_SECONDS - SEND_TIMEOUT - LAST_START_MARGIN

    # The lock may be held by an uploader finishing its last request: wait for it, and
    # meanwhile tell the captures that a sender is on its way (they start no other).
    def on_its_way() -> None:
        try:  # noqa: SIM105 - no contextlib on the hand-over path
            outbox.mark_sender_started(os.getpid())
        except OSError:
            pass  # unstamped, a capture may start another sender: harmless

    # It stops waiting while there is still time to upload (a lease, then the last look).
    with outbox.upload_lock(wait_until=last_start - WAIT_MARGIN, waiting=on_its_way) as lock:
        # Its request failed (or its maker was killed during it): the back-off holds.
        if not lock.acquired or outbox.backoff_remaining() > 0:
            return
        from arcade_usage._posthog import upload

        upload(
            outbox,
            host=posthog_host(),
            api_key=posthog_api_key(),
            last_start=last_start,
            allowed=lambda: state_in(arcade)[0],  # `usage disable` meanwhile stops it
            anon_id=_anon_id_of(arcade),
        )


def _exit_after(seconds: float) -> None:
    """End the process after `seconds`, even inside a blocking C call (a DNS lookup).

    faulthandler's watchdog is a C thread that calls `_exit`; it costs no import.
    What it would print goes to the null device, kept open for the process's life.
    """
    faulthandler.dump_traceback_later(seconds, exit=True, file=os.open(os.devnull, os.O_WRONLY))


def _anon_id_of(arcade: str) -> Callable[[], str | None]:
    """The identity's anon_id, created if need be (waiting for its lock), read once."""
    found: list[str] = []

    def anon_id() -> str | None:
        if not found:
            from arcade_identity import IdentityUnavailableError, UsageIdentity

            try:
                found.append(str(UsageIdentity(arcade).anon_id))
            except IdentityUnavailableError:
                return None
        return found[0]

    return anon_id


def _default_outbox() -> str:
    """The outbox of `ARCADE_WORK_DIR` (or the home directory), for a sender run by hand."""
    return Outbox().directory
