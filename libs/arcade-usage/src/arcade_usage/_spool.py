"""The cheap half of the outbox: filing a message, and taking the upload lock.

A detached sender that finds another uploader at work files its event and
leaves. This module keeps that path down to `os` and `fcntl`: no pathlib, json
or posthog, so handing an event over costs little more than starting Python.
"""

from __future__ import annotations

import os
import time

from arcade_identity._files import write_atomic

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

UPLOAD_LOCK = ".upload.lock"


def queued_name(token: str) -> str:
    """A file name that sorts by the moment the message was queued."""
    return f"{time.time_ns():020d}-{token}.json"


def file_message(directory: str | os.PathLike[str], data: bytes, token: str = "") -> str:
    """Queue `data` (one message's JSON) in `directory`, atomically; returns its path."""
    path = os.path.join(directory, queued_name(token or os.urandom(8).hex()))
    write_atomic(path, data)
    return path


class UploadLock:
    """A non-blocking, exclusive lock on the outbox: `acquired` says whether we hold it.

    Released when the block ends or the process dies (a killed uploader never
    leaves a stale lock). On POSIX it is a plain `flock`, so a sender that only
    hands its event over does not pay filelock's import; elsewhere filelock works.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = directory
        self.acquired = False
        self._release: Callable[[], object] = lambda: None

    def __enter__(self) -> UploadLock:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, UPLOAD_LOCK)
        try:
            import fcntl
        except ImportError:  # Windows
            self._acquire_with_filelock(path)
            return self
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return self
        self.acquired = True
        self._release = lambda: os.close(fd)
        return self

    def _acquire_with_filelock(self, path: str) -> None:
        from filelock import FileLock, Timeout

        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return
        self.acquired = True
        self._release = lock.release

    def __exit__(self, *exc_info: object) -> None:
        self._release()
        self.acquired = False
