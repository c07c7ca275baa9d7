"""The sending protocol: the outbox on disk, who uploads it, and when.

Everything that decides whether an event reaches PostHog lives here; `_service`
files and starts, `_sender` is the process, `_posthog` makes one request.

Files in `.arcade/usage_outbox/`:

- `<seq>-<queued>-<token>[-a].json`: one entry, created under its name and written
  in one go by the capturing process itself before anything else happens (a
  reader takes one that does not decode yet for one being written: it is left
  alone for an hour, then dropped as a writer's killed mid-write). It holds
  `{"host", "api_key", "message"}`: the message exactly as PostHog will get it,
  and the destination of the process that captured it. `seq` comes from an
  append to `.seq` (its new length): the order of delivery, shared by every
  process without a lock or the clock, of any length. `queued` (Unix seconds)
  serves the age bound only; `-a` marks an alias, which the bounds never drop.
- `.seq`: one byte per entry; started over by the uploader when the outbox is empty.
- `.accept.lock`: held by the one sender that *accepts* new entries.
- `.upload.lock`: held by the one sender allowed to post.
- `.handover.lock`: Windows only; see below.
- `.backoff`: per destination, `{"until", "delay", "failures"}` after a failed
  request; `"pending": true` while a request is in flight.
- `sent.log`, `sent.log.1`: what was delivered (`{"sent", "messages"}`, a line a
  request), for `arcade usage log`: appended by the uploader; past half of
  SENT_MAX_BYTES it becomes `sent.log.1` (the older one dropped); kept 7 days.
  (`sent/`, a file per event, was an older version's: it is removed.)

Liveness comes from the kernel: a lock is held by a live process or not held.
No date, heartbeat or pid says who is at work.

    capture (any process, any thread)          sender (`python -m arcade_usage`)
    ---------------------------------          ------------------------------------------
    1. write the entry (on disk: safe)         STARTING   holds `.accept.lock` from before
    2. try `.accept.lock`, without waiting                it exists (POSIX: the capture's
       held -> done: its holder has not                   locked descriptor, `pass_fds`)
             taken its final look yet          WAITING    waits for `.upload.lock`
       free -> a back-off longer than a        ACCEPTING  posts what waits: a backlog back
             sender's life? release, done.                to back in byte-sized batches, a
             else start a sender, handing it              trickle paced by `interval`;
             the lock; close our copy                     waits out a short back-off;
                                                          until `linger` passes with nothing
                                                          new, or `accept_window` is over
                                               CLOSING    releases `.accept.lock`, THEN lists
                                                          the outbox (the final look) and
                                                          posts that snapshot
                                               EXIT       releases `.upload.lock` (or dies:
                                                          the kernel releases both)

Why nothing is stranded: a capture that found the lock held wrote its entry
before trying; the holder lists the outbox only after releasing, so that
listing has the entry. A capture that found it free starts a sender. Why a
burst starts one sender: the child holds the lock before it exists, so every
later capture finds it held. Why one uploader: `.upload.lock`.

Windows cannot hand a held lock to a child (`hands_lock_to_child`): there the
capture keeps the lock on a thread of its own (the bridge) until the sender it
started holds `.handover.lock`, the sign that it waits for the accepting lock,
and then lets go. A capture process that exits before that releases the lock
early: another capture may then start a second sender, which waits for the
first to stop accepting (an extra process, never a stranded event nor two
uploaders).

A request in flight is recorded first (`pending`), so that an uploader killed
during it leaves a back-off no longer than that request could have lasted. A
back-off that a sender can wait out within its life does not stop a sender from
starting: it waits, then posts. A batch that timed out is sent whole once more,
then halved.

Only `os`, `time` and `_thread` are imported at module level: the capture path
of a command stays light.
"""

from __future__ import annotations

import _thread
import os
import stat
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from arcade_usage._events import Message

    Destination = tuple[str, str]
    Post = Callable[..., None]

# -- bounds --------------------------------------------------------------------------------

MAX_MESSAGES = 10_000
"""What posthog's own client holds in memory: what the outbox keeps during an outage.

Only then (`Outbox._outage`). While PostHog takes what it is sent, a backlog is in
transit, not undeliverable: several busy servers can file events faster than the
one sender gets the CPU to post them (beside many threads in one cgroup, a process
with one thread gets a small share), and their backlog may pass 10,000 without
anything being wrong. MAX_BYTES and MAX_AGE_SECONDS bound it at all times."""
MAX_BYTES = 64 * 1024 * 1024
MAX_AGE_SECONDS = 7 * 24 * 3600
MAX_ENTRY_BYTES = 1024 * 1024
"""PostHog takes a message up to about 1 MB; an entry larger than this is dropped."""
BATCH_BYTES = 500 * 1024
"""One request carries at most this much (posthog-python caps a batch about there)."""
MAX_BACKOFF_SECONDS = 3600.0
"""A back-off, `Retry-After` included, lasts an hour at most."""
MAX_FAILURES = 32
SEQ_RESET_BYTES = 1 << 20
PRUNE_EVERY = 1000
"""Every this many entries, the capturing process applies the bounds on a thread of its own."""
SENT_MAX_BYTES = 8 * 1024 * 1024
UNFINISHED_SECONDS = 3600
"""An entry that holds no message is taken for one being written this long (its writer
may be stopped mid-write), then dropped (its writer, if it comes back, files it again);
a temp file left behind too."""

_SEQ = ".seq"
_ACCEPT = ".accept.lock"
_UPLOAD = ".upload.lock"
_HANDOVER = ".handover.lock"
_BACKOFF = ".backoff"
_SENT = "sent.log"
_SENT_OLDER = "sent.log.1"
_SENT_DIR = "sent"  # an older version's sent log: a file per event
_ALIAS_MARK = "-a"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# -- timings -------------------------------------------------------------------------------


class Timings:
    """The protocol's durations (seconds), and the relations between them, checked.

    `life`: the sender's hard exit. `request`: one request's timeout. `linger`: how
    long an accepting sender waits for more after the last entry it saw.
    `interval`: a trickle's pacing. `backoff`: the first failure's back-off.
    The rest derive from these, so that shortening them (tests) keeps them true.
    """

    __slots__ = ("backoff", "interval", "life", "linger", "request")

    def __init__(
        self,
        *,
        life: float = 10.0,
        request: float = 5.0,
        linger: float = 1.0,
        interval: float = 1.0,
        backoff: float = 2.0,
    ) -> None:
        self.life, self.request, self.linger = life, request, linger
        self.interval, self.backoff = interval, backoff
        check(self)

    @property
    def exit_margin(self) -> float:
        """Between the last moment a request may end and the hard exit."""
        return self.life / 20

    @property
    def min_request(self) -> float:
        """No request starts with less time than this left."""
        return self.request / 5

    @property
    def startup(self) -> float:
        """What starting a sender may take, on a busy machine."""
        return self.life / 10

    @property
    def accept_window(self) -> float:
        """A sender stops accepting this long after its start: a full request still fits."""
        return self.life - self.exit_margin - self.request

    @property
    def waitable(self) -> float:
        """The longest back-off a sender started now waits out (and a capture starts one for)."""
        return self.life - self.startup - self.exit_margin - self.min_request

    @property
    def poll(self) -> float:
        return min(0.05, self.linger / 4)

    def __repr__(self) -> str:
        return "Timings(" + ", ".join(f"{n}={getattr(self, n)}" for n in self.__slots__) + ")"


