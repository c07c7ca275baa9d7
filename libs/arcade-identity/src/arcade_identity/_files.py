"""Small file primitives: a private directory, tightening modes, atomic replacement, the lock.

Plain `os` calls on purpose: the detached sender files events through here, and
should not pay for importing pathlib.

Linux, macOS and Windows keep the same promises by different means, and each
choice is made by a function that takes the platform (or the `os` module it
looks at) as an argument, so that the Windows choices are tested on Linux too:

- private files: mode 0600 where there are modes; on Windows, whose modes are a
  read-only bit, an ACL that lets the user alone in (`icacls`, as arcade-core
  sets on its credentials; a failure leaves the file as Windows made it);
- a read that refuses symlinks and FIFOs: `O_NOFOLLOW | O_NONBLOCK` where `os`
  has them; without them (Windows) the path is looked at with `lstat` first;
- `os.replace` onto a file another process has open fails on Windows (a
  reader, an antivirus): it is retried for about a second there;
- the lock: `fcntl.flock` where there is `fcntl`, `msvcrt.locking` on Windows
  (both released by the kernel when their process dies), through filelock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

    from filelock import BaseFileLock

DIR_MODE = 0o700
FILE_MODE = 0o600

WINDOWS = os.name == "nt"

REPLACE_RETRY_DELAYS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25, 0.2)
"""Seconds between the tries of a Windows `os.replace` that met a file held open (1 s in all):
long enough for a reader to finish, short enough not to stall a command."""

ACL_TIMEOUT = 2.0
"""`icacls` takes milliseconds; one that hangs must not hold a command for longer."""

CREATE_NO_WINDOW = 0x08000000
"""Windows' process creation flag for a console program started without a console window."""


def ensure_private_dir(path: str | os.PathLike[str], *, windows: bool = WINDOWS) -> None:
    """Create `path` (and parents) with mode 0700, or tighten it to 0700 if it is looser.

    On Windows a directory it creates gets an ACL that lets the user alone in, which
    what is created in it inherits. A symlink to a directory is the user's
    arrangement: used, never chmod-ed through.
    Raises OSError (FileExistsError when something else is in the way).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        # makedirs' mode is filtered by the umask; the directory is ours, so say it plainly.
        os.chmod(path, DIR_MODE)
        restrict_to_user(path, directory=True, windows=windows)
        return
    if stat.S_ISDIR(mode):
        tighten(path, mode, DIR_MODE, windows=windows)
    elif not os.path.isdir(path):
        raise FileExistsError(f"{os.fspath(path)} exists and is not a directory")


def tighten(
    target: str | os.PathLike[str] | int,
    mode: int,
    private: int = FILE_MODE,
    *,
    windows: bool = WINDOWS,
) -> None:
    """Take away group and other permissions an older tool left on a file of ours.

    `target` is a path or an open file descriptor, `mode` its current `st_mode`.
    Someone else's file (or a read-only file system) is left as it is. On Windows
    a mode is only a read-only bit: there is nothing to tighten (our own files get
    their ACL when written).
    """
    if not windows and stat.S_IMODE(mode) & 0o077:
        with contextlib.suppress(OSError, NotImplementedError, TypeError):
            # os.chmod takes a descriptor where the platform can (os.supports_fd); where
            # it cannot, it raises TypeError, and the file stays as it is.
            os.chmod(target, private)


def acl_command(
    path: str | os.PathLike[str],
    *,
    directory: bool = False,
    windows: bool = WINDOWS,
    environ: Mapping[str, str] = os.environ,
) -> list[str] | None:
    """The `icacls` command that leaves `path` to the user alone; None where none is run.

    Inherited entries are removed and the user is granted full control in one
    call, so the file is never without an owner's entry. A directory's grant is
    inherited by what is created in it. `icacls` is named by its full path: a
    bare name would be looked up in the current directory first, which may be
    a project someone else wrote. No user name (a service with a bare
    environment): nothing is run, and the file keeps what Windows gave it.
    """
    user = environ.get("USERNAME")
    if not windows or not user:
        return None
    domain = environ.get("USERDOMAIN")
    who = f"{domain}\\{user}" if domain else user
    system_root = environ.get("SystemRoot") or environ.get("SYSTEMROOT") or "C:\\Windows"
    icacls = os.path.join(system_root, "System32", "icacls.exe")
    grant = f"{who}:(OI)(CI)F" if directory else f"{who}:F"
    return [icacls, os.fspath(path), "/inheritance:r", "/grant:r", grant]


def no_window_flags(windows: bool = WINDOWS) -> int:
    """`creationflags` that start a console program without flashing a console window.

    A program started by a process that has a console (a command in a terminal)
    shares it; one started by a process without (the sender, under `pythonw`)
    would get a window of its own but for this flag.
    """
    return CREATE_NO_WINDOW if windows else 0


def restrict_to_user(
    path: str | os.PathLike[str], *, directory: bool = False, windows: bool = WINDOWS
) -> None:
    """Give `path` an ACL that lets the user alone in (Windows; elsewhere modes do it).

    Errors are tolerated, as arcade-core tolerates them: a file that keeps the
    ACL it inherited is still written, and tracking never fails for it.
    """
    command = acl_command(path, directory=directory, windows=windows)
    if command is None:
        return
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=ACL_TIMEOUT,
            check=False,
            creationflags=no_window_flags(WINDOWS),
        )


def replace_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    windows: bool = WINDOWS,
    attempt: Callable[[str | os.PathLike[str], str | os.PathLike[str]], None] = os.replace,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`os.replace`, tried again for about a second on Windows while the target is held open.

    Windows refuses to replace a file that another process has open (a reader of
    `usage.json`, an antivirus scanning it) with a PermissionError; the holder
    lets go within milliseconds. Elsewhere a PermissionError is final at once.
    """
    _while_held_open(lambda: attempt(source, target), windows, sleep)


