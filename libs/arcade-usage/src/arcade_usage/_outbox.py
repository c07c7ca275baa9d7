"""The outbox: messages waiting for PostHog, kept on disk until it has them.

`.arcade/usage_outbox/` holds one file per message and a few bookkeeping files:

- `<seq>-<queued>-<token>.json`: a message. `seq` (12 digits) is the delivery
  order: an append to `.seq` gives every message, in every process, the next
  number without a lock and without the wall clock, so an alias queued before an
  event is delivered before it whatever the clock did. `queued` (Unix seconds) is
  only for the age bound. A file leaves the outbox after PostHog took it (or
  refused it for good), so a sender killed at any moment loses nothing.
- `.seq`: one byte appended per message; its length is the last number given.
- `.upload.lock`: held (flock) by the one uploader.
- `.uploader`: the uploader's lease: its pid, with an mtime refreshed every
  quarter second while the uploader takes new messages; a capture that sees it
  fresh (and the upload lock held: its holder lives) files its message and
  starts no sender. A long-lived process trusts a lease it saw for
  AT_WORK_GRACE; the uploader removes the lease and waits longer than that
  before its last look at the outbox, so a message filed while the lease was
  trusted is always seen.
- `.spawned`: the pid of the last sender started, dated then (and again every
  quarter second while it waits for the upload lock); within a second of that,
  while it lives, a capture files its message for that sender instead of
  starting another.
- `.backoff`: `{"until": t, "delay": d}` after a failed upload; until then no
  process starts an upload. A value the clock makes absurd (more than `delay`
  away) counts as expired. An uploader records each request as a failure before
  it is made (`"pending": true`), so that one killed mid-request leaves a
  back-off behind; while its maker still holds the upload lock, that record is an
  attempt under way, not a back-off (`held_back`): a sender started then waits
  for the lock.

The outbox touches only what it wrote: the directory must be a real directory
owned by the user (never a symlink), entries are opened with `O_NOFOLLOW` and
`O_NONBLOCK` and read only when they are regular files, and anything not named
as above is left alone.

Only `os` and `time` are imported at module level: a sender that hands its
event to a running uploader pays for little more than starting Python.
"""

from __future__ import annotations

import _thread
import os
import stat
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any

    from arcade_usage._events import Message

MAX_MESSAGES = 1000
MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_MESSAGE_BYTES = 1024 * 1024
"""PostHog takes a message up to about 1 MB; an entry of ours larger than this is dropped."""
STALE_TEMP_SECONDS = 3600
LEASE_SECONDS = 1.0
"""A lease refreshed less recently than this belongs to an uploader that is gone."""
HEARTBEAT_SECONDS = 0.25
AT_WORK_GRACE = 0.25
"""A long-lived process trusts a seen lease this long without looking again; the
uploader waits longer than this between dropping its lease and its last look."""
SPAWN_INTERVAL = 1.0
"""At most one sender started per outbox in this many seconds."""
MAX_BACKOFF_SECONDS = 24 * 3600.0
MAX_FAILURES = 32
"""Failures in a row counted at most (the back-off stops doubling at an hour long before)."""
SEQ_RESET_BYTES = 1 << 20
PRUNE_EVERY = 256
"""Every this many messages, the one filing it applies the bounds itself."""

_SEQ = ".seq"
_ALIAS_MARK = "-a"
_LOCK = ".upload.lock"
_LEASE = ".uploader"
_SPAWNED = ".spawned"
_BACKOFF = ".backoff"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class OutboxUnavailableError(OSError):
    """The outbox directory is not a real directory of this user's (a symlink, say)."""


