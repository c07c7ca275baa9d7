"""Slow networks: Arcade Cloud hanging during the principal lookup, PostHog hanging
during the lazy alias.

Cloud hanging: credentials, no linked principal; the first command pays the
lookup's budget once, the following ones run against a remembered failure and
are paired with a baseline run right after each. PostHog hanging: the aliasing
command's wall and its sender's lifetime; then PostHog comes back and commands
run (one every half second, until an event as the principal arrives: a back-off
may hold the first ones) show whether the alias arrives once, before the first
event sent as the principal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _lab import Lab, orphan_record, rotated, servers, urls
from _sides import PRINCIPAL, Servers, Side
from servers import FakePostHog


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side: `hang_first`, `hang_baseline`, `hang_follow`, `hang_pairs` (follow / the
    baseline right after it), `hang_lookups`, `hang_homes`; `alias_walls`,
    `alias_in_order` (bools), `alias_senders` (the senders left while PostHog hung),
    `alias_commands` (commands run after PostHog came back until it had an event)."""
    hang_reps = {"ours": 1 if lab.quick else 2}
    hang_follow = 3 if lab.quick else 12
    alias_reps = 1 if lab.quick else 2
    samples: dict[str, dict[str, Any]] = {
        side.name: {
            "hang_first": [],
            "hang_baseline": [],
            "hang_follow": [],
            "hang_pairs": [],
            "hang_lookups": 0,
            "hang_homes": 0,
            "alias_walls": [],
            "alias_in_order": [],
            "alias_senders": [],
            "alias_commands": [],
        }
        for side in sides
    }
    for side in sides:
        out = samples[side.name]
        with servers(cloud_mode="hang") as (posthog, cloud):
            srv = urls(posthog, cloud)
            # Baseline: no credentials for ours; the shipped `whoami` refuses to run without
            # them, so its baseline is the same command logged in and linked (no lookup).
            shipped = side.flavour != "ours"
            base = lab.prepared(side, srv, credentials=shipped, linked=shipped)
            for _ in range(hang_reps.get(side.name, 1)):
                home = lab.prepared(side, srv, credentials=True, linked=False)
                out["hang_baseline"].append(lab.settled(side, base, srv, side.tracked)[0].wall)
                out["hang_first"].append(lab.settled(side, home, srv, side.tracked)[0].wall)
                out["hang_homes"] += 1
                for _ in range(1 if shipped else hang_follow):
                    follow = lab.settled(side, home, srv, side.tracked)[0].wall
                    baseline = lab.settled(side, base, srv, side.tracked)[0].wall
                    out["hang_follow"].append(follow)
                    out["hang_baseline"].append(baseline)
                    out["hang_pairs"].append(follow / baseline)
            out["hang_lookups"] = cloud.validations

    for i in range(alias_reps):
        for side in rotated(sides, i):
            out = samples[side.name]
            with servers(posthog_mode="hang") as (posthog, cloud):
                srv = urls(posthog, cloud)
                home = lab.prepared(side, srv, credentials=True, linked=False)
                result, hung = lab.settled(side, home, srv, side.tracked)
                out["alias_walls"].append(result.wall)
                out["alias_senders"] += [orphan_record(s) for s in hung]
                posthog.mode = "ok"
                out["alias_commands"].append(_until_delivered(lab, side, home, srv, posthog))
                out["alias_in_order"].append(alias_first(posthog))
    return samples


def _until_delivered(lab: Lab, side: Side, home: Path, srv: Servers, posthog: FakePostHog) -> int:
    """Commands, one every half second, until an event as the principal arrives (20 s at most).

    A tracker that backs off after a failed upload (ours, by design) files the next
    command's event and sends it once the back-off has passed, not at once.
    """
    deadline = time.monotonic() + 20.0
    commands = 0
    while True:
        lab.settled(side, home, srv, side.tracked)
        commands += 1
        arrived = any(
            m["distinct_id"] == PRINCIPAL and m["event"] != "$create_alias"
            for m in posthog.events()
        )
        if arrived or time.monotonic() > deadline:
            return commands
        time.sleep(0.5)


def alias_first(posthog: FakePostHog) -> bool:
    """The alias to the principal was delivered once, ahead of every event sent as the principal."""
    messages = posthog.events()
    aliases = [
        i
        for i, m in enumerate(messages)
        if m["event"] == "$create_alias" and m["properties"].get("alias") == PRINCIPAL
    ]
    as_principal = [
        i
        for i, m in enumerate(messages)
        if m["event"] != "$create_alias" and m["distinct_id"] == PRINCIPAL
    ]
    return len(aliases) == 1 and bool(as_principal) and aliases[0] < as_principal[0]
