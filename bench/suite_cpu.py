"""Where the test suite's CPU goes: every process it starts, by kind, from the kernel's
process accounting (acct(2): needs root, Linux).

    sudo uv run python bench/suite_cpu.py [PYTEST ARGS...]   # default: -n auto -q

Runs `uv run pytest ARGS` as a child subreaper, so that the detached senders, whose
parents are gone, are reparented here and told apart from the rest, then prints one
line per kind of process (how many, CPU-s, median CPU-s each), the largest Python
processes' CPU (the pytest workers, running every test's own code), and the machine's busy
share while it ran (from /proc/stat): a suite that keeps the CPUs busy is as fast as
its CPU seconds allow, and only fewer of them make it faster.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict

PR_SET_CHILD_SUBREAPER = 36
ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")  # struct acct_v3, 64 bytes


def _comp(value: int) -> float:
    """A comp_t (13-bit mantissa, base-8 exponent) of clock ticks, in seconds."""
    return ((value & 0x1FFF) << (3 * (value >> 13))) / 100  # AHZ


def _busy() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def _reap_orphans(pytest: int) -> None:
    """Reap the processes reparented to us as they end (a zombie would pass for a live
    sender), until the pytest child ends: that one is `main`'s to wait for."""
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return
        if found is None or found.si_pid == pytest:
            return
        os.waitpid(found.si_pid, 0)


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("cannot become a child subreaper")
    args = sys.argv[1:] or ["-n", "auto", "-q", "-p", "no:cacheprovider"]
    with tempfile.NamedTemporaryFile(prefix="suite-acct-") as log:
        if libc.acct(log.name.encode()) != 0:
            raise SystemExit(f"acct(2): {os.strerror(ctypes.get_errno())} (root needed)")
        busy0, all0 = _busy()
        try:
            child = subprocess.Popen(["uv", "run", "pytest", *args])
            reaper = threading.Thread(target=_reap_orphans, args=(child.pid,), daemon=True)
            reaper.start()
            status = child.wait()
            reaper.join()
        finally:
            libc.acct(None)
            busy1, all1 = _busy()
        data = log.read()
    me = os.getpid()
    kinds: dict[str, list[float]] = defaultdict(list)
    for offset in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        fields = ACCT_V3.unpack_from(data, offset)
        ppid, utime, stime = fields[7], fields[10], fields[11]
        name = fields[18].split(b"\0")[0].decode(errors="replace")
        if name.startswith("python") and ppid == me:
            name = "python, orphaned (senders whose starter ended)"
        kinds[name].append(_comp(utime) + _comp(stime))
    total = sum(sum(cpus) for cpus in kinds.values())
    print(f"\n{'process':42} {'count':>6} {'CPU-s':>8} {'median':>8}")
    for name, cpus in sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"{name:42} {len(cpus):6d} {sum(cpus):8.1f} {statistics.median(cpus):8.3f}")
    largest = sorted(kinds.get("python", []), reverse=True)[:6]
    print(f"largest python processes (the pytest workers first): {largest}")
    share = (busy1 - busy0) / max(all1 - all0, 1)
    wall = (all1 - all0) / os.sysconf("SC_CLK_TCK") / (os.cpu_count() or 1)
    print(f"{'all':42} {sum(map(len, kinds.values())):6d} {total:8.1f}")
    print(f"machine busy {share:.0%} of {os.cpu_count()} CPUs over {wall:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
