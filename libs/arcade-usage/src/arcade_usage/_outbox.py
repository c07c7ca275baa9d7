"""The on-disk outbox: events handed over for delivery, kept until PostHog has them.

One JSON file per message, written atomically, named by the time it was queued so
that a listing is the delivery order (an alias queued by a command sorts ahead of
the event that follows it). A file leaves the outbox only after PostHog accepted
it, so a sender killed at any moment loses nothing and a resend keeps the uuid.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from arcade_identity import arcade_dir
from arcade_usage._settings import OUTBOX_DIR
from arcade_usage._spool import file_message

MAX_MESSAGES = 1000
MAX_AGE_SECONDS = 7 * 24 * 3600
STALE_TEMP_SECONDS = 3600

Message = dict[str, Any]


class Outbox:
    """A directory of messages waiting for PostHog."""

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        """The outbox of `work_dir` (default: `ARCADE_WORK_DIR`), or the one at `directory`."""
        self.directory: Path = (
            Path(directory) if directory is not None else arcade_dir(work_dir) / OUTBOX_DIR
        )

    def put(self, message: Message) -> Path:
        """Queue `message` behind everything queued before it."""
        data = json.dumps(message, separators=(",", ":")).encode()
        return Path(file_message(self.directory, data, message["uuid"]))

    def paths(self) -> list[Path]:
        """Queued messages, oldest first."""
        return self._queued(_listdir(self.directory))

    def _queued(self, names: list[str]) -> list[Path]:
        return [self.directory / n for n in sorted(names) if n.endswith(".json") and n[0] != "."]

    def count(self) -> int:
        return len(self.paths())

    def prune(self, now: float | None = None) -> list[Path]:
        """Drop what is beyond the bounds (older than 7 days, past the newest 1,000).

        Returns the paths that remain, oldest first.
        """
        now = time.time() if now is None else now
        names = _listdir(self.directory)
        keep: list[Path] = []
        for path in self._queued(names):
            queued_at = _queued_at(path)
            if queued_at is None or now - queued_at > MAX_AGE_SECONDS:
                _unlink(path)
            else:
                keep.append(path)
        for path in keep[:-MAX_MESSAGES]:
            _unlink(path)
        for name in names:
            temp = self.directory / name
            if name.endswith(".tmp") and _age(temp, now) > STALE_TEMP_SECONDS:
                _unlink(temp)  # left by a writer killed mid-write
        return keep[-MAX_MESSAGES:]


def read_message(path: Path) -> Message | None:
    """The message in `path`, or None if it is gone or unreadable as one."""
    try:
        message = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return message if is_message(message) else None


def is_message(message: object) -> bool:
    return (
        isinstance(message, dict)
        and isinstance(message.get("event"), str)
        and isinstance(message.get("distinct_id"), str)
        and isinstance(message.get("uuid"), str)
        and isinstance(message.get("timestamp"), str)
        and isinstance(message.get("properties"), dict)
    )


def _queued_at(path: Path) -> float | None:
    try:
        return int(path.name.split("-", 1)[0]) / 1e9
    except ValueError:
        return None


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