def check(t: Timings) -> None:
    """Raise ValueError unless the relations the protocol relies on hold."""
    relations = {
        "every duration is positive and finite": all(
            0 < d < float("inf") for d in (t.life, t.request, t.linger, t.interval, t.backoff)
        ),
        "a sender lingers within its accepting window": t.linger < t.accept_window,
        "polling is finer than the linger": t.poll < t.linger,
        "a trickle is paced within the accepting window": t.interval < t.accept_window,
        "the first back-off is waited out by a sender": t.backoff <= t.waitable,
        "a killed uploader's record (one request) is waited out": t.request <= t.waitable,
        "a short request still fits after the longest wait": t.min_request <= t.request,
    }
    broken = [name for name, holds in relations.items() if not holds]
    if broken:
        raise ValueError(f"{t!r} breaks: {'; '.join(broken)}")


PRODUCTION = Timings()


def timings_from(text: str | None) -> Timings:
    """Timings from `name=seconds,...` (the test-only `ARCADE_USAGE_TIMINGS`); production
    timings when absent or not valid."""
    if not text:
        return PRODUCTION
    try:
        values = {k.strip(): float(v) for k, _, v in (p.partition("=") for p in text.split(","))}
        return Timings(**values)
    except (TypeError, ValueError):
        return PRODUCTION


# -- platform decisions --------------------------------------------------------------------


def lock_kind(platform: str = sys.platform, has_fcntl: bool | None = None) -> str:
    """The kernel lock this platform gives: `flock` (per open file: a held lock can be
    handed to a child), `msvcrt` on Windows (byte ranges, per handle), `lockf` on a Unix
    whose Python lacks `fcntl` (the tests' Windows surface: per process, not inherited)."""
    if platform == "win32":
        return "msvcrt"
    if has_fcntl is None:
        has_fcntl = _has_fcntl()
    return "flock" if has_fcntl else "lockf"


def hands_lock_to_child(platform: str = sys.platform, has_fcntl: bool | None = None) -> bool:
    """Whether a held lock can be handed to a child (an inherited flock'd descriptor)."""
    return lock_kind(platform, has_fcntl) == "flock"


_FCNTL: list[bool] = []


def _has_fcntl() -> bool:
    if not _FCNTL:
        try:
            import fcntl  # noqa: F401 - only whether it can be had
        except ImportError:
            _FCNTL.append(False)
        else:
            _FCNTL.append(True)
    return _FCNTL[0]


def _try_lock(fd: int, kind: str) -> bool:
    """Take the exclusive lock on `fd` without waiting; False when another holds it."""
    try:
        if kind == "flock" and sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif kind == "lockf":
            os.lseek(fd, 0, os.SEEK_SET)
            getattr(os, "lockf")(fd, getattr(os, "F_TLOCK"), 1)  # noqa: B009 - not on win32
        else:
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    """Release the lock held through `fd`, if any (closing does it too, but only once
    every copy of the descriptor is closed, and on Windows only eventually)."""
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]
        elif _has_fcntl():
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    except (OSError, ImportError):
        pass  # not locked through it: nothing to release


# -- descriptors of ours, reset after fork() -------------------------------------------------

_OPEN: set[int] = set()
"""Every descriptor the protocol holds open in this process (closed in a forked child)."""


class _Fd:
    """A descriptor of ours: closed once, only by the process that opened it."""

    __slots__ = ("fd", "locked", "pid")

    def __init__(self, fd: int, *, locked: bool = False) -> None:
        self.fd, self.pid, self.locked = fd, os.getpid(), locked
        _OPEN.add(fd)

    def lock(self, kind: str) -> bool:
        """Take the exclusive lock without waiting; False when another holds it."""
        self.locked = _try_lock(self.fd, kind)
        return self.locked

    def close(self, *, keep_lock: bool = False) -> None:
        """Close it, releasing any lock held through it first: a copy of the descriptor
        that a fork() slipped to a child (between open and registration) must not keep
        the lock. `keep_lock`: the lock was handed to a child, which holds it now."""
        fd, self.fd = self.fd, -1
        if fd >= 0 and self.pid == os.getpid():
            _OPEN.discard(fd)
            if self.locked and not keep_lock:
                _unlock(fd)
            try:  # noqa: SIM105 - no contextlib on the capture path
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        # At interpreter exit our globals may be gone (None): the kernel closes the
        # descriptor and releases its lock anyway, so nothing is printed about it.
        try:  # noqa: SIM105 - no contextlib on the capture path
            self.close()
        except Exception:
            pass


class _Place:
    """What this process keeps for one outbox directory, whatever Outbox objects view it."""

    def __init__(self) -> None:
        self.start_over()

    def start_over(self) -> None:
        """As new (in a forked child: what the threads that are not there held is let go)."""
        self.local = _thread._local()  # each thread's `.seq` and accepting-lock descriptors
        self.parsed: dict[str, tuple[int, int, str] | None] = {}  # entry names last listed
        self.sizes: dict[str, int] = {}  # entry sizes at the last pruning
        self.checked = False
        self.pruning = False
        # Taken around the writes that file an entry. The kernel runs creates and renames
        # in one directory one at a time anyway; threads queued here sleep instead of
        # waking each other for the interpreter's lock at every system call (a quarter
        # less CPU with 8 threads capturing). Reentrant: a signal handler may capture.
        self.filing = _thread.RLock()


_PLACES: dict[str, _Place] = {}


def _after_fork_in_child() -> None:
    """A child forked while a thread of ours held a descriptor (a lock) or the filing lock
    lets go of it at once: the threads that would have done so do not exist here."""
    for fd in list(_OPEN):
        try:  # noqa: SIM105 - no contextlib on the capture path
            os.close(fd)
        except OSError:
            pass
    _OPEN.clear()
    for place in _PLACES.values():  # Outbox objects made before the fork view them too
        place.start_over()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the outbox ----------------------------------------------------------------------------


