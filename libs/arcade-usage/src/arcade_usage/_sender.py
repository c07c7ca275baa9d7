"""The detached sender: `python -m arcade_usage`.

It files the event it was handed into the outbox, then tries to become the one
uploader. A sender that finds another at work leaves at once: that uploader
looks at the outbox again after it lets go of the lock, so nothing is stranded.
Whatever happens (DNS included) the process is gone after HARD_EXIT_SECONDS.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from arcade_usage._delivery import SEND_TIMEOUT, post_batch
from arcade_usage._outbox import Message, Outbox, is_message, read_message
from arcade_usage._settings import EVENT_ENV, SENDER_ENV, posthog_api_key, posthog_host
from arcade_usage.exceptions import DeliveryError

HARD_EXIT_SECONDS = 10.0
BATCH_SIZE = 100
ALIAS_EVENT = "$create_alias"


def main() -> None:
    watchdog = threading.Timer(HARD_EXIT_SECONDS, os._exit, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    os.environ[SENDER_ENV] = "1"
    outbox = Outbox()
    message = _handed_event()
    if message is not None:
        try:
            outbox.put(message)
        except OSError:
            return  # nowhere to keep it; the command has long finished either way
    deliver_outbox(outbox, host=posthog_host(), api_key=posthog_api_key())


def deliver_outbox(
    outbox: Outbox, *, host: str, api_key: str, timeout: float = SEND_TIMEOUT
) -> int:
    """Upload the outbox in order unless another process already is; returns how many went.

    Stops at the first batch PostHog does not take, so what follows it (an event
    after its alias) is never delivered ahead of it.
    """
    delivered = 0
    while True:
        with outbox.upload_lock() as uploader:
            if not uploader:
                return delivered
            for paths, messages in _batches(outbox.prune()):
                try:
                    post_batch(messages, host=host, api_key=api_key, timeout=timeout)
                except DeliveryError:
                    return delivered
                for path in paths:
                    path.unlink(missing_ok=True)
                delivered += len(messages)
        if not outbox.paths():
            return delivered


def _handed_event() -> Message | None:
    raw = os.environ.pop(EVENT_ENV, None)
    if not raw:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message if is_message(message) else None


def _batches(paths: list[Path]) -> Iterator[tuple[list[Path], list[Message]]]:
    """Consecutive runs of at most BATCH_SIZE messages; an alias always ends its run."""
    batch_paths: list[Path] = []
    batch: list[Message] = []
    for path in paths:
        message = read_message(path)
        if message is None:
            path.unlink(missing_ok=True)  # unreadable as a message: nothing to deliver
            continue
        batch_paths.append(path)
        batch.append(message)
        if len(batch) == BATCH_SIZE or message["event"] == ALIAS_EVENT:
            yield batch_paths, batch
            batch_paths, batch = [], []
    if batch:
        yield batch_paths, batch
