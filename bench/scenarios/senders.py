"""The senders alone: one process hands 1 event, or a burst of 50, to `UsageService` and
exits at once (as the CLI does); everything it started is counted.

CPU is the capturing process's own `wait4` figure (which includes the senders it
reaped itself) plus every sender reparented to the bench, minus the same process
capturing nothing. The number of processes started comes from the venv's
start log (`_guard.py`), not from whoever reaped them.
"""

from __future__ import annotations

from typing import Any

from _lab import Lab, count_lines, servers, urls
from _sides import Side

CAPTURE = """
import os, sys
from arcade_usage import UsageService
service = UsageService()
for i in range(int(sys.argv[1])):
    service.capture("CLI execution succeeded", "bench", {"command_name": f"bench.{i}"}, True)
os._exit(0)
"""

SIZES = (0, 1, 50)


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """For ours, per size in `SIZES` (0 is the baseline): lists of `cpu` (all processes),
    `processes` (started besides the capturing one), `delivered`, `peak_kib` (largest
    own peak of a reparented sender)."""
    side = next(s for s in sides if s.name == "ours")
    runs = 3 if lab.quick else 5
    out: dict[str, Any] = {
        str(n): {"cpu": [], "processes": [], "delivered": [], "peak_kib": []} for n in SIZES
    }
    for i in range(runs):
        for n in SIZES if i % 2 == 0 else SIZES[::-1]:
            with servers() as (posthog, cloud):
                srv = urls(posthog, cloud)
                home = lab.prepared(side, srv, credentials=True, linked=True)
                log = home / "processes.log"
                result, senders = lab.python(
                    side, home, srv, ["-c", CAPTURE, str(n)], {"ARCADE_BENCH_PROCS_LOG": str(log)}
                )
                if result.returncode != 0:
                    lab.fail(side, f"capture of {n} events failed: {result.stderr[-300:]}")
                record = out[str(n)]
                record["cpu"].append(result.cpu + sum(s.cpu for s in senders))
                record["processes"].append(count_lines(log) - 1)
                record["delivered"].append(len(posthog.command_events()))
                peaks = [s.own_peak_kib for s in senders if s.own_peak_kib is not None]
                record["peak_kib"].append(max(peaks, default=0))
    return {"ours": out}
