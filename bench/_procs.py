"""Running commands and collecting the detached processes they leave behind (Linux).

The benchmark makes itself a child subreaper, so a detached sender whose parent
(the CLI) has exited is reparented to it; `reap` then waits for each one with
`os.wait4` and gets its CPU time like any other child's. Commands are started by
a small helper process (`_spawner.py`) so that their `ru_maxrss` is their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
_TICKS = os.sysconf("SC_CLK_TCK")
_SPAWNER = Path(__file__).resolve().parent / "_spawner.py"


@dataclass
class Run:
    """One finished process: wall seconds, CPU seconds (user + system), peak RSS in KiB.

    `orphans` are the processes it left behind (reparented to us), not reaped yet.
    """

    wall: float
    cpu: float
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str
    orphans: list[int]

    @property
    def maxrss_mib(self) -> float:
        return self.maxrss_kib / 1024


@dataclass
class Orphan:
    """A reaped detached process.

    `cpu` and `maxrss_kib` come from `wait4`; `maxrss_kib` includes the RSS its parent
    had when it was spawned (Linux keeps the pre-exec high-water mark), so `own_peak_kib`
    (VmHWM sampled from /proc while it ran, None if it ended before a sample) is its own.
    """

    pid: int
    cpu: float
    maxrss_kib: int
    own_peak_kib: int | None
    alive: float
    killed: bool


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


class Spawner:
    """The helper process that starts commands; see `_spawner.py`."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._count = itertools.count()
        self._known: set[int] = set()
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_SPAWNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.floor_kib = self.run(["/bin/true"], {}, scratch).maxrss_kib

    @property
    def pid(self) -> int:
        return self._proc.pid

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 60.0) -> Run:
        """Run `argv` to completion; its own rusage (not its detached children's)."""
        n = next(self._count)
        out, err = self._scratch / f".out-{n}", self._scratch / f".err-{n}"
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "out": str(out),
            "err": str(err),
            "timeout": timeout,
        }
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline())
        stdout = out.read_text(errors="replace")
        stderr = err.read_text(errors="replace")
        out.unlink()
        err.unlink()
        return Run(
            reply["wall"],
            reply["cpu"],
            reply["maxrss_kib"],
            reply["returncode"],
            stdout,
            stderr,
            self._new_orphans(),
        )

    def _new_orphans(self) -> list[int]:
        new = [pid for pid in children() if pid != self.pid and pid not in self._known]
        self._known.update(new)
        return new

    def reap(self, pids: list[int], timeout: float = 30.0) -> list[Orphan]:
        """`reap(pids)`, forgetting the reaped process ids (they may be reused)."""
        reaped = reap(pids, timeout)
        self._known.difference_update(pids)
        return reaped

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=10)


def children() -> list[int]:
    """Our child processes, zombies included (/proc scan)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                if line.split()[1] == me:
                    found.append(int(entry))
                break
    return found


def _start_time(pid: int) -> float | None:
    """Seconds since boot at which `pid` started (from /proc, 10 ms resolution)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19]) / _TICKS


def _hwm_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None  # a zombie has no memory left to report


def reap(pids: list[int], timeout: float = 30.0) -> list[Orphan]:
    """Wait for each of `pids` (our reparented orphans); SIGKILL what outlives `timeout`."""
    pending = set(pids)
    peaks: dict[int, int] = {}
    started = {pid: _start_time(pid) for pid in pids}
    reaped: list[Orphan] = []
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pending:
        for pid in sorted(pending):
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                pending.discard(pid)
                continue
            if info is None:
                hwm = _hwm_kib(pid)
                if hwm is not None:
                    peaks[pid] = max(hwm, peaks.get(pid, 0))
                continue
            exited_at = time.clock_gettime(time.CLOCK_BOOTTIME)
            _, _, usage = os.wait4(pid, 0)
            pending.discard(pid)
            start = started[pid]
            reaped.append(
                Orphan(
                    pid,
                    usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss,
                    peaks.get(pid),
                    exited_at - start if start is not None else float("nan"),
                    pid in killed,
                )
            )
        if pending and time.monotonic() > deadline:
            for pid in pending - killed:
                killed.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if pending:
            time.sleep(0.002)
    return reaped
