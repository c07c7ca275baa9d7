"""A pre-fork server (gunicorn style): the master tracks its start and 8 threads x 250
calls, and forks 4 workers meanwhile, each tracking 8 threads x 250 calls with the
tracker it inherited; ours beside posthog-python's in-process client.

A worker not done within 30 s is hung (killed, counted). Events are counted once
every process is gone, by uuid; CPU as in the busy scenario.
"""

from __future__ import annotations

from typing import Any

from _lab import Lab, rotated
from _sides import Side
from scenarios.busy import drive

WORKERS, THREADS, CALLS = 4, 8, 250


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side (`ours`, `posthog`, `baseline`): `runs`, a list of records as the busy
    scenario's."""
    ours = next(s for s in sides if s.name == "ours")
    runners = [("baseline", "none"), ("ours", "ours"), ("posthog", "posthog")]
    samples: dict[str, dict[str, Any]] = {name: {"runs": []} for name, _ in runners}
    rounds = 1 if lab.quick else 3
    for i in range(rounds):
        for name, driver_side in rotated(runners, i):
            record = drive(lab, ours, driver_side, "prefork", WORKERS, THREADS, CALLS)
            if record is not None:
                samples[name]["runs"].append(record)
    return samples
