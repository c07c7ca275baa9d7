"""The detached sender: `python -m arcade_usage` (the environment it gets: `_env`).

It checks consent, then plays the sender's part of the protocol (`_outbox`): the
accepting lock it was handed, the upload lock, the uploads, its final look.
Whatever happens, DNS included, the process is gone after the protocol's `life`
(10 s); it never prints, and never records an event or starts a sender.
"""

from __future__ import annotations

import faulthandler
import os
import time

from arcade_usage._consent import state_in
from arcade_usage._env import (
    ACCEPT_FD_ENV,
    OUTBOX_ENV,
    SENDER_ENV,
    TAKE_ACCEPT,
    TIMINGS_ENV,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._outbox import Outbox, run_sender, timings_from

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def main() -> None:
    started = time.monotonic()
    timings = timings_from(os.environ.get(TIMINGS_ENV))
    _exit_after(timings.life)
    os.environ[SENDER_ENV] = "1"
    handed = os.environ.pop(ACCEPT_FD_ENV, "")
    accept_fd = _accept_fd(handed)
    outbox = Outbox(directory=os.environ.get(OUTBOX_ENV) or Outbox().directory)
    arcade = os.path.dirname(outbox.directory)
    if not state_in(arcade)[0]:
        return  # tracking is off: nothing is uploaded (exiting releases the lock)
    run_sender(
        outbox,
        post=_post,
        default=(posthog_host(), posthog_api_key()),
        started=started,
        accept_fd=accept_fd,
        take_accept=handed == TAKE_ACCEPT,
        timings=timings,
        allowed=lambda: state_in(arcade)[0],  # `usage disable` meanwhile stops it
        anon_id=_anon_id_of(arcade),
    )


def _post(*args: Any, **kwargs: Any) -> None:
    """One request (the SDK loads on the first: a sender that finds another accepting
    leaves without paying for it)."""
    from arcade_usage._posthog import post_batch

    post_batch(*args, **kwargs)


def _accept_fd(value: str) -> int | None:
    """The accepting lock's descriptor handed over by the capture, if it is one."""
    try:
        fd = int(value)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    return fd


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
