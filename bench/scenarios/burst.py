"""A burst: N tracked commands back to back in one home, then every sender reaped.

What a script running `arcade` in a loop costs: the commands' CPU, every
sender's CPU, and how many uploads PostHog saw at once.
"""

from __future__ import annotations

from typing import Any

from _lab import Lab, orphan_record, servers, urls
from _sides import Side


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side: `commands`, `cli_cpu` (summed), `senders` records, `requests`,
    `max_in_flight`, `delivered`."""
    counts = {"ours": 50, "shipped": 8 if lab.quick else 12}
    samples: dict[str, dict[str, Any]] = {}
    for side in sides:
        n = counts.get(side.name, 12)
        with servers() as (posthog, cloud):
            srv = urls(posthog, cloud)
            home = lab.prepared(side, srv, credentials=True, linked=True)
            left: list[int] = []
            cli_cpu = 0.0
            for _ in range(n):
                result = lab.command(side, home, srv, side.tracked)
                cli_cpu += result.cpu
                left += result.orphans
            senders = lab.spawner.reap(left, timeout=60.0)
            samples[side.name] = {
                "commands": n,
                "cli_cpu": cli_cpu,
                "senders": [orphan_record(s) for s in senders],
                "requests": posthog.requests,
                "max_in_flight": posthog.max_in_flight,
                "delivered": len(posthog.command_events()),
            }
    return samples