class Outbox:
    """A directory of messages waiting for PostHog, oldest first.

    `clock` gives the wall time (seconds): it dates messages for the age bound and
    the bookkeeping files, never their order.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """The outbox of `work_dir` (default: `ARCADE_WORK_DIR`), or the one at `directory`."""
        if directory is None:
            from arcade_identity import OUTBOX_DIR, arcade_dir

            directory = arcade_dir(work_dir) / OUTBOX_DIR
        self.directory = os.path.abspath(directory)
        self._clock = clock
        self._seq: tuple[int, int] | None = None  # (pid, fd) of `.seq`, kept open
        self._seq_lock = _thread.allocate_lock()
        self._at_work_seen = -AT_WORK_GRACE  # monotonic time the lease was last seen
        self.starting = _thread.allocate_lock()
        """Held by the thread of this process that is starting a sender."""

    def __repr__(self) -> str:
        return f"Outbox({self.directory!r})"

    # -- filing ------------------------------------------------------------------------

    def put(self, message: Message, *, durable: bool = False) -> str:
        """Queue `message` behind everything queued before it; returns the entry's name.

        Once this returns, the message survives the caller's death (SIGKILL,
        `os._exit`); `durable` also fsyncs it, for a machine switched off.
        """
        import json

        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        from arcade_usage._events import ALIAS

        token = message["uuid"].replace("-", "")
        return self.file(data, token=token, durable=durable, alias=message["event"] == ALIAS)

    def file(
        self, data: bytes, *, token: str = "", durable: bool = False, alias: bool = False
    ) -> str:
        """Queue one message's JSON as given (an entry that is not a message is dropped later)."""
        self.prepare()
        seq = self._next_seq()
        token = "".join(c for c in token if c in "0123456789abcdef")[:32] or os.urandom(8).hex()
        name = f"{seq:012d}-{int(self._clock()):010d}-{token}{_ALIAS_MARK if alias else ''}.json"
        _write_new(os.path.join(self.directory, name), data, durable=durable)
        if seq % PRUNE_EVERY == 0:
            self.prune()  # the bounds hold while no uploader runs (a long back-off)
        return name

    def _next_seq(self) -> int:
        """The next number of the sequence shared by every process (an append to `.seq`).

        The descriptor stays open for the life of this Outbox (reopened after a fork,
        or when `.seq` was removed); the lock keeps this process's threads from
        reading each other's offset.
        """
        with self._seq_lock:
            for _ in range(2):
                fd = self._seq_fd()
                os.write(fd, b".")
                seq = os.lseek(fd, 0, os.SEEK_CUR)
                if os.fstat(fd).st_nlink:
                    return seq
                self._close_seq()  # `.seq` was removed: number from the new one
            return seq

    def _seq_fd(self) -> int:
        pid = os.getpid()
        if self._seq is None or self._seq[0] != pid:
            fd = os.open(
                os.path.join(self.directory, _SEQ),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _BINARY | _CLOEXEC,
                0o600,
            )
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO there must not hang us
                os.close(fd)
                raise OutboxUnavailableError(f"{self.directory}/{_SEQ} is not a regular file")
            self._seq = (pid, fd)
        return self._seq[1]

    def _close_seq(self) -> None:
        if self._seq is not None and self._seq[0] == os.getpid():
            os.close(self._seq[1])
        self._seq = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 - no contextlib on the hand-over path
            self._close_seq()
        except (OSError, AttributeError):
            pass

    def prepare(self) -> None:
        """Create the directory if needed; refuse one that is not ours."""
        try:
            self._check()
        except FileNotFoundError:
            parent = os.path.dirname(self.directory)
            from arcade_identity import ensure_private_dir

            ensure_private_dir(parent)
            try:  # noqa: SIM105 - no contextlib on the hand-over path
                os.mkdir(self.directory, 0o700)
            except FileExistsError:
                pass
            self._check()

    def _check(self) -> None:
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            raise OutboxUnavailableError(f"{self.directory} is not a directory of this user's")

    def usable(self) -> bool:
        """Whether the directory exists and is ours to read and write."""
        try:
            self._check()
        except OSError:
            return False
        return True

    # -- reading -----------------------------------------------------------------------

    def names(self) -> list[str]:
        """The messages waiting, oldest first (names of our own making only)."""
        return self._ordered(n for n in self._listing() if _is_entry_name(n))

    def _ordered(self, names: Iterable[str]) -> list[str]:
        """`names` in delivery order. An entry numbered past the length of `.seq` was
        numbered before `.seq` started over, so it comes first."""
        try:
            last = os.lstat(os.path.join(self.directory, _SEQ)).st_size
        except OSError:
            last = 0
        return sorted(names, key=lambda n: (int(n[:12]) <= last, n))

    def count(self) -> int:
        return len(self.names())

    def _listing(self) -> list[str]:
        """Names of the regular files in the directory: nothing else is ours to touch."""
        if not self.usable():
            return []
        try:
            with os.scandir(self.directory) as entries:
                return [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except OSError:
            return []

    def read(self, name: str) -> Message | None:
        """The message in entry `name`; None if it is gone, not a regular file, or no message.

        An entry of ours that holds no message is dropped; anything else is left alone.
        """
        import json

        from arcade_usage._events import is_message

        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None  # not ours: left alone
            data = os.read(fd, MAX_MESSAGE_BYTES + 1) if info.st_size <= MAX_MESSAGE_BYTES else b""
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            message = None
        if not is_message(message):
            self.remove(name)
            return None
        result: Message = message
        return result

    def remove(self, name: str) -> None:
        """Delete entry `name` (the entry itself, never what a link would lead to)."""
        if _is_entry_name(name) or name.endswith(".tmp"):
            try:  # noqa: SIM105 - no contextlib on the hand-over path
                os.unlink(os.path.join(self.directory, name))
            except OSError:
                pass  # gone already, or not ours to remove after all

    def prune(self) -> list[str]:
        """Drop what is beyond the bounds; returns the names that remain, oldest first.

        Bounds: the newest MAX_MESSAGES by order, and no message dated more than
        MAX_AGE_SECONDS away from now, in either direction (a date in the future
        means the clock was wrong then or is now; either way it cannot keep an
        entry forever). Temp files of writers killed mid-write go too.
        """
        now = self._clock()
        listing = self._listing()
        keep: list[str] = []
        for name in self._ordered(n for n in listing if _is_entry_name(n)):
            if abs(now - int(name.split("-")[1])) > MAX_AGE_SECONDS:
                self.remove(name)
            else:
                keep.append(name)
        # Aliases are few and small, and dropping one would split a person: they stay.
        events = [n for n in keep if not n[:-5].endswith(_ALIAS_MARK)]
        for name in events[:-MAX_MESSAGES]:
            self.remove(name)
            keep.remove(name)
        for name in listing:
            if name.startswith(".") and name.endswith(".tmp"):
                age = _age(os.path.join(self.directory, name), now)
                if age is not None and abs(age) > STALE_TEMP_SECONDS:
                    self.remove(name)
        return keep

    def clear(self) -> int:
        """Drop every message waiting; returns how many."""
        names = self.names()
        for name in names:
            self.remove(name)
        return len(names)

    def reset_sequence(self) -> None:
        """Start `.seq` over when the outbox is empty (called by the uploader, under the lock)."""
        path = os.path.join(self.directory, _SEQ)
        try:
            if os.lstat(path).st_size > SEQ_RESET_BYTES and not self.names():
                os.truncate(path, 0)
        except OSError:
            pass

    # -- who is sending ----------------------------------------------------------------

    def uploader_at_work(self, *, grace: float = 0.0) -> bool:
        """True while an uploader holds a fresh lease: it will take what is filed now.

        The lease's date says it is taking messages; the upload lock, which the
        kernel releases when its holder dies (or turns into a zombie), says it lives.
        With `grace`, a lease this instance saw at most `grace` seconds ago counts
        without looking again (at most AT_WORK_GRACE: the uploader waits longer
        than that between dropping its lease and its last look).
        """
        now = time.monotonic()
        if now - self._at_work_seen <= min(grace, AT_WORK_GRACE):
            return True
        if self._fresh(_LEASE, LEASE_SECONDS) and self._lock_held():
            self._at_work_seen = now
            return True
        return False

    def sender_started_recently(self) -> bool:
        """True within SPAWN_INTERVAL of a sender's start, while it lives: it will take
        what is filed now."""
        return self._fresh(_SPAWNED, SPAWN_INTERVAL) and _alive(self._stamped_pid(_SPAWNED))

    def mark_sender_started(self, pid: int) -> None:
        self._stamp(_SPAWNED, pid)

    def _fresh(self, name: str, seconds: float) -> bool:
        """Whether `name` was stamped less than `seconds` ago."""
        try:
            info = os.lstat(os.path.join(self.directory, name))
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and 0 <= self._clock() - info.st_mtime < seconds

    def _stamped_pid(self, name: str) -> int:
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
            try:
                return int(os.read(fd, 32) or b"0")
            finally:
                os.close(fd)
        except (OSError, ValueError):
            return 0

    def _lock_held(self) -> bool:
        """Whether some process holds the upload lock (asked without taking it for long)."""
        try:
            import fcntl
        except ImportError:  # Windows: trust the lease's date
            return True
        try:
            fd = os.open(os.path.join(self.directory, _LOCK), os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # and with it the shared lock, if we got it
        return False

    def _stamp(self, name: str, pid: int | None = None) -> None:
        """Write `pid` (default: ours) into `name`, dated now.

        Written in place at a fixed width, so a reader never sees it empty and an
        existing stamp costs no truncation; the write itself dates the file.
        """
        path = os.path.join(self.directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o600)
        try:
            os.pwrite(fd, b"%010d" % (os.getpid() if pid is None else pid), 0)
            if self._clock is not time.time:
                self._date(fd, path)  # a test's clock: date it by that clock
        finally:
            os.close(fd)

    def _refresh(self, name: str) -> None:
        path = os.path.join(self.directory, name)
        fd = os.open(path, os.O_WRONLY | _NOFOLLOW | _NONBLOCK)
        try:
            self._date(fd, path)
        finally:
            os.close(fd)

    def _date(self, fd: int, path: str) -> None:
        now = self._clock()
        if os.utime in os.supports_fd:
            os.utime(fd, (now, now))
        else:
            os.utime(path, (now, now))

    def lease(self) -> AbstractContextManager[None]:
        """Hold the uploader's lease for the block (the caller holds the upload lock)."""
        import contextlib
        import threading

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            stop = threading.Event()

            def beat() -> None:
                while not stop.wait(HEARTBEAT_SECONDS):
                    try:
                        self._refresh(_LEASE)
                    except OSError:
                        return

            self._stamp(_LEASE)
            heartbeat = threading.Thread(target=beat, name="arcade-usage-lease", daemon=True)
            heartbeat.start()
            try:
                yield
            finally:
                stop.set()
                heartbeat.join()
                try:  # noqa: SIM105 - no contextlib on the hand-over path
                    os.unlink(os.path.join(self.directory, _LEASE))
                except OSError:
                    pass

        return held()

    def upload_lock(
        self, *, wait_until: float | None = None, waiting: Callable[[], object] | None = None
    ) -> UploadLock:
        """The lock only the uploader holds; `wait_until` (monotonic) bounds the wait for it,
        and `waiting` is called every HEARTBEAT_SECONDS of it (POSIX)."""
        return UploadLock(self, wait_until, waiting)

    # -- back-off ----------------------------------------------------------------------

    def backoff_remaining(self) -> float:
        """Seconds before an upload may be tried again; 0 when it may be now."""
        return self._remaining(self._backoff_record())

    def held_back(self) -> bool:
        """Whether a back-off holds uploads back now.

        A pending record whose maker still holds the upload lock is no back-off but
        an uploader's request in flight, which ends as a success (the record goes) or
        a failure (a real back-off). The record is read again after the lock is found
        free: its maker clears or replaces it before letting go of the lock, so a
        pending record still there then is one a killed uploader left.
        """
        record = self._backoff_record()
        if record.get("pending") is True:
            if self._lock_held():
                return False
            record = self._backoff_record()
        return self._remaining(record) > 0

    def _remaining(self, record: dict[str, Any]) -> float:
        try:
            left = float(record["until"]) - self._clock()
            delay = float(record["delay"])
        except (KeyError, ValueError, TypeError, OverflowError):
            return 0.0
        return left if 0 < left <= delay <= MAX_BACKOFF_SECONDS else 0.0

    def back_off(self, retry_after: float | None = None) -> float:
        """Record a failed upload; returns the delay before the next attempt.

        Doubles from 2 s with each failure in a row, up to an hour, and is never
        shorter than PostHog's `Retry-After` (itself capped at a day).
        """
        import json

        path = os.path.join(self.directory, _BACKOFF)
        failures = min(self._failures() + 1, MAX_FAILURES)
        delay = min(2.0**failures, 3600.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
        record = {"until": self._clock() + delay, "delay": delay, "failures": failures}
        _write_new(path, json.dumps(record).encode(), durable=False)
        return delay

    def back_off_pending(self, seconds: float) -> None:
        """Record an attempt under way: a back-off of `seconds` unless it is cleared or replaced.

        The count of failures in a row is kept as it is.
        """
        import json

        failures = self._failures()
        record = {
            "until": self._clock() + seconds,
            "delay": seconds,
            "failures": failures,
            "pending": True,
        }
        _write_new(
            os.path.join(self.directory, _BACKOFF), json.dumps(record).encode(), durable=False
        )

    def _failures(self) -> int:
        try:
            return min(max(int(self._backoff_record().get("failures", 0)), 0), MAX_FAILURES)
        except (ValueError, TypeError, OverflowError):
            return 0

    def _backoff_record(self) -> dict[str, Any]:
        """`.backoff`'s record; empty when there is none, or none that reads as one."""
        try:
            fd = os.open(
                os.path.join(self.directory, _BACKOFF), os.O_RDONLY | _NOFOLLOW | _NONBLOCK
            )
        except OSError:
            return {}  # the common case: json is not even imported
        import json

        try:
            record = json.loads(os.read(fd, 4096))
        except (OSError, ValueError, RecursionError):
            return {}
        finally:
            os.close(fd)
        return record if isinstance(record, dict) else {}

    def clear_backoff(self) -> None:
        try:  # noqa: SIM105 - no contextlib on the hand-over path
            os.unlink(os.path.join(self.directory, _BACKOFF))
        except OSError:
            pass


class UploadLock:
    """An exclusive lock on the outbox: `acquired` says whether we hold it.

    Released when the block ends or the process dies (a killed uploader never
    leaves a stale lock). On POSIX it is a plain `flock`, so a sender that only
    hands its event over does not pay filelock's import; elsewhere filelock works.
    """

    def __init__(
        self, outbox: Outbox, wait_until: float | None, waiting: Callable[[], object] | None
    ) -> None:
        self._outbox = outbox
        self._wait_until = wait_until
        self._waiting = waiting
        self.acquired = False
        self._release: Callable[[], object] = lambda: None

    def __enter__(self) -> UploadLock:
        self._outbox.prepare()
        path = os.path.join(self._outbox.directory, _LOCK)
        try:
            import fcntl
        except ImportError:  # Windows
            self._acquire_with_filelock(path)
            return self
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o600)
        next_call = time.monotonic()  # at once: the stamp it renews may be a second old
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                now = time.monotonic()
                if self._wait_until is None or now >= self._wait_until:
                    os.close(fd)
                    return self
                if self._waiting is not None and now >= next_call:
                    next_call = now + HEARTBEAT_SECONDS
                    self._waiting()
                time.sleep(0.05)
        self.acquired = True
        self._release = lambda: os.close(fd)
        return self

    def _acquire_with_filelock(self, path: str) -> None:
        from filelock import FileLock, Timeout

        wait = 0.0 if self._wait_until is None else max(0.0, self._wait_until - time.monotonic())
        lock = FileLock(path, timeout=wait)
        try:
            lock.acquire()
        except Timeout:
            return
        self.acquired = True
        self._release = lock.release

    def __exit__(self, *exc_info: object) -> None:
        self._release()
        self.acquired = False


def _is_entry_name(name: str) -> bool:
    """`<12 digits>-<10 digits>-<hex>.json`, the names `Outbox.file` gives."""
    if not name.endswith(".json") or len(name) < 30:
        return False
    stem = name[:-5].removesuffix(_ALIAS_MARK)
    seq, _, rest = stem.partition("-")
    queued, _, token = rest.partition("-")
    return (
        len(seq) == 12
        and seq.isdigit()
        and len(queued) == 10
        and queued.isdigit()
        and 0 < len(token) <= 32
        and all(c in "0123456789abcdef" for c in token)
    )


def _write_new(path: str, data: bytes, *, durable: bool) -> None:
    """Write `path` whole or not at all: a temp file beside it, then a rename."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - no contextlib on the hand-over path
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not; True where that cannot be asked)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # it exists, as another user's
    try:
        with open(f"/proc/{pid}/stat", "rb") as status:
            return status.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: existing is all we can know


def _age(path: str, now: float) -> float | None:
    try:
        return now - os.lstat(path).st_mtime
    except OSError:
        return None
