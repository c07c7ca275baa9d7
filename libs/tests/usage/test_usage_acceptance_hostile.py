"""Acceptance: nothing of the outbox's own can be turned against it.

The outbox's bookkeeping files are found as a user would find them: by listing
`usage_outbox` during and after a first delivery (see `bookkeeping`). Each is
replaced in turn by a symlink to a file elsewhere, a FIFO, a directory, or grown to
a huge sparse file; then a server tracks 30 events. Every one must be delivered,
by 3 senders at most, and the file elsewhere is untouched. SPEC.md, "Sending":
nothing put in place of a bookkeeping file blocks delivery or makes captures start
sender after sender; a mended outbox delivers again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import server_process
from helpers import sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(300)

EVENTS = 30
MAX_SENDERS = 3
HUGE = 2**40  # 1 TB, sparse


def _track(posthog: FakePostHog, work_dir: Path, label: str) -> int:
    """A server's start and EVENTS - 1 calls labelled `label`, paced over about half a
    second; every one delivered. Returns how many senders the server started."""
    report = server_process.run("paced", EVENTS, 0.02, label)
    expected = {f"{label} {i}" for i in range(EVENTS - 1)}

    def missing() -> set[str]:
        got = {e["properties"].get("failure_reason") for e in posthog.events("MCP tool called")}
        return expected - got

    try:
        wait_until(lambda: not missing(), timeout=20)
    except AssertionError:
        raise AssertionError(
            f"{label}: {len(missing())} of {EVENTS - 1} calls not delivered;"
            f" {report['senders']} senders started"
        ) from None
    wait_until(lambda: not sender_pids(work_dir), timeout=12)
    senders: int = report["senders"]
    return senders


def _read(path: Path) -> bytes | None:
    """A regular file's bytes, read without following a link or waiting on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


@pytest.fixture
def bookkeeping(posthog: FakePostHog, work_dir: Path, arcade_dir: Path) -> list[Path]:
    """The outbox's own files, found during and after a first delivery.

    The outbox is listed every few milliseconds while a server tracks and its sender
    uploads. Once all is delivered, an entry is a message if it held the uuid of an
    event PostHog got; every other entry seen is bookkeeping, whether it is still
    there (a counter, a lock) or lived only while a sender worked (a lease, a record).
    """
    outbox = arcade_dir / "usage_outbox"
    seen: dict[str, bytes | None] = {}
    driver = subprocess.Popen(
        server_process.command("paced", EVENTS, 0.02, "first"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (driver.poll() is None or sender_pids(work_dir)) and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(outbox):
                    if seen.get(entry.name) is None:
                        seen[entry.name] = _read(Path(entry.path))
            time.sleep(0.005)  # a sampling interval, not a synchronisation
        _, err = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    wait_until(lambda: len(posthog.events()) >= EVENTS, timeout=20)
    uuids = [e["uuid"].encode() for e in posthog.events()]

    def message(name: str) -> bool:
        content = seen[name]
        return content is None or any(uuid in content for uuid in uuids)

    names = {n for n in seen if (outbox / n).exists() or os.path.islink(outbox / n)}
    names |= {n for n in seen if not message(n)}
    assert names, "the outbox keeps no bookkeeping at all?"
    return [outbox / name for name in sorted(names)]


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path)


def _symlink(path: Path, elsewhere: Path) -> Callable[[], None]:
    target = elsewhere / path.name
    target.write_bytes(b"a file of the user's\n")
    path.symlink_to(target)

    def check() -> None:
        assert target.read_bytes() == b"a file of the user's\n", "written through a symlink"

    return check


def _fifo(path: Path, elsewhere: Path) -> Callable[[], None]:
    os.mkfifo(path, 0o600)
    return lambda: None


def _directory(path: Path, elsewhere: Path) -> Callable[[], None]:
    path.mkdir()
    (path / "inside").write_bytes(b"not the outbox's\n")
    return lambda: None


HOSTILE = {"symlink": _symlink, "fifo": _fifo, "directory": _directory}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_bookkeeping_file_replaced_blocks_nothing_and_starts_few_senders(
    posthog: FakePostHog, work_dir: Path, bookkeeping: list[Path], tmp_path: Path, kind: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    failures = []
    for index, path in enumerate(bookkeeping):
        with contextlib.suppress(FileNotFoundError):
            _remove(path)
        check = HOSTILE[kind](path, elsewhere)
        hostile = path.lstat()
        try:
            senders = _track(posthog, work_dir, f"{kind}{index}")
            check()
            if senders > MAX_SENDERS:
                failures.append(f"{path.name} a {kind}: {senders} senders started")
        except AssertionError as error:
            failures.append(f"{path.name} a {kind}: {error}")
        with contextlib.suppress(FileNotFoundError):
            now = path.lstat()
            if (now.st_ino, now.st_mode) == (hostile.st_ino, hostile.st_mode):
                _remove(path)  # ours still: out of the way of the next case
    assert not failures, failures


def test_a_huge_sparse_bookkeeping_file_blocks_nothing(
    posthog: FakePostHog, work_dir: Path, bookkeeping: list[Path]
) -> None:
    """Each regular bookkeeping file grown to 1 TB (sparse): a `.seq`-like counter reads
    as a 13-digit number, which must still order and deliver."""
    failures = []
    regular = [p for p in bookkeeping if p.exists() and stat.S_ISREG(p.lstat().st_mode)]
    for index, path in enumerate(regular):
        size = path.stat().st_size
        os.truncate(path, HUGE)
        try:
            senders = _track(posthog, work_dir, f"sparse{index}")
            if senders > MAX_SENDERS:
                failures.append(f"{path.name} sparse: {senders} senders started")
        except AssertionError as error:
            failures.append(f"{path.name} sparse: {error}")
        with contextlib.suppress(OSError):
            if path.stat().st_size >= HUGE:
                os.truncate(path, size)
    assert not failures, failures


def test_an_outbox_closed_then_mended_delivers_again(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path, bookkeeping: list[Path]
) -> None:
    """The outbox made mode 000 while a server tracks, then restored: delivery resumes.

    (As root, mode 000 does not stop the kernel: there it checks only that nothing
    the outbox does of its own accord on seeing the mode stops delivery for good.)
    """
    outbox = arcade_dir / "usage_outbox"
    outbox.chmod(0o000)
    try:
        report = server_process.run("paced", EVENTS, 0.02, "closed")
    finally:
        outbox.chmod(0o700)
    assert report["senders"] <= MAX_SENDERS, report
    assert _track(posthog, work_dir, "mended") <= MAX_SENDERS
