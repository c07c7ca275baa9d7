"""A user's commands in the steady state: `--version`, the tracked command with tracking on
and off, and the tracking call timed inside a fresh process.

Sides alternate (and which goes first), tracking on/off alternate, and each
command's senders are reaped before the next command starts, so a sender never
competes with the next measured command for the CPU.
"""

from __future__ import annotations

import json
from typing import Any

from _lab import Lab, orphan_record, rotated, run_record, servers, urls
from _sides import Side

TRACK_CALL_SNIPPET = {
    "ours": """
import json, time
import arcade_cli.app  # everything the CLI has loaded when it tracks
from arcade_usage import CommandTracker
tracker = CommandTracker()
times = []
for _ in range(2):
    started = time.perf_counter()
    tracker.track_command_execution("usage.status", True, duration_ms=12.5)
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
""",
    "shipped": """
import json, time
import arcade_cli.main  # everything the CLI has loaded when it tracks
from arcade_cli.usage.command_tracker import command_tracker as tracker
times = []
for _ in range(2):
    started = time.perf_counter()
    tracker.track_command_execution("whoami", True, duration_ms=12.5)
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
""",
}


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side: `version` walls; `tracked`/`untracked` runs (pair i ran back to back);
    `senders` of the tracked runs; `call_first_ms`/`call_again_ms`."""
    main = 9 if lab.quick else 31
    calls = 4 if lab.quick else 7
    samples: dict[str, dict[str, Any]] = {
        side.name: {
            "version": [],
            "tracked": [],
            "untracked": [],
            "senders": [],
            "call_first_ms": [],
            "call_again_ms": [],
        }
        for side in sides
    }
    with servers() as (posthog, cloud):
        srv = urls(posthog, cloud)
        for side in sides:  # warm-up (page cache)
            home = lab.prepared(side, srv, credentials=True, linked=True)
            lab.settled(side, home, srv, side.tracked)
        for i in range(main):
            for side in rotated(sides, i):
                out = samples[side.name]
                home = lab.prepared(side, srv, credentials=True, linked=True)
                out["version"].append(lab.settled(side, home, srv, ("--version",))[0].wall)
                for tracking in (True, False) if i % 2 == 0 else (False, True):
                    home = lab.prepared(side, srv, credentials=True, linked=True)
                    result, senders = lab.settled(side, home, srv, side.tracked, tracking=tracking)
                    if tracking:
                        out["tracked"].append(run_record(result))
                        out["senders"] += [orphan_record(s) for s in senders]
                    else:
                        out["untracked"].append(run_record(result))
                        if senders:
                            lab.fail(side, "a process was left behind with tracking off")
        names = {m["properties"].get("command_name") for m in posthog.command_events()}
        for side in sides:
            if ".".join(side.tracked) not in names:
                lab.fail(side, "no event reached PostHog")

    with servers() as (posthog, cloud):
        srv = urls(posthog, cloud)
        for i in range(calls):
            for side in rotated(sides, i):
                home = lab.prepared(side, srv, credentials=True, linked=True)
                result, _ = lab.python(side, home, srv, ["-c", TRACK_CALL_SNIPPET[side.name]])
                try:
                    first, again = json.loads(result.stdout)
                except ValueError:
                    lab.fail(side, f"tracking-call snippet failed: {result.stderr[-300:]}")
                    continue
                samples[side.name]["call_first_ms"].append(first)
                samples[side.name]["call_again_ms"].append(again)
    return samples
