"""Usage-tracking benchmarks: `uv run python bench/run.py [--compare] [--quick] [--only ...]`.

Builds the installed `arcade` (wheels of this workspace in a throw-away venv)
and, with `--compare`, the shipped `arcade-mcp==1.16.3` and the latest
`arcade-mcp-server` beside it; runs the chosen scenarios against loopback fake
servers only; writes the raw samples to `bench/results/<time>-<commit>.json`;
prints the report (`report.py`). Linux only (child subreaper, /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _lab import Lab
from _procs import Spawner, become_subreaper
from _sides import (
    MCP_SERVER_REQUIREMENT,
    ROOT,
    SHIPPED_REQUIREMENT,
    BuildError,
    Servers,
    Side,
    build_mcp_server,
    build_ours,
    build_shipped,
    installed_version,
)
from report import RESULTS_DIR, render
from scenarios import burst, busy, commands, hanging, outage, prefork, senders, server

Scenario = Callable[[Lab, list[Side]], dict[str, dict[str, Any]]]

# In the order they run; each gets the sides built for this run.
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "commands": (
        "interleaved --version / tracked on / tracked off; the tracking call",
        commands.measure,
    ),
    "hanging": ("Arcade Cloud hanging; alias with PostHog hanging", hanging.measure),
    "burst": ("burst of commands", burst.measure),
    "senders": ("senders alone: 1 and 50 events from one process", senders.measure),
    "server": ("MCP server: start + 300 tool calls at 150/s, exit and SIGKILL", server.measure),
    "outage": ("PostHog outage vs a good day; 429 with Retry-After", outage.measure),
    "busy": (
        "busy servers: 4 processes x 8 threads x 500 calls; 1 x 8 x 1,000; beside posthog's",
        busy.measure,
    ),
    "prefork": (
        "a pre-fork server: master and 4 workers tracking, beside posthog's",
        prefork.measure,
    ),
}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def source_name() -> str:
    return _git("describe", "--always", "--dirty") or "unknown"


def machine(scratch: Path) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "source": source_name(),
        "load": Path("/proc/loadavg").read_text().split()[0],
        "time": f"{now:%Y-%m-%d %H:%M UTC}",
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "homes": filesystem(scratch),
    }


def filesystem(path: Path) -> str:
    """The filesystem `path` is on, as /proc/mounts names it, and whether ext4 journals.

    Creating a file costs what the filesystem makes it cost: ext4 without a journal (this
    project's VMs) will not reuse an inode freed in the last minute and reads the inode
    table to find one, ~10x the CPU per file of the journaled ext4 every distribution makes.
    """
    best = ("", "unknown", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, point, kind = line.split()[:3]
        inside = str(path).startswith(point.rstrip("/") + "/") or str(path) == point
        if inside and len(point) >= len(best[0]):
            best = (point, kind, device)
    point, kind, device = best
    if kind == "ext4":
        task = Path("/sys/fs/ext4", Path(device).name, "journal_task")
        with contextlib.suppress(OSError):
            kind += " (no journal)" if task.read_text().strip() == "<none>" else " (journaled)"
    return f"{kind} on {point}"


def check_guard(spawner: Spawner, sides: list[Side], guard_log: Path) -> str | None:
    """Prove the loopback guard is active in each venv: a real host lookup must be refused."""
    probe = (
        "import socket\ntry:\n    socket.getaddrinfo('pypi.org', 443)\nexcept OSError:\n    pass\n"
    )
    for side in sides:
        env = side.env(
            Path(tempfile.gettempdir()), Servers("http://127.0.0.1:9", "http://127.0.0.1:9")
        )
        spawner.run([side.python, "-c", probe], env, Path(tempfile.gettempdir()))
        if "pypi.org" not in (guard_log.read_text() if guard_log.exists() else ""):
            return f"the loopback guard is not active in the {side.name} venv"
        guard_log.write_text("")
    return None


def build_sides(
    compare: bool, revision: str | None, guard_log: Path
) -> tuple[list[Side], dict[str, str]]:
    """The venvs, and what each side is (for the results file)."""
    ours = build_ours(revision)
    sides = [Side("ours", ours, ("usage", "status"), guard_log)]
    built_from = _git("describe", "--always", revision) if revision else source_name()
    described = {
        "ours": f"wheels built from {built_from}",
        "posthog": f"posthog {installed_version(ours, 'posthog')} (in ours' venv)",
    }
    if compare:
        shipped = build_shipped()
        sides.append(Side("shipped", shipped, ("whoami",), guard_log, flavour="arcade_core"))
        described["shipped"] = SHIPPED_REQUIREMENT
        upstream = build_mcp_server()
        sides.append(Side("mcp-server", upstream, (), guard_log, flavour="arcade_core"))
        version = installed_version(upstream, MCP_SERVER_REQUIREMENT)
        described["mcp-server"] = f"{MCP_SERVER_REQUIREMENT}=={version}"
    return sides, described


def for_scenario(name: str, sides: list[Side]) -> list[Side]:
    """The CLI scenarios compare CLIs; the MCP-server one compares servers."""
    if name == "server":
        return [s for s in sides if s.name in ("ours", "mcp-server")]
    return [s for s in sides if s.name != "mcp-server"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--compare", action="store_true", help="also measure arcade-mcp 1.16.3, arcade-mcp-server"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable; default: all)",
    )
    parser.add_argument(
        "--source",
        metavar="REV",
        help="build ours from this commit instead of the working tree (git archive)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch homes")
    parser.add_argument(
        "--scratch",
        metavar="DIR",
        type=Path,
        help="make the homes under DIR (default: the temp dir); its filesystem is recorded",
    )
    args = parser.parse_args()
    if sys.platform != "linux":
        print("bench/run.py needs Linux (/proc, PR_SET_CHILD_SUBREAPER)", file=sys.stderr)
        return 2
    chosen = [name for name in SCENARIOS if not args.only or name in args.only]
    command = " ".join(["uv run python bench/run.py", *sys.argv[1:]])
    become_subreaper()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="arcade-bench-", dir=args.scratch))
    at_start = machine(scratch)
    guard_log = scratch / "non-loopback.log"
    try:
        print("building wheels and throw-away venvs ...", file=sys.stderr, flush=True)
        try:
            sides, described = build_sides(args.compare, args.source, guard_log)
        except BuildError as error:
            print(f"bench/run.py: {error}", file=sys.stderr)
            return 2
        spawner = Spawner(scratch)
        problem = check_guard(spawner, sides, guard_log)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        lab = Lab(spawner, scratch, args.quick)
        samples: dict[str, dict[str, dict[str, Any]]] = {}
        for name in chosen:
            label, measure = SCENARIOS[name]
            print(f"[{time.monotonic() - started:6.1f} s] {label} ...", file=sys.stderr, flush=True)
            samples[name] = measure(lab, for_scenario(name, sides))
        results = {
            "format": 1,
            "command": command,
            "machine": {"start": at_start, "end": machine(scratch)},
            "elapsed_s": time.monotonic() - started,
            "sides": described,
            "samples": samples,
            "floor_kib": spawner.floor_kib,
            "non_loopback": guard_log.read_text().splitlines() if guard_log.exists() else [],
            "failures": list(dict.fromkeys(lab.failures)),
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        built = described["ours"].rsplit(" ", 1)[-1]
        path = RESULTS_DIR / f"{stamp}-{built}.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        lines, missed = render(results)
        print("\n".join(lines))
        print(f"\nresults: {path.relative_to(ROOT)} ({missed} targets missed)")
        return 1 if results["non_loopback"] or results["failures"] else 0
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
