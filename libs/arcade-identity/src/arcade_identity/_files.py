"""Small file primitives: a private directory and atomic replacement.

Plain `os` calls on purpose: the detached sender files events through here, and
should not pay for importing pathlib.
"""

from __future__ import annotations

import contextlib
import os

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: str | os.PathLike[str]) -> None:
    """Create `path` (and parents) with mode 0700 if it does not exist yet."""
    if not os.path.isdir(path):
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        # makedirs' mode is filtered by the umask; the directory is ours, so say it plainly.
        os.chmod(path, DIR_MODE)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never a mix.

    The temp file lives in the same directory (so `os.replace` is a rename on one
    file system), is flushed and fsynced before the rename, and is removed if
    anything fails, leaving the old file untouched.
    """
    directory, name = os.path.split(os.fspath(path))
    ensure_private_dir(directory)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_bytes_or_none(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None
