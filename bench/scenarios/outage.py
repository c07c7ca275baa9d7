"""PostHog on a bad day: CPU per tracked command during an outage against a good day, and
how many requests reach PostHog while it rate-limits.

Outage: three homes, one per condition (PostHog answering 200, answering 503,
refusing connections). A round runs K commands in a row in each home,
interleaved across the homes (which goes first alternates), as a script running
`arcade` in a loop would; every process the round left behind is reaped at its
end and its CPU charged to the command that started it. Each home keeps its
outbox and back-off from one round to the next, as a user's machine would
during an outage. CPU per command = the round's CPU in that home / K.

Rate limit: PostHog answers every request with 429 and `Retry-After: 60`; N
commands in a row in one home; the figure is the number of requests PostHog
received.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from _lab import Lab, rotated, servers
from _procs import Run
from _sides import Servers, Side
from servers import closed_port

CONDITIONS = ("ok", "error", "refused")


def _in_a_row(lab: Lab, side: Side, jobs: list[tuple[str, Servers, Path]]) -> dict[str, float]:
    """Run the commands back to back, then reap what they left; CPU summed per label."""
    runs: list[tuple[str, Run]] = []
    for label, srv, home in jobs:
        runs.append((label, lab.command(side, home, srv, side.tracked)))
    orphans = {o.pid: o for o in lab.spawner.reap([p for _, r in runs for p in r.orphans], 60.0)}
    totals: dict[str, float] = {}
    for label, run in runs:
        cpu = run.cpu + sum(orphans[p].cpu for p in run.orphans if p in orphans)
        totals[label] = totals.get(label, 0.0) + cpu
    return totals


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """For ours: `cpu_<condition>` (CPU per command, one value per round) for each of
    `CONDITIONS`; `ratelimit_commands`, `ratelimit_requests`, `ratelimit_cpu`."""
    side = next(s for s in sides if s.name == "ours")
    rounds, per_round = (2, 10) if lab.quick else (5, 20)
    out: dict[str, Any] = {f"cpu_{c}": [] for c in CONDITIONS}
    with ExitStack() as stack:
        places: dict[str, tuple[Servers, Path]] = {}
        for condition in CONDITIONS:
            posthog, cloud = stack.enter_context(
                servers(posthog_mode="error" if condition == "error" else "ok")
            )
            host = stack.enter_context(closed_port()) if condition == "refused" else posthog.url
            srv = Servers(host, cloud.url)
            places[condition] = (srv, lab.prepared(side, srv, credentials=True, linked=True))
        for r in range(rounds):
            jobs = [
                (condition, *places[condition])
                for i in range(per_round)
                for condition in rotated(CONDITIONS, r * per_round + i)
            ]
            totals = _in_a_row(lab, side, jobs)
            for condition in CONDITIONS:
                out[f"cpu_{condition}"].append(totals[condition] / per_round)

    n = 10 if lab.quick else 20
    with servers(posthog_mode="ratelimit") as (posthog, cloud):
        srv = Servers(posthog.url, cloud.url)
        home = lab.prepared(side, srv, credentials=True, linked=True)
        totals = _in_a_row(lab, side, [("429", srv, home)] * n)
        out["ratelimit_commands"] = n
        out["ratelimit_requests"] = posthog.requests
        out["ratelimit_cpu"] = totals["429"] / n
    return {"ours": out}
