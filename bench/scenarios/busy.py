"""Busy servers: 4 processes x 8 threads x 500 tool calls as fast as they go, and one
process of 8 threads x 1,000 calls; ours beside posthog-python's in-process client.

Each run gets its own FakePostHog and home (credentials, linked). CPU counts every
process: the driver's `wait4` (it and the server processes it forked and reaped)
plus every process reparented to the bench (ours' senders); the same driver tracking
nothing is measured in the same rounds and its CPU subtracted in the report. Events
are counted once every process is gone (ours' senders included), by uuid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _lab import Lab, count_lines, rotated, servers, urls
from _sides import Side
from servers import FakePostHog

DRIVER = (Path(__file__).resolve().parent.parent / "_busy_driver.py").read_text()
# (name in the samples, driver shape, processes or workers, threads, calls per thread)
SHAPES: dict[str, tuple[str, int, int, int]] = {
    "processes": ("processes", 4, 8, 500),
    "threads": ("processes", 1, 8, 1000),
}


def delivered(posthog: FakePostHog) -> tuple[int, int]:
    """(distinct events delivered, duplicates), by uuid."""
    keys = [m.get("uuid") or json.dumps(m, sort_keys=True) for m in posthog.events()]
    return len(set(keys)), len(keys) - len(set(keys))


def drive(
    lab: Lab, side: Side, driver_side: str, shape: str, n: int, threads: int, calls: int
) -> dict[str, Any] | None:
    """One run of the busy driver; its record, or None (and a failure noted)."""
    with servers() as (posthog, cloud):
        srv = urls(posthog, cloud)
        home = lab.prepared(side, srv, credentials=True, linked=True)
        log = home / "processes.log"
        env = {**side.env(home, srv), "ARCADE_BENCH_PROCS_LOG": str(log)}
        argv = [side.python, "-c", DRIVER, driver_side, shape, str(n), str(threads), str(calls)]
        result = lab.spawner.run(argv, env, home, timeout=600.0)
        ended = time.monotonic()
        orphans = lab.spawner.reap(result.orphans, timeout=60.0)
        settled = time.monotonic() - ended
        if result.returncode != 0:
            lab.fail(
                side,
                f"{driver_side} busy driver ({shape}) exited {result.returncode}: "
                + result.stderr.strip()[-300:],
            )
            return None
        try:
            report = json.loads(result.stdout)
        except ValueError:
            lab.fail(side, f"{driver_side} busy driver ({shape}) printed no report")
            return None
        count, duplicates = delivered(posthog)
        return {
            "cpu": result.cpu + sum(o.cpu for o in orphans),
            "senders_cpu": sum(o.cpu for o in orphans),
            "call_ms": report["call_ms"],
            "traffic_s": report["traffic_s"],
            "events": report["events"],
            "hung": report["hung"],
            "settled_s": settled,
            "requests": posthog.requests,
            "delivered": count,
            "duplicates": duplicates,
            "processes": count_lines(log) - 1,
        }


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side (`ours`, `posthog`, `baseline`): per shape (`processes`, `threads`), a
    list of run records (`cpu`, `senders_cpu` (the detached senders' part of it),
    `call_ms`, `traffic_s`, `events`, `hung`, `settled_s`, `requests`, `delivered`,
    `duplicates`, `processes`)."""
    ours = next(s for s in sides if s.name == "ours")
    runners = [("baseline", "none"), ("ours", "ours"), ("posthog", "posthog")]
    samples: dict[str, dict[str, Any]] = {name: {s: [] for s in SHAPES} for name, _ in runners}
    rounds = 1 if lab.quick else 3
    for i in range(rounds):
        for name, driver_side in rotated(runners, i):
            for key, (shape, n, threads, calls) in SHAPES.items():
                record = drive(lab, ours, driver_side, shape, n, threads, calls)
                if record is not None:
                    samples[name][key].append(record)
    return samples
