"""Helpers for tests: run the real `arcade`, wait on conditions, find live senders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# The proxies of the machine, as they were before the autouse fixture fenced them off:
# only a package installer (talking to the package index) gets them back.
_MACHINE_PROXIES = {
    name: value for name, value in os.environ.items() if name.upper() in PROXY_VARIABLES
}

ARCADE = Path(sys.executable).with_name("arcade.exe" if os.name == "nt" else "arcade")

# Read once, at import: the autouse fixture clears every ARCADE_* variable before a test.
_ROUNDS_SETTING = os.environ.get("ARCADE_TEST_ROUNDS", "")

INCONCLUSIVE = "inconclusive: "
"""The prefix of a skip that means "this run could not tell", never "does not apply".

conftest.py counts such skips in the terminal summary and, with
ARCADE_TEST_STRICT_SKIPS=1 (CI), fails the session when most tests that can be
inconclusive were: a busy machine must not hide a regression as a row of skips.
"""


def rounds(default: int) -> int:
    """How many rounds a race or randomised test runs: `ARCADE_TEST_ROUNDS` if set, else
    `default` (a module's own, kept small so `pytest -n auto` stays fast).

    One setting for the whole suite, with the acceptance tests' meaning: the number of
    rounds itself (CI's main run sets more). A value that is not a positive whole number
    is refused by conftest.py before any test runs.
    """
    if not _ROUNDS_SETTING:
        return default
    value = int(_ROUNDS_SETTING)
    if value < 1:
        raise ValueError(_ROUNDS_SETTING)
    return value


def check_rounds_setting() -> str | None:
    """What is wrong with `ARCADE_TEST_ROUNDS`, in one line, or None."""
    try:
        rounds(1)
    except ValueError:
        return f"ARCADE_TEST_ROUNDS must be a positive whole number, not {_ROUNDS_SETTING!r}"
    return None


def inconclusive(reason: str) -> NoReturn:
    """Skip this test as inconclusive: what it proves could not be observed in this run."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    pytest.skip(INCONCLUSIVE + reason)


def run_arcade(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `arcade` entry point as a user would, in this test's environment."""
    return subprocess.run(
        [str(ARCADE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        check=False,
    )


def package_index_env() -> dict[str, str]:
    """This test's environment, with the machine's own proxy settings, for uv or pip."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARIABLES}
    return {**env, **_MACHINE_PROXIES}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The user sees exit code 1 and one `Error:` line on stderr, and no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0].removeprefix("Error: ")


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextmanager
def line_workers(code: str, count: int, *args: str) -> Iterator[list[subprocess.Popen[str]]]:
    """`count` processes running `python -c code *args`, spoken to by lines on stdin and
    stdout; on the way out their stdin closes (the sign to end) and every one is reaped."""
    workers: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", code, *args],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        yield workers
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


HOLD_LOCK = """\
import sys
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def lock_held(path: Path) -> Iterator[None]:
    """Another process holds the `filelock` at `path` for the block."""
    with line_workers(HOLD_LOCK, 1, os.fspath(path)) as (holder,):
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield


def sender_pids(work_dir: Path) -> list[int]:
    """Live `python -m arcade_usage` processes working for `work_dir`.

    Linux's /proc tells whose work dir a sender has. Elsewhere (the GitHub workflow's
    macOS and Windows runners) `ps` lists every sender of the machine, this test's and
    others': a wait for them takes longer there, never less; Windows has no `ps`, and
    nothing waits for senders there.
    """
    if not os.path.isdir("/proc"):
        return _senders_without_proc()
    wanted = f"ARCADE_WORK_DIR={work_dir}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"arcade_usage" not in cmdline:
                continue
            if wanted not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.append(int(entry))
    return pids


def _cpu_pressure() -> float:
    """Seconds in which some task of this machine waited for a CPU (Linux's PSI), or 0."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return 0.0
    return int(some.rsplit("total=", 1)[1]) / 1e6


def _run_delay() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux's schedstat)."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


OVERLOADED_PER_CPU = 4.0
"""A machine whose one-minute load average passes this many per CPU is overloaded: a
budget missed there is inconclusive rather than failed (`Stopwatch.assert_within`)."""


def overloaded() -> str | None:
    """Why this machine is too busy to time a budget on, or None."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cpus = os.cpu_count() or 1
    if load > OVERLOADED_PER_CPU * cpus:
        return f"load average {load:.0f} on {cpus} CPUs"
    return None


def busy_cpus() -> float:
    """How many CPUs other processes keep busy now: the runnable tasks besides this one
    (Linux's /proc/loadavg, the median of five looks over 0.2 s), or else the one-minute
    load average."""
    import statistics

    looks = []
    for look in range(5):
        if look:
            time.sleep(0.05)
        try:
            running = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        looks.append(int(running) - 1)
    return float(statistics.median(looks))


class Stopwatch:
    """Times a block in this thread: `elapsed` on the wall clock, and `own`, that time less
    what the kernel kept this thread waiting for a CPU (`starved`).

    A budget (the 2 s lookup) is what a user waits on an idle machine; on a busy one the
    wall clock also counts other processes' turns. `own` removes those of this thread,
    as the kernel counted them (not those of a thread it waited on, which is gone by
    then), so it proves the same bound on an idle machine, where `starved` is about 0.
    `assert_within` adapts once more: a budget missed on a starved machine (overloaded, or
    tasks waiting for a CPU half the block: the wait of a thread the block waited on, such
    as a lookup's, is not in `starved`) skips the test as inconclusive (counted; most of
    them fail CI) instead of failing it.
    """

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.starved = 0.0
        self.contended = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.monotonic()
        self._delay = _run_delay()
        self._pressure = _cpu_pressure()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self._started
        self.starved = _run_delay() - self._delay
        self.contended = _cpu_pressure() - self._pressure

    @property
    def own(self) -> float:
        return self.elapsed - self.starved

    def assert_within(self, budget: float, what: str = "the block") -> None:
        """`own < budget`; if not, inconclusive on an overloaded machine, else a failure.

        A test that calls this is marked `may_be_inconclusive`.
        """
        __tracebackhide__ = True
        if self.own < budget:
            return
        why = starved(self)
        if why:
            inconclusive(f"{what} took {self!r}, past its {budget:g} s budget, at {why}")
        raise AssertionError(f"{what} took {self!r}, past its {budget:g} s budget")

    def __repr__(self) -> str:
        return f"{self.elapsed:.2f} s, {self.starved:.2f} s of it waiting for a CPU"


def starved(watch: Stopwatch) -> str | None:
    """Why the block `watch` timed may have been starved of CPU (another thread of it, such
    as a lookup's, as well as this one), or None: an overloaded machine, or some task
    waiting for a CPU during half the block or more."""
    if why := overloaded():
        return why
    if watch.contended >= watch.elapsed / 2 > 0:
        return f"{watch.contended:.1f} s of {watch.elapsed:.1f} s with tasks waiting for a CPU"
    return None


def _senders_without_proc() -> list[int]:
    if sys.platform == "win32":
        return []
    listing = subprocess.run(
        ["ps", "-axww", "-o", "pid=,stat=,command="],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    pids = []
    for line in listing.splitlines():
        pid, state, command = [*line.split(None, 2), "", ""][:3]
        if "-m arcade_usage" in command and not state.startswith("Z"):
            pids.append(int(pid))
    return pids