class OutboxUnavailableError(OSError):
    """The outbox directory is not a real directory of this user's (a symlink, say)."""


class Outbox:
    """A directory of entries waiting for PostHog, in delivery order.

    Cheap to make: the per-process state (open descriptors, checks done) belongs to
    the directory, shared by every Outbox of this process that views it. `clock`
    gives the wall time: it dates entries for the age bound and back-offs, never
    their order.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        platform: str = sys.platform,
    ) -> None:
        if directory is None:
            from arcade_identity import OUTBOX_DIR, arcade_dir

            directory = arcade_dir(work_dir) / OUTBOX_DIR
        self.directory = os.path.abspath(directory)
        self._prefix = os.path.join(self.directory, "")
        self._clock = clock
        self.lock_kind = lock_kind(platform)
        self.hands_lock = hands_lock_to_child(platform)
        place = _PLACES.get(self.directory)
        if place is None:
            place = _PLACES.setdefault(self.directory, _Place())
        self._place = place

    def __repr__(self) -> str:
        return f"Outbox({self.directory!r})"

    def _path(self, name: str) -> str:
        return self._prefix + name  # `name` is a plain file name (os.path.join costs more)

    # -- the directory -------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the directory if need be; refuse one that is not ours."""
        if self._place.checked:
            return
        try:
            self._check()
        except FileNotFoundError:
            from arcade_identity import ensure_private_dir

            ensure_private_dir(os.path.dirname(self.directory))
            try:  # noqa: SIM105 - no contextlib on the capture path
                os.mkdir(self.directory, 0o700)
            except FileExistsError:
                pass
            self._check()
        self._place.checked = True

    def _check(self) -> None:
        info = os.lstat(self.directory)
        uid = getattr(os, "getuid", None)
        if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid()):
            raise OutboxUnavailableError(f"{self.directory} is not a directory of this user's")

    def usable(self) -> bool:
        """Whether the directory exists and is ours."""
        try:
            self._check()
        except OSError:
            return False
        return True

    def _open_own(self, name: str, flags: int, *, discard: bool = False) -> int:
        """Open bookkeeping file `name` as a regular file of ours, creating it if need be.

        Anything else found under that name (a symlink, a FIFO, a directory, a file we
        cannot open) is moved aside, never followed, read or deleted, and ours made. With
        `discard` (what was there is ours to lose, as the sent log is), it is removed
        rather than moved aside: a link, never what it leads to; a directory is moved.
        """
        path = self._path(name)
        flags |= os.O_CREAT | _NOFOLLOW | _NONBLOCK | _BINARY | _CLOEXEC
        for attempt in range(2):
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                raise
            except OSError:
                if attempt or not self.usable():
                    raise
                (_discard if discard else _displace)(path)
                continue
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            if attempt:
                break
            (_discard if discard else _displace)(path)
        raise OutboxUnavailableError(f"{path} is not a regular file")

    # -- filing (the capture's side) -----------------------------------------------------

    def put(
        self,
        message: Message,
        destination: Destination | None = None,
        *,
        durable: bool = False,
    ) -> str:
        """File `message` behind everything filed before it; returns the entry's name.

        Once this returns the message survives the caller's death (SIGKILL,
        `os._exit`); `durable` also fsyncs it, for a machine switched off.
        `destination` (host, project key) defaults to this process's.
        """
        import json

        from arcade_usage._events import ALIAS

        if destination is None:
            from arcade_usage._env import posthog_api_key, posthog_host

            destination = (posthog_host(), posthog_api_key())
        entry = {"host": destination[0], "api_key": destination[1], "message": message}
        data = json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()
        token = message["uuid"].replace("-", "")[:32]
        if not token or token.strip("0123456789abcdef"):
            token = os.urandom(8).hex()
        mark = _ALIAS_MARK if message["event"] == ALIAS else ""
        self.prepare()
        try:
            with self._place.filing:
                for _ in range(2):  # once more if a reader took it for abandoned meanwhile
                    seq = self._next_seq()
                    name = f"{seq:012d}-{int(self._clock()):010d}-{token}{mark}.json"
                    if _write_entry(self._path(name), data, durable=durable):
                        break
                else:
                    raise OSError(f"{name} was removed while it was written, twice")
        except OSError:
            self._place.checked = False  # look at the directory again next time
            raise
        if seq % PRUNE_EVERY == 0 and not self._place.pruning:
            self._place.pruning = True
            _thread.start_new_thread(self._prune_aside, ())
        return name

    def _prune_aside(self) -> None:
        """The bounds, applied by a capturing process unless a sender is at work (each
        applies them as it starts): during an outage, or when none could be started."""
        try:
            if self._outage() or not self.upload_lock_held():
                self.prune(sent_log=False)  # only senders add to it, and each prunes it first
        except OSError:
            pass
        finally:
            self._place.pruning = False

    def _next_seq(self) -> int:
        """The next number of the order shared by every process: an append to `.seq`.

        Each thread keeps its own descriptor (its offset is then its own: no lock).
        Where an append is not atomic across processes (Windows), two concurrent
        captures may get one number; their tokens order them, and no capture that
        came after another's can get a lower number.
        """
        local = self._place.local
        holder: _Fd | None = getattr(local, "seq", None)
        local.seq = None  # in use: a signal handler capturing meanwhile numbers on its own
        try:
            for _ in range(2):
                if holder is None or holder.fd < 0 or holder.pid != os.getpid():
                    holder = _Fd(self._open_own(_SEQ, os.O_WRONLY | os.O_APPEND))
                os.write(holder.fd, b".")
                seq = os.lseek(holder.fd, 0, os.SEEK_CUR)
                if os.fstat(holder.fd).st_nlink:
                    return seq
                holder.close()  # `.seq` was removed or moved aside: number from the new one
                holder = None
            return seq
        finally:
            local.seq = holder

    def deliver(
        self,
        message: Message,
        destination: Destination,
        start_sender: Callable[[int | None], bool],
        *,
        timings: Timings = PRODUCTION,
    ) -> bool:
        """File `message`, then make sure a sender will take it; True if one was started.

        `start_sender(fd)` starts a sender holding the accepting lock (`fd`, POSIX)
        or taking it itself (None); it returns whether a process was started.
        Raises OSError when the message could not be filed: then nothing is started.
        """
        self.put(message, destination)
        return self.hand_over(destination, start_sender, timings=timings)

    def hand_over(
        self,
        destination: Destination,
        start_sender: Callable[[int | None], bool],
        *,
        timings: Timings = PRODUCTION,
    ) -> bool:
        """Start a sender unless one accepts already or a long back-off holds; see the docstring."""
        lock = self._accept_lock()
        if lock is None:
            return False  # a sender accepts: it looks after releasing the lock
        kept = False  # whether `lock` lives on: handed to a sender or to the bridge
        try:
            if self.blocking_backoff(destination, timings) > 0:
                return False  # what waits goes after the back-off, with a later command
            if self.hands_lock:
                kept = start_sender(lock.fd)  # the child holds it now: no unlock
                if kept:
                    lock.close(keep_lock=True)
                return kept
            if self._held(_HANDOVER):
                return False  # a sender waits to take the lock: it will see our entry
            if not start_sender(None):
                return False
            # Windows: held on a thread of ours until the sender waits for it.
            _thread.start_new_thread(self._bridge, (lock, time.monotonic() + timings.life))
            kept = True
            return True
        finally:
            if not kept:
                lock.close()

    def _accept_lock(self) -> _Fd | None:
        """The accepting lock, taken without waiting; None when another holds it (or its
        file cannot be opened).

        Each thread keeps the descriptor on which it last found the lock held, and asks
        on it first: one system call per capture while a sender accepts. Held there, it
        is held on the inode that descriptor names, whose holder has not taken its final
        look yet. Taken there, it is used only if that inode is still the file at the
        path (else let go, and asked on a fresh descriptor).
        """
        local = self._place.local
        probe: _Fd | None = getattr(local, "accept", None)
        if probe is not None and probe.fd >= 0 and probe.pid == os.getpid():
            if not probe.lock(self.lock_kind):
                return None
            local.accept = None  # taken: the lock itself now, or let go
            if self._names_file(probe.fd, _ACCEPT):
                return probe
            probe.close()
        try:
            lock = _Fd(self._open_own(_ACCEPT, os.O_RDWR))
        except OSError:
            return None
        if lock.lock(self.lock_kind):
            return lock
        local.accept = lock  # asked on next time
        return None

    def _names_file(self, fd: int, name: str) -> bool:
        """Whether `fd` is the regular file now at bookkeeping `name`."""
        try:
            mine, there = os.fstat(fd), os.lstat(self._path(name))
        except OSError:
            return False
        same = (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
        return same and stat.S_ISREG(there.st_mode)

    def _bridge(self, lock: _Fd, until: float) -> None:
        """Hold the accepting lock until the sender started for it shows (holding
        `.handover.lock`) that it waits for it, so that captures meanwhile start none."""
        try:
            while time.monotonic() < until and not self._held(_HANDOVER):
                time.sleep(0.02)
        except OSError:
            pass
        finally:
            lock.close()

    def _held(self, name: str) -> bool:
        """Whether another holds lock `name` (asked without keeping it)."""
        probe = _Fd(self._open_own(name, os.O_RDWR))
        try:
            return not probe.lock(self.lock_kind)
        finally:
            probe.close()

    # -- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The entries waiting, in delivery order (names of our own making only)."""
        return self._ordered(self._listing())

    def count(self) -> int:
        return len(self.names())

    def _listing(self) -> list[str]:
        if not self.usable():
            return []
        try:
            with os.scandir(self.directory) as entries:
                return [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except OSError:
            return []

    def _ordered(self, names: Iterable[str]) -> list[str]:
        """`names` of entries in delivery order. One numbered past the length of `.seq` was
        numbered before `.seq` started over, so it comes first."""
        try:
            info = os.lstat(self._path(_SEQ))
            last = info.st_size if stat.S_ISREG(info.st_mode) else -1
        except OSError:
            last = -1
        # A sender lists a backlog of thousands many times: each name is parsed once.
        known, parsed = self._place.parsed, {}
        for name in names:
            parsed[name] = known[name] if name in known else _parse(name)
        self._place.parsed = parsed  # the names listed now, and no others
        keyed = [
            (last >= 0 and key[0] <= last, key[0], key[2], name)
            for name, key in parsed.items()
            if key is not None
        ]
        keyed.sort()
        return [k[3] for k in keyed]

    def read(self, name: str) -> Message | None:
        """The message in entry `name`; None if it is gone, not a regular file, or holds no
        message (an entry of ours that holds none is dropped, unless it may still be being
        written: `_unfinished`)."""
        entry = self.read_entry(name)
        return None if entry is None else entry[1]

    def read_entry(self, name: str) -> tuple[Destination | None, Message] | None:
        """Entry `name`: its destination (None: written before entries had one) and message."""
        data = self._read_bytes(name)
        if data is None:
            return None
        found = _decode(data)
        if found is None and not self._unfinished(name):
            self.remove(name)
        return found

    def _unfinished(self, name: str) -> bool:
        """Whether entry `name`, which holds no message, may be one still being written:
        a regular file that is not too large, dated within the hour (either way)."""
        try:
            info = os.lstat(self._path(name))
        except OSError:
            return False
        young = abs(self._clock() - info.st_mtime) < UNFINISHED_SECONDS
        return stat.S_ISREG(info.st_mode) and info.st_size <= MAX_ENTRY_BYTES and young

    def _read_bytes(self, name: str, limit: int = MAX_ENTRY_BYTES) -> bytes | None:
        """File `name`'s bytes: None if it is gone or not a regular file, empty if it is
        larger than `limit`."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None  # not ours: left alone
            if info.st_size > limit:
                return b""
            data = os.read(fd, info.st_size + 1)  # the whole of it, in one call
            chunks = [data]
            while len(data) > info.st_size and (chunk := os.read(fd, 1 << 16)):
                chunks.append(chunk)  # it grew meanwhile: read to its end
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _holds(self, name: str) -> bool:
        """Whether entry `name` is still there (`usage disable` may have cleared it)."""
        try:
            os.lstat(self._path(name))
        except OSError:
            return False
        return True

    def remove(self, name: str) -> bool:
        """Delete entry `name` (the entry itself, never what a link would lead to); whether
        it was there to delete."""
        ours = self._place.parsed.get(name) is not None  # listed (and parsed) already
        if ours or _parse(name) is not None or _is_temp(name):
            try:
                os.unlink(self._path(name))
                return True
            except OSError:
                pass
        return False

    # -- the sent log (written by the uploader alone, under its lock) --------------------

    def log_sent(self, batch: list[Message]) -> None:
        """Add what PostHog took to the sent log: one line, whatever the batch's size.

        The log is for the user to read: delivery never depends on it (nothing here
        raises). A line a crash cut short is ended first, so that it spoils only itself.
        """
        import json

        record = {"sent": self._clock(), "messages": batch}
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"  # ASCII: any text
        try:
            fd = self._open_own(_SENT, os.O_RDWR | os.O_APPEND, discard=True)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    line = b"\n" + line
            _write_all(fd, line, durable=False)
            full = os.fstat(fd).st_size > SENT_MAX_BYTES // 2
        except OSError:
            full = False
        finally:
            os.close(fd)
        if full:
            for _ in range(2):
                try:
                    os.replace(self._path(_SENT), self._path(_SENT_OLDER))
                    break
                except OSError:
                    _displace(self._path(_SENT_OLDER))  # a directory, say: not ours to keep

    def since_delivery(self) -> float:
        """Seconds since the last delivery (the sent log's date, or its older part's just
        after a rotation); infinite when unknown."""
        for name in (_SENT, _SENT_OLDER):
            try:
                return self._clock() - os.lstat(self._path(name)).st_mtime
            except OSError:
                pass
        return float("inf")

    def prune(self, *, sent_log: bool = True) -> list[str]:
        """Apply the bounds; returns the entries that remain, in order.

        The newest MAX_BYTES by size, and during an outage the newest MAX_MESSAGES by
        order; none dated more than MAX_AGE_SECONDS away from now in either direction (a
        date in the future means the clock was wrong then or is now: it cannot keep an
        entry forever). Aliases are few and small, and dropping one would split a person:
        they stay. Temp files of writers killed mid-write go after an hour. The sent log
        too (`sent_log`).
        """
        now = self._clock()
        listing = self._listing()
        keep: list[str] = []
        for name in self._ordered(listing):
            if abs(now - int(name.split("-")[1])) > MAX_AGE_SECONDS:
                self.remove(name)
            else:
                keep.append(name)
        total, kept = 0, list[str]()
        most = MAX_MESSAGES if self._outage() else len(keep)
        known, sizes = self._place.sizes, {}  # entries never change: each is sized once
        for name in reversed(keep):
            if not name[:-5].endswith(_ALIAS_MARK):
                try:
                    size = known[name] if name in known else os.lstat(self._path(name)).st_size
                except OSError:
                    continue
                total += size
                if len(kept) >= most or total > MAX_BYTES:
                    self.remove(name)
                    continue
                if size:  # an empty one is being written: sized again next time
                    sizes[name] = size
            kept.append(name)
        for name in listing:
            if _is_temp(name):
                try:
                    age = now - os.lstat(self._path(name)).st_mtime
                except OSError:
                    continue
                if abs(age) > UNFINISHED_SECONDS:
                    self.remove(name)
        self._place.sizes = sizes
        if sent_log:
            self._prune_sent(now)
        return kept[::-1]

    def _prune_sent(self, now: float) -> None:
        """The sent log's bounds: 7 days. A part last written before goes; lines older
        than that go from a part within the hour they pass it (a part is rewritten at most
        hourly, however busy). An older version's `sent/` goes."""
        for name in (_SENT_OLDER, _SENT):
            path = self._path(name)
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    continue
                if abs(now - info.st_mtime) > MAX_AGE_SECONDS:
                    os.unlink(path)
                    continue
                fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
                try:
                    first = _sent_date(os.read(fd, 64))
                finally:
                    os.close(fd)
                if first is not None and abs(now - first) <= MAX_AGE_SECONDS + 3600:
                    continue
                _write_new(path, b"".join(self._sent_lines(name, now)), durable=False)
            except OSError:
                pass
        self._drop_sent_dir()

    def _sent_lines(self, name: str, now: float) -> list[bytes]:
        """The sent log part `name`'s lines dated within MAX_AGE_SECONDS of `now` (one
        without a date, cut short by a crash, left out)."""
        data = self._read_bytes(name, limit=SENT_MAX_BYTES) or b""
        dated = ((_sent_date(line), line) for line in data.splitlines(True))
        return [
            line for when, line in dated if when is not None and abs(now - when) <= MAX_AGE_SECONDS
        ]

    def _drop_sent_dir(self) -> None:
        """Delete an older version's `sent/` (its regular files, then it), if it is a real
        directory: what a link would lead to is never touched. Through a descriptor of the
        directory where the platform has them (a link put in its place meanwhile is not
        followed); by path elsewhere (Windows, where a link needs a privilege)."""
        path = self._path(_SENT_DIR)
        dir_fd: int | None = None
        try:
            if hasattr(os, "O_DIRECTORY") and os.unlink in os.supports_dir_fd:
                dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)  # never a link
            elif not stat.S_ISDIR(os.lstat(path).st_mode):
                return
        except OSError:
            return
        try:
            # Listed through a descriptor, an entry's `path` is its name in that directory.
            with os.scandir(path if dir_fd is None else dir_fd) as found:
                for entry in found:
                    if entry.is_file(follow_symlinks=False):
                        os.unlink(entry.path, dir_fd=dir_fd)
            os.rmdir(path)
        except OSError:
            pass
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def clear(self) -> int:
        """Drop every entry waiting, and the sent log; returns how many were waiting.

        Nothing is deleted through a directory that is not ours (a link to a folder
        that holds a `sent.log` or `sent/` of someone else's)."""
        if not self.usable():
            return 0
        names = self.names()
        for name in names:
            self.remove(name)
        for name in (_SENT, _SENT_OLDER):
            try:  # noqa: SIM105 - no contextlib here
                os.unlink(self._path(name))  # a link itself, never what it leads to
            except OSError:
                pass
        self._drop_sent_dir()
        return len(names)

    def log(self) -> list[tuple[bool, Message]]:
        """(sent, message) for what waits and what was sent, newest first; nothing when
        the directory is not ours (nothing is read through a link)."""
        if not self.usable():
            return []
        found: list[tuple[int, float, bool, Message]] = []
        for position, name in enumerate(self.names()):
            message = self.read(name)
            if message is not None:
                found.append((1, position, False, message))
        import json

        from arcade_usage._events import is_message

        # The newer part first: a rotation meanwhile then shows its lines twice, not never.
        now, seen, position = self._clock(), set(), 0
        newer = self._sent_lines(_SENT, now)
        for line in self._sent_lines(_SENT_OLDER, now) + newer:
            try:
                messages = json.loads(line)["messages"]
            except (ValueError, TypeError, KeyError, RecursionError):
                continue  # cut short by a crash
            for message in messages if isinstance(messages, list) else []:
                if is_message(message) and message["uuid"] not in seen:
                    seen.add(message["uuid"])
                    position += 1
                    found.append((0, position, True, message))
        found.sort(key=lambda f: (f[0], f[1]), reverse=True)
        return [(f[2], f[3]) for f in found]

    def reset_sequence(self) -> None:
        """Start `.seq` over when the outbox is empty (the uploader, under its lock)."""
        path = self._path(_SEQ)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_size > SEQ_RESET_BYTES and not self.names():
                os.truncate(path, 0)
        except OSError:
            pass

    # -- back-off ------------------------------------------------------------------------

    def _records(self) -> dict[str, dict[str, Any]]:
        """`.backoff`'s records by destination; empty when there is none that reads as one,
        or when the directory is not ours (looked at once, unless `prepare` has)."""
        if not self._place.checked and not self.usable():
            return {}
        try:
            fd = os.open(self._path(_BACKOFF), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
        except OSError:
            return {}  # the common case: json is not even imported
        import json

        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}
            records = json.loads(os.read(fd, 1 << 16))
        except (OSError, ValueError, RecursionError):
            return {}
        finally:
            os.close(fd)
        if not isinstance(records, dict):
            return {}
        return {k: v for k, v in records.items() if isinstance(v, dict)}

    def _write_records(self, records: dict[str, dict[str, Any]]) -> None:
        import json

        path = self._path(_BACKOFF)
        try:
            _write_new(path, json.dumps(records).encode(), durable=False)
        except IsADirectoryError:
            _displace(path)
            _write_new(path, json.dumps(records).encode(), durable=False)

    def _remaining(self, record: dict[str, Any]) -> float:
        try:
            left = float(record["until"]) - self._clock()
            delay = float(record["delay"])
        except (KeyError, ValueError, TypeError, OverflowError):
            return 0.0
        return left if 0 < left <= delay <= MAX_BACKOFF_SECONDS else 0.0

    def _outage(self) -> bool:
        """Whether delivery fails for good and all: a failed request's back-off, still
        running, longer than a sender waits out (a hiccup, a short `Retry-After` is none;
        neither is the record of a destination no longer failing, or no longer used)."""
        return any(
            _int(record.get("failures"))
            and self._remaining(record) > 0
            and float(record["delay"]) > PRODUCTION.waitable
            for record in self._records().values()
        )

    def backoff_remaining(self, destination: Destination | None = None) -> float:
        """Seconds before `destination` (default: any) may be tried again; 0: now.

        A pending record (a request in flight) counts while its maker holds the upload
        lock only as long as that request can last; once its maker is gone, as long
        as it could have lasted, no more.
        """
        records = self._records()
        if destination is not None:
            records = {k: v for k, v in records.items() if k == _key(destination)}
        return max((self._remaining(r) for r in records.values()), default=0.0)

    def blocking_backoff(self, destination: Destination, timings: Timings = PRODUCTION) -> float:
        """The back-off of `destination` if a sender started now could not wait it out, else 0.

        A request in flight is no back-off: its maker holds the upload lock, and a
        new sender waits for that lock, then posts.
        """
        record = self._records().get(_key(destination))
        if record is None:
            return 0.0
        if record.get("pending") is True and self.upload_lock_held():
            return 0.0
        left = self._remaining(record)
        return left if left > timings.waitable else 0.0

    def back_off(
        self,
        retry_after: float | None = None,
        destination: Destination | None = None,
        *,
        timings: Timings = PRODUCTION,
        head: str | None = None,
        count: int = 0,
        timed_out: bool = False,
    ) -> float:
        """Record a failed request to `destination`; returns the delay before the next.

        Doubles from `timings.backoff` with each failure in a row, up to an hour, and is
        never shorter than PostHog's `Retry-After` (itself an hour at most). A batch that
        timed out (its first entry `head`, `count` entries) is remembered, to be halved
        if it times out again.
        """
        if destination is None:
            from arcade_usage._env import posthog_api_key, posthog_host

            destination = (posthog_host(), posthog_api_key())
        records = self._records()
        key = _key(destination)
        old = records.get(key, {})
        failures = min(_int(old.get("failures")) + 1, MAX_FAILURES)
        delay = min(timings.backoff * 2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
        record: dict[str, Any] = {
            "until": self._clock() + delay,
            "delay": delay,
            "failures": failures,
        }
        if timed_out and head is not None:
            again = old.get("head") == head
            record["head"] = head
            record["count"] = max(1, count // 2) if again else count
        records[key] = record
        self._write_records(records)
        return delay

    def _pending(self, destination: Destination, seconds: float) -> None:
        """Record a request in flight: a back-off of `seconds` unless cleared or replaced."""
        records = self._records()
        key = _key(destination)
        old = records.get(key, {})
        records[key] = {
            **old,
            "until": self._clock() + seconds,
            "delay": seconds,
            "failures": _int(old.get("failures")),
            "pending": True,
        }
        self._write_records(records)

    def _settle(self, destination: Destination, keep_split: bool = False) -> None:
        """The request went through: no back-off for `destination`."""
        records = self._records()
        old = records.pop(_key(destination), None)
        if old is not None and keep_split and "head" in old:
            records[_key(destination)] = {"head": old["head"], "count": old.get("count")}
        if records:
            self._write_records(records)
        else:
            self.clear_backoff()

    def _batch_limit(self, destination: Destination, head: str) -> int | None:
        record = self._records().get(_key(destination), {})
        if record.get("head") == head:
            count = _int(record.get("count"))
            return count or None
        return None

    def clear_backoff(self) -> None:
        try:  # noqa: SIM105 - no contextlib on the capture path
            os.unlink(self._path(_BACKOFF))
        except OSError:
            pass

    # -- locks ---------------------------------------------------------------------------

    def upload_lock_held(self) -> bool:
        """Whether some process holds the upload lock."""
        try:
            return self._held(_UPLOAD)
        except OSError:
            return False

    def accepting(self) -> bool:
        """Whether a sender is accepting new entries now."""
        try:
            return self._held(_ACCEPT)
        except OSError:
            return False

    def _lock(self, name: str, until: float | None, poll: float) -> _Fd | None:
        """Hold lock `name` (waiting until monotonic `until`, or not at all); None if not had."""
        fd = _Fd(self._open_own(name, os.O_RDWR))
        while not fd.lock(self.lock_kind):
            if until is None or time.monotonic() >= until:
                fd.close()
                return None
            time.sleep(poll)
        return fd


def usage_log(work_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """What tracking sent (kept 7 days) and what waits to be sent, newest first.

    Each item is a message as PostHog got it or will get it (`event`, `distinct_id`,
    `timestamp`, `uuid`, `properties`), plus `sent` (bool). Empty when tracking was
    never on, after `arcade usage disable`, or when the outbox cannot be read.
    """
    from importlib.metadata import PackageNotFoundError, version

    from arcade_usage._posthog import with_library

    try:
        outbox = Outbox(work_dir)
    except OSError:
        return []
    try:
        sdk = version("posthog")  # what the sender adds as it posts, without importing it
    except PackageNotFoundError:
        sdk = "unknown"
    return [{**with_library(message, sdk), "sent": sent} for sent, message in outbox.log()]


# -- the sender's side ---------------------------------------------------------------------


def run_sender(
    outbox: Outbox,
    *,
    post: Post,
    default: Destination,
    started: float,
    accept_fd: int | None = None,
    take_accept: bool = False,
    timings: Timings = PRODUCTION,
    allowed: Callable[[], bool] = lambda: True,
    anon_id: Callable[[], str | None] = lambda: None,
) -> None:
    """Be the sender: STARTING ... EXIT of the module docstring.

    `accept_fd` is the accepting lock the capture handed over. Without it: with
    `take_accept` (Windows) the capture's thread holds the lock until this sender
    waits for it; else (a sender run by hand) it takes the lock if free, or leaves.
    `post(batch, host=, api_key=, timeout=)` makes one request; `started` is this
    process's start (monotonic).
    """
    deadline = started + timings.life - timings.exit_margin
    outbox.prepare()
    if accept_fd is not None:
        accept = _Fd(accept_fd, locked=True)
    elif not take_accept:
        held = outbox._lock(_ACCEPT, None, timings.poll)
        if held is None:
            return  # another sender accepts: it takes what waits
        accept = held
    else:  # started where a lock cannot be handed over: the capture holds it for us
        handover = outbox._lock(_HANDOVER, started + timings.startup, timings.poll)
        if handover is None:
            return  # another sender is waiting for it already
        try:
            held = outbox._lock(_ACCEPT, deadline - timings.min_request, timings.poll)
        finally:
            handover.close()
        if held is None:
            return
        accept = held
    try:
        upload = outbox._lock(_UPLOAD, deadline - timings.min_request, timings.poll)
    except OSError:
        upload = None
    if upload is None:
        accept.close()
        return
    try:
        _Uploader(outbox, post, default, deadline, timings, allowed, anon_id).run(started, accept)
    finally:
        accept.close()
        upload.close()


class _Uploader:
    """The holder of the upload lock: ACCEPTING, then CLOSING."""

    def __init__(
        self,
        outbox: Outbox,
        post: Post,
        default: Destination,
        deadline: float,
        timings: Timings,
        allowed: Callable[[], bool],
        anon_id: Callable[[], str | None],
    ) -> None:
        self.outbox, self.post, self.default = outbox, post, default
        self.deadline, self.t = deadline, timings
        self.allowed, self.anon_id = allowed, anon_id
        self.cache: dict[str, tuple[Destination, Message, int] | None] = {}
        self.finished: set[str] = set()  # sent or dropped by this sender
        self.stopped = False
        self.turn = 0

    def run(self, started: float, accept: _Fd) -> None:
        t = self.t
        idle_since = time.monotonic()
        # Paced from the last delivery, whichever sender made it: a burst that outlives
        # one sender is not posted twice at the hand-over.
        since = self.outbox.since_delivery()
        next_request = idle_since + (t.interval - since if 0 <= since < t.interval else 0.0)
        waiting = self._sendable(self.outbox.prune())
        listed = time.monotonic()
        while not self.stopped:  # ACCEPTING
            now = time.monotonic()
            if waiting:
                idle_since = now
            elif now - idle_since >= t.linger:
                break
            if now - started >= t.accept_window:
                break
            if waiting and (now >= next_request or self._backlog(waiting)):
                wait = self.send_round(waiting)
                if wait is None:
                    next_request = now + t.interval
                    idle_since = time.monotonic()  # the linger counts from after the request
                    waiting = self._left(waiting)
                    # Listed again once that cannot fill a batch, or every `interval` (what
                    # came meanwhile for another destination gets its turn).
                    if not self._backlog(waiting) or idle_since - listed >= t.interval:
                        waiting = self._sendable(self.outbox.names())
                        listed = time.monotonic()
                    continue
                if wait > self.deadline - t.min_request - now:
                    break  # a back-off beyond this life: what waits goes with a later sender
            time.sleep(t.poll)
            waiting = self._sendable(self.outbox.names())
            listed = time.monotonic()
        # CLOSING: whoever found the lock held had filed its entry before; this sees it.
        accept.close()
        snapshot = self._sendable(self.outbox.names())
        pause = next_request - time.monotonic()
        if snapshot and pause > 0 and not self._backlog(snapshot):
            time.sleep(pause)  # paced like the rest: a trickle's last events join one request
        while snapshot and not self.stopped:
            wait = self.send_round(snapshot)
            if wait is not None:
                if wait <= 0 or wait > self.deadline - self.t.min_request - time.monotonic():
                    return
                time.sleep(wait)
            snapshot = self._left(snapshot)
        self.outbox.reset_sequence()

    def _left(self, names: list[str]) -> list[str]:
        """What still waits of `names` after a round, without listing the outbox again
        (listing a backlog costs as much as its length, every time)."""
        return self._sendable([n for n in names if n not in self.finished])

    def _sendable(self, names: list[str]) -> list[str]:
        """`names` less the entries that hold no message, among the first MAX_MESSAGES:
        a backlog beyond them is read as its head is sent, not held in memory at once."""
        cache, entry = self.cache, self._entry
        head = [n for n in names[:MAX_MESSAGES] if (cache[n] if n in cache else entry(n))]
        return head + names[MAX_MESSAGES:]

    def _entry(self, name: str) -> tuple[Destination, Message, int] | None:
        """Entry `name`: destination, message, size. Read once, as a written entry never
        changes; one that may still be being written is read again at the next look."""
        if name not in self.cache:
            data = self.outbox._read_bytes(name)
            found = _decode(data) if data is not None else None
            if found is None:
                if data is not None and self.outbox._unfinished(name):
                    return None  # being written: read again at the next listing
                if data is not None:
                    self.outbox.remove(name)  # ours, holding no message
                self.cache[name] = None
            else:
                self.cache[name] = (found[0] or self.default, found[1], len(data or b""))
        return self.cache[name]

    def _backlog(self, names: list[str]) -> bool:
        """Whether what waits fills a batch: then it goes now, not at the next pacing."""
        total = 0
        for name in names:
            entry = self._entry(name)
            if entry is not None:
                total += entry[2]
                if total >= BATCH_BYTES:
                    return True
        return False

    def send_round(self, names: list[str]) -> float | None:
        """Post one batch to each destination that has some waiting, in turn (fairly).

        Returns None when something was posted, else the seconds until the earliest
        destination may be tried again (0 when nothing could be sent at all).
        """
        queues: dict[Destination, list[str]] = {}
        cache = self.cache
        for name in names[:MAX_MESSAGES]:
            entry = cache[name] if name in cache else self._entry(name)
            if entry is not None:
                queues.setdefault(entry[0], []).append(name)
        order = sorted(queues)
        if order:
            turn = self.turn % len(order)
            order = order[turn:] + order[:turn]
        self.turn += 1
        posted = False
        waits = []
        for destination in order:
            left = self.outbox.backoff_remaining(destination)
            if left <= 0 and not self.stopped:
                if self._post_batch(destination, queues[destination]):
                    posted = True
                    continue
                left = self.outbox.backoff_remaining(destination)
            if left > 0:
                waits.append(left)
        if posted:
            return None
        return min(waits, default=0.0)

    def _post_batch(self, destination: Destination, queue: list[str]) -> bool:
        """Post the head of `queue`: up to its first alias, within BATCH_BYTES (and half a
        batch that timed out twice). False after a passing failure (a back-off recorded)."""
        limit = self.outbox._batch_limit(destination, queue[0])
        names: list[str] = []
        batch: list[Message] = []
        size = 0
        for name in queue:
            entry = self._entry(name)
            if entry is None:
                continue
            if not self.outbox._holds(name):  # cleared meanwhile: not sent from memory
                self.cache[name] = None
                continue
            if batch and (size + entry[2] > BATCH_BYTES or len(batch) == limit):
                break
            message = entry[1]
            if message["distinct_id"] == "":
                named = self.anon_id()
                if named is None:
                    break  # no identity yet: it waits for the next sender
                message = {**message, "distinct_id": named}
            names.append(name)
            batch.append(message)
            size += entry[2]
            if message["event"] == "$create_alias":
                break  # what follows an alias goes once PostHog has it
        return bool(batch) and self._post(destination, names, batch)

    def _post(self, destination: Destination, names: list[str], batch: list[Message]) -> bool:
        """Post `batch` (bisecting a refusal); False after a passing failure or out of time."""
        from arcade_usage.exceptions import DeliveryError, MessageRefusedError

        left = self.deadline - time.monotonic()
        if left < self.t.min_request or not self.allowed():
            self.stopped = True
            return False
        timeout = min(self.t.request, left)
        outbox = self.outbox
        # Counted as failed until known otherwise: an uploader killed mid-request leaves
        # a back-off no longer than the request could have lasted.
        outbox._pending(destination, timeout)
        try:
            self.post(batch, host=destination[0], api_key=destination[1], timeout=timeout)
        except MessageRefusedError as exc:
            if len(batch) == 1 or exc.status in (401, 403):
                self._done(names)
                outbox._settle(destination)
                return True
            half = len(batch) // 2
            return self._post(destination, names[:half], batch[:half]) and self._post(
                destination, names[half:], batch[half:]
            )
        except DeliveryError as exc:
            outbox.back_off(
                exc.retry_after,
                destination,
                timings=self.t,
                head=names[0] if names else None,
                count=len(batch),
                timed_out=getattr(exc, "timed_out", False),
            )
            return False
        self._done(names, batch)
        outbox._settle(destination)
        return True

    def _done(self, names: list[str], delivered: list[Message] | None = None) -> None:
        """`names` are done with: `delivered` (as posted, in their order), or refused for
        good. What was cleared meanwhile (`usage disable`) is not logged as sent."""
        self.finished.update(names)
        logged = []
        for i, name in enumerate(names):
            if self.outbox.remove(name) and delivered:
                logged.append(delivered[i])
            self.cache.pop(name, None)
        if logged:
            self.outbox.log_sent(logged)


# -- helpers -------------------------------------------------------------------------------


def _key(destination: Destination) -> str:
    return f"{destination[0]} {destination[1]}"


def _int(value: object) -> int:
    if not isinstance(value, (int, float, str)):
        return 0
    try:
        return min(max(int(value), 0), MAX_FAILURES * 1000)
    except (ValueError, TypeError, OverflowError):
        return 0


def _parse(name: str) -> tuple[int, int, str] | None:
    """(seq, queued, token) of an entry name `<digits>-<digits>-<hex>[-a].json`, else None."""
    if not name.endswith(".json"):
        return None
    parts = name[:-5].removesuffix(_ALIAS_MARK).split("-")
    if len(parts) != 3:
        return None
    seq, queued, token = parts
    if not (seq.isdigit() and seq.isascii() and queued.isdigit() and queued.isascii()):
        return None
    if not 0 < len(token) <= 32 or token.strip("0123456789abcdef"):
        return None
    return int(seq), int(queued), token


def _decode(data: bytes) -> tuple[Destination | None, Message] | None:
    import json

    from arcade_usage._events import is_message

    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and "message" in value:
        host, api_key = value.get("host"), value.get("api_key")
        message = value["message"]
        if isinstance(host, str) and isinstance(api_key, str) and host and api_key:
            return ((host, api_key), message) if is_message(message) else None
        return None
    return (None, value) if is_message(value) else None  # an entry of an older version


def _sent_date(line: bytes) -> float | None:
    """The date a sent log line starts with (`{"sent":<date>,`), if it is one."""
    if not line.startswith(b'{"sent":'):
        return None
    try:
        when = float(line[8 : line.index(b",", 8, 40)])
    except ValueError:
        return None
    return when if when - when == 0 else None


def _is_temp(name: str) -> bool:
    """Whether `name` is one `_write_new` gives its temp files: `.<name>.<8 hex>.tmp`."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    stem, dot, token = name[1:-4].rpartition(".")
    return bool(stem and dot) and len(token) == 8 and not token.strip("0123456789abcdef")


def _discard(path: str) -> None:
    """Remove what sits at bookkeeping `path` (a link itself); move a directory aside."""
    try:
        os.unlink(path)
    except OSError:
        _displace(path)


def _displace(path: str) -> None:
    """Move what sits at bookkeeping `path` aside (never following, reading or deleting it)."""
    try:  # noqa: SIM105 - no contextlib on the capture path
        os.rename(path, f"{path}.{os.urandom(4).hex()}.displaced")
    except OSError:
        pass


def _write_entry(path: str, data: bytes, *, durable: bool) -> bool:
    """Create entry `path` and write it in one go; nothing is left there if that fails.

    No temp file and rename (half of what filing costs): a reader takes an entry that
    does not decode for one being written (`Outbox._unfinished`), for an hour: False
    when one took it for abandoned meanwhile and removed it (this writer was stopped, or
    the clock jumped), so that the caller files it again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
    try:
        _write_all(fd, data, durable=durable)
        return os.fstat(fd).st_nlink > 0
    except BaseException:
        try:  # noqa: SIM105 - no contextlib on the capture path
            os.unlink(path)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def _write_new(path: str, data: bytes, *, durable: bool) -> None:
    """Write `path` whole or not at all: a temp file beside it, then a rename."""
    directory, name = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
    tmp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            _write_all(fd, data, durable=durable)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - no contextlib on the capture path
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_all(fd: int, data: bytes, *, durable: bool) -> None:
    """Write `data` to `fd` (fsynced if `durable`)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)
