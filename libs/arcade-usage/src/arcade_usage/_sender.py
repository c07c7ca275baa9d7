"""The detached sender: `python -m arcade_usage`.

It files the event it was handed in the outbox, then tries to become the one
uploader. A sender that finds another at work leaves at once, having imported
next to nothing: the uploader looks at the outbox again before it lets go of
the lock, and once more after, so nothing is stranded. Whatever happens (DNS
included) the process is gone after HARD_EXIT_SECONDS.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import time

from arcade_usage._settings import (
    EVENT_ENV,
    OUTBOX_ENV,
    SENDER_ENV,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._spool import UploadLock, file_message

HARD_EXIT_SECONDS = 10.0
LINGER_SECONDS = 0.5


def main() -> None:
    started = time.monotonic()
    _exit_after(HARD_EXIT_SECONDS)
    os.environ[SENDER_ENV] = "1"
    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)  # background work: the user's own commands come first
    directory = os.environ.get(OUTBOX_ENV) or _default_outbox()
    event = os.environ.pop(EVENT_ENV, "")
    if event:
        try:
            # Filed as handed over; the uploader drops what is not a message.
            file_message(directory, event.encode())
        except OSError:
            return  # nowhere to keep it; the command has long finished either way
    while True:
        with UploadLock(directory) as lock:
            if not lock.acquired:
                return
            from arcade_usage._outbox import Outbox
            from arcade_usage._upload import upload_outbox

            outbox = Outbox(directory=directory)
            drained = upload_outbox(
                outbox,
                host=posthog_host(),
                api_key=posthog_api_key(),
                linger=LINGER_SECONDS,
                stop_at=started + HARD_EXIT_SECONDS - 0.5,
            )
        # A sender that found the lock taken a moment ago has left its event for
        # us: look once more now that the lock is free.
        if not drained or not outbox.paths():
            return


def _exit_after(seconds: float) -> None:
    """End the process after `seconds`, even inside a blocking C call (a DNS lookup).

    faulthandler's watchdog is a C thread that calls `_exit`; it costs no import.
    What it would print goes to the null device, kept open for the process's life.
    """
    faulthandler.dump_traceback_later(seconds, exit=True, file=os.open(os.devnull, os.O_WRONLY))


def _default_outbox() -> str:
    """The outbox of `ARCADE_WORK_DIR` (or the home directory), for a sender run by hand."""
    from arcade_usage._outbox import Outbox

    return os.fspath(Outbox().directory)
