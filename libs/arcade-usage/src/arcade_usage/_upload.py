"""The uploader's work: post the outbox to PostHog in order, while holding the lock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from arcade_usage._delivery import SEND_TIMEOUT, post_batch
from arcade_usage._outbox import Message, Outbox, read_message
from arcade_usage.exceptions import DeliveryError

BATCH_SIZE = 100
ALIAS_EVENT = "$create_alias"
POLL_SECONDS = 0.05


def upload_outbox(
    outbox: Outbox,
    *,
    host: str,
    api_key: str,
    timeout: float = SEND_TIMEOUT,
    linger: float = 0.0,
    stop_at: float | None = None,
) -> bool:
    """Post everything queued, oldest first; the caller holds the upload lock.

    Stops at the first batch PostHog does not take, so what follows it (an event
    after its alias) is never delivered ahead of it; returns False then. Keeps
    watching the outbox for `linger` seconds after it empties, so that a burst
    of commands is served by this one uploader (one posthog import), not one
    each. Starts no batch that could still be in flight at `stop_at` (a
    monotonic time): the hard exit never cuts an upload short, which could
    deliver its events twice.
    """
    quiet_since = time.monotonic()
    while True:
        if outbox.paths():  # one listdir per poll; pruning only when there is work
            for batch_paths, messages in _batches(outbox.prune()):
                if stop_at is not None and time.monotonic() + timeout > stop_at:
                    return False
                try:
                    post_batch(messages, host=host, api_key=api_key, timeout=timeout)
                except DeliveryError:
                    return False
                for path in batch_paths:
                    path.unlink(missing_ok=True)
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= linger:
            return True
        else:
            time.sleep(POLL_SECONDS)


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