def remove_file(
    path: str | os.PathLike[str],
    *,
    windows: bool = WINDOWS,
    attempt: Callable[[str | os.PathLike[str]], None] = os.unlink,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`os.unlink`, tried again on Windows as `replace_file` is: Windows refuses both alike."""
    _while_held_open(lambda: attempt(path), windows, sleep)


def _while_held_open(
    action: Callable[[], None], windows: bool, sleep: Callable[[float], None]
) -> None:
    for delay in (*REPLACE_RETRY_DELAYS, None):
        try:
            action()
        except PermissionError:
            if not windows or delay is None:
                raise
            sleep(delay)
        else:
            return


def write_atomic(
    path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE, *, windows: bool = WINDOWS
) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never a mix.

    The temp file lives in the same directory (so `os.replace` is a rename on one
    file system), is flushed and fsynced before the rename, and is removed if
    anything fails, leaving the old file untouched. A symlink at `path` is
    replaced itself, never written through. On Windows the temp file is made the
    user's alone before a byte is written (a rename keeps the ACL).
    """
    directory, name = os.path.split(os.fspath(path))
    ensure_private_dir(directory, windows=windows)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    except OSError as exc:
        if exc.filename != tmp:
            raise
        raise _named(exc, path) from exc
    try:
        try:
            restrict_to_user(tmp, windows=windows)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace_file(tmp, path, windows=windows)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(exc, OSError) or exc.filename != tmp:
            raise
        raise _named(exc, path) from exc


def _named(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """`exc` as naming `path`, the file the user knows, instead of the temp file."""
    return OSError(exc.errno, exc.strerror or str(exc), os.fspath(path))


def file_lock(
    path: str | os.PathLike[str], timeout: float, *, platform: str = sys.platform
) -> BaseFileLock:
    """The exclusive lock on a sidecar file that this platform's kernel releases with its holder.

    `msvcrt.locking` on Windows, `fcntl.flock` where there is `fcntl`: a holder
    killed mid-write never leaves the lock behind. Only where there is neither (no
    platform Arcade supports, but the tests' Windows `os` surface on Linux) is it
    filelock's soft lock, a file's existence.

    Something other than a regular file at `path` (a link to a file of the user's, a
    directory) raises NotRegularFileError: filelock before 3.20.3 opens the path
    following a link, and truncates what it leads to.
    """
    import filelock

    with contextlib.suppress(FileNotFoundError):  # created by the lock, then
        _look(path, follow_symlinks=False)

    if platform == "win32":
        return filelock.WindowsFileLock(path, timeout=timeout)
    try:
        import fcntl  # noqa: F401 - only whether it can be had
    except ImportError:
        return filelock.SoftFileLock(path, timeout=timeout)
    return filelock.UnixFileLock(path, timeout=timeout, mode=FILE_MODE)


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
    flags, look_first = read_plan(follow_symlinks)
    looked = None
    if look_first:
        try:
            looked = _look(path, follow_symlinks)
        except FileNotFoundError:
            return None
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
        if looked is not None and not os.path.samestat(looked, st):
            raise NotRegularFileError(f"{os.fspath(path)} changed while it was opened")
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


def read_plan(follow_symlinks: bool, surface: ModuleType | object = os) -> tuple[int, bool]:
    """The flags `read_regular` opens with, and whether it must look at the path first.

    `surface` is the `os` module whose names decide. Where it has `O_NONBLOCK`
    (and, not following symlinks, `O_NOFOLLOW`) the open itself refuses what it
    must; where it lacks one (Windows) the path is looked at with `lstat` before
    it is opened.
    """
    flags: int = getattr(surface, "O_RDONLY", 0) | getattr(surface, "O_BINARY", 0)
    nonblock: int = getattr(surface, "O_NONBLOCK", 0)
    nofollow: int = getattr(surface, "O_NOFOLLOW", 0) if not follow_symlinks else 0
    look_first = not nonblock or (not follow_symlinks and not nofollow)
    return flags | nonblock | nofollow, look_first


def _look(path: str | os.PathLike[str], follow_symlinks: bool) -> os.stat_result:
    """Refuse a symlink not to be followed and anything but a regular file, before opening.

    What the flags do where `os` has them. The stat is returned, so that the caller
    can check the descriptor it then opens is this very file (a symlink swapped in
    between the look and the open is refused).
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            raise NotRegularFileError(errno.ELOOP, "Is a symbolic link", os.fspath(path))
        st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(errno.EINVAL, "Not a regular file", os.fspath(path))
    return st


class NotRegularFileError(OSError):
    """Something other than a regular file (a FIFO, a device, a symlink not followed)."""
