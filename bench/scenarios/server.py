"""A long-lived MCP server: `MCP server started`, then 300 tool calls at 150/s, ending in a
normal exit or a SIGKILL right after the last call; side by side in one run.

Sides: ours (`arcade_usage.ServerTracker`), posthog-python's in-process client,
and, with `--compare`, arcade-mcp-server's `ServerTracker` (its hard-coded host
redirected to the fake by the venv's guard). Each run gets its own FakePostHog
and home (credentials, linked). CPU counts every process started: the driver's
`wait4` (its own CPU plus the children it reaped) and every process reparented
to the bench; the same driver tracking nothing is measured in the same rounds
and its CPU subtracted in the report. After the SIGKILL, ours gets one later
sender (`python -m arcade_usage`, as the next command would give it) before the
events are counted.

A last step times the server start with Arcade Cloud and PostHog both hanging
(credentials, not linked: the start does the lazy alias).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _lab import Lab, count_lines, rotated, servers, urls
from _sides import Side
from servers import FakePostHog

CALLS = 300
RATE = 150.0
EVENTS = ("MCP server started", "MCP tool called")
DRIVER = (Path(__file__).resolve().parent.parent / "_server_driver.py").read_text()


def delivered(posthog: FakePostHog) -> tuple[int, int]:
    """(distinct events delivered, duplicates) among the server's events, by uuid."""
    keys = [
        m.get("uuid") or json.dumps(m, sort_keys=True)
        for m in posthog.events()
        if m["event"] in EVENTS
    ]
    return len(set(keys)), len(keys) - len(set(keys))


def _drive(lab: Lab, side: Side, driver_side: str, ending: str) -> dict[str, Any] | None:
    with servers() as (posthog, cloud):
        srv = urls(posthog, cloud)
        home = lab.prepared(side, srv, credentials=True, linked=True)
        log = home / "processes.log"
        extra = {"ARCADE_BENCH_PROCS_LOG": str(log)}
        argv = ["-c", DRIVER, driver_side, ending, str(CALLS), str(RATE)]
        result, orphans = lab.python(side, home, srv, argv, extra, timeout=600.0)
        cpu = result.cpu + sum(o.cpu for o in orphans)
        expected = -9 if ending == "kill" else 0
        if result.returncode != expected:
            lab.fail(
                side,
                f"{driver_side} driver ({ending}) exited {result.returncode}: "
                + result.stderr.strip()[-300:],
            )
            return None
        try:
            timings = json.loads(result.stdout)
        except ValueError:
            lab.fail(side, f"{driver_side} driver ({ending}) printed no timings")
            return None
        before_later, _ = delivered(posthog)
        if ending == "kill" and driver_side == "ours":
            later, later_orphans = lab.python(side, home, srv, ["-m", "arcade_usage"], extra)
            cpu += later.cpu + sum(o.cpu for o in later_orphans)
        count, duplicates = delivered(posthog)
        return {
            "cpu": cpu,
            "start_ms": timings["start_ms"],
            "call_ms": timings["call_ms"],
            "traffic_s": timings["traffic_s"],
            "requests": posthog.requests,
            "delivered": count,
            "duplicates": duplicates,
            "delivered_before_later_sender": before_later,
            "processes": count_lines(log) - 1,
        }


def _start_hanging(lab: Lab, side: Side, driver_side: str) -> float | None:
    with servers(posthog_mode="hang", cloud_mode="hang") as (posthog, cloud):
        srv = urls(posthog, cloud)
        home = lab.prepared(side, srv, credentials=True, linked=False)
        argv = ["-c", DRIVER, driver_side, "exit", "0", str(RATE)]
        result, _ = lab.python(side, home, srv, argv, timeout=120.0)
        try:
            return float(json.loads(result.stdout)["start_ms"])
        except (ValueError, KeyError):
            lab.fail(
                side,
                f"{driver_side} start with services hanging failed: "
                + result.stderr.strip()[-300:],
            )
            return None


def measure(lab: Lab, sides: list[Side]) -> dict[str, dict[str, Any]]:
    """Per side (`ours`, `posthog`, `mcp-server`, and `baseline`): `exit` and `kill`, lists
    of run records (`cpu`, `start_ms`, `call_ms`, `traffic_s`, `requests`, `delivered`,
    `duplicates`, `delivered_before_later_sender`, `processes`); `start_hanging_ms`."""
    ours = next(s for s in sides if s.name == "ours")
    upstream = next((s for s in sides if s.name == "mcp-server"), None)
    # (name in the results, driver's side, venv)
    runners: list[tuple[str, str, Side]] = [("ours", "ours", ours), ("posthog", "posthog", ours)]
    if upstream is not None:
        runners.append(("mcp-server", "mcp-server", upstream))
    rounds = 1 if lab.quick else 3
    samples: dict[str, dict[str, Any]] = {
        name: {"exit": [], "kill": [], "start_hanging_ms": []}
        for name in ["baseline", *(r[0] for r in runners)]
    }
    for i in range(rounds):
        # arcade-mcp-server's run takes a minute and its figures are far from the others':
        # one round of it is enough.
        active = [r for r in runners if r[0] != "mcp-server" or i == 0]
        for name, driver_side, venv in rotated([("baseline", "none", ours), *active], i):
            for ending in ("exit",) if name == "baseline" else ("exit", "kill"):
                record = _drive(lab, venv, driver_side, ending)
                if record is not None:
                    samples[name][ending].append(record)
    for name, driver_side, venv in runners:
        if name == "posthog":
            continue  # no start-up work to hang on
        start = _start_hanging(lab, venv, driver_side)
        if start is not None:
            samples[name]["start_hanging_ms"].append(start)
    return samples
