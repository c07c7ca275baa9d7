"""Small file primitives: a private directory, tightening modes, atomic replacement.

Plain `os` calls on purpose: the detached sender files events through here, and
should not pay for importing pathlib.
"""

from __future__ import annotations

import contextlib
import os
import stat

DIR_MODE = 0o700
FILE_MODE = 0o600

_POSIX = os.name == "posix"


def ensure_private_dir(path: str | os.PathLike[str]) -> None:
    """Create `path` (and parents) with mode 0700, or tighten it to 0700 if it is looser.

    A symlink to a directory is the user's arrangement: used, never chmod-ed through.
    Raises OSError (FileExistsError when something else is in the way).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        # makedirs' mode is filtered by the umask; the directory is ours, so say it plainly.
        os.chmod(path, DIR_MODE)
        return
    if stat.S_ISDIR(mode):
        tighten(path, mode, DIR_MODE)
    elif not os.path.isdir(path):
        raise FileExistsError(f"{os.fspath(path)} exists and is not a directory")


def tighten(target: str | os.PathLike[str] | int, mode: int, private: int = FILE_MODE) -> None:
    """Take away group and other permissions an older tool left on a file of ours.

    `target` is a path or an open file descriptor, `mode` its current `st_mode`.
    Someone else's file (or a read-only file system) is left as it is.
    """
    if _POSIX and stat.S_IMODE(mode) & 0o077:
        with contextlib.suppress(OSError):
            if isinstance(target, int):
                os.fchmod(target, private)
            else:
                os.chmod(target, private)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never a mix.

    The temp file lives in the same directory (so `os.replace` is a rename on one
    file system), is flushed and fsynced before the rename, and is removed if
    anything fails, leaving the old file untouched. A symlink at `path` is
    replaced itself, never written through.
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


def read_regular(
    path: str | os.PathLike[str], *, limit: int, follow_symlinks: bool = True
) -> tuple[bytes, os.stat_result] | None:
    """The bytes and stat of a regular file, read through one descriptor; None if absent.

    Never blocks on a FIFO and never reads more than `limit` + 1 bytes, so a caller
    can tell "too large" (`len(data) > limit`) from the file. A file that is not
    regular (or, with `follow_symlinks=False`, a symlink) raises NotRegularFileError.
    Without following symlinks, the file is surely ours to tighten, and is.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise NotRegularFileError(f"{os.fspath(path)} is a symlink") from exc
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"{os.fspath(path)} is not a regular file")
        if not follow_symlinks and st.st_mode & 0o077:
            tighten(fd, st.st_mode)
            st = os.fstat(fd)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


class NotRegularFileError(OSError):
    """Something other than a regular file (a FIFO, a device, a symlink not followed)."""
