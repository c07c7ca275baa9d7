"""PostHog on a bad day: CPU per tracked command during an outage against a good day, and
how many requests reach PostHog while it rate-limits.

Outage: three homes, one per condition (PostHog answering 200, answering 503,
refusing connections), commands interleaved across them (which goes first
alternates); each home keeps its outbox and back-off from one command to the
next, as a user's machine would during an outage. CPU per command counts the
command and every process it left behind (reaped before the next command).

Rate limit: PostHog answers every request with 429 and `Retry-After: 60`; N
commands in a row in one home; the figure is the number of requests PostHog
received.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from _lab import Lab, refused_url, rotated, servers
from _sides import Servers, Side

CONDITIONS = ("ok", "error", "refused")


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """For ours: `cpu_<condition>` (per command, all processes) for each of `CONDITIONS`;
    `ratelimit_commands`, `ratelimit_requests`, `ratelimit_cpu` (per command)."""
    side = next(s for s in sides if s.name == "ours")
    commands = 5 if lab.quick else 15
    out: dict[str, Any] = {f"cpu_{c}": [] for c in CONDITIONS}
    with ExitStack() as stack:
        places: dict[str, tuple[Servers, Any]] = {}
        for condition in CONDITIONS:
            posthog, cloud = stack.enter_context(
                servers(posthog_mode="error" if condition == "error" else "ok")
            )
            host = stack.enter_context(refused_url()) if condition == "refused" else posthog.url
            srv = Servers(host, cloud.url)
            places[condition] = (srv, lab.prepared(side, srv, credentials=True, linked=True))
        for i in range(commands):
            for condition in rotated(CONDITIONS, i):
                srv, home = places[condition]
                result, left = lab.settled(side, home, srv, side.tracked)
                out[f"cpu_{condition}"].append(result.cpu + sum(o.cpu for o in left))

    n = 5 if lab.quick else 10
    with servers(posthog_mode="ratelimit") as (posthog, cloud):
        srv = Servers(posthog.url, cloud.url)
        home = lab.prepared(side, srv, credentials=True, linked=True)
        cpu: list[float] = []
        for _ in range(n):
            result, left = lab.settled(side, home, srv, side.tracked)
            cpu.append(result.cpu + sum(o.cpu for o in left))
        out["ratelimit_commands"] = n
        out["ratelimit_requests"] = posthog.requests
        out["ratelimit_cpu"] = cpu
    return {"ours": out}
