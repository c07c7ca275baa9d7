"""Usage-tracking benchmarks: `uv run python bench/run.py [--compare] [--quick]`.

Measures the installed `arcade` (wheels of this workspace in a throw-away venv)
and, with `--compare`, the shipped `arcade-mcp==1.16.3` beside it, interleaved,
against loopback fake servers only. Prints one table with a PASS/FAIL column.
Linux only (child subreaper, /proc).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from _procs import Orphan, Run, Spawner, become_subreaper
from _sides import PRINCIPAL, ROOT, Servers, Side, build_ours, build_shipped

sys.path.insert(0, str(ROOT / "libs" / "tests"))
from servers import FakeCloud, FakePostHog, _CloudHandler

# The figures for arcade-mcp 1.16.3, used as targets when not measured (--compare).
ANCHOR_VERSION_WALL = 1.30
ANCHOR_TRACKED_WALL = 1.30

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


@dataclass
class Plan:
    """How many repetitions each scenario gets."""

    main: int
    calls: int
    hang_reps: dict[str, int]
    hang_follow: int
    alias_reps: int
    burst: dict[str, int]


FULL = Plan(
    main=31,
    calls=7,
    hang_reps={"ours": 2, "shipped": 1},
    hang_follow=12,
    alias_reps=2,
    burst={"ours": 50, "shipped": 12},
)
QUICK = Plan(
    main=9,
    calls=4,
    hang_reps={"ours": 1, "shipped": 1},
    hang_follow=3,
    alias_reps=1,
    burst={"ours": 50, "shipped": 8},
)


@dataclass
class Figures:
    """Everything measured for one side."""

    version: list[float] = field(default_factory=list)
    tracked: list[Run] = field(default_factory=list)
    untracked: list[Run] = field(default_factory=list)
    senders: list[Orphan] = field(default_factory=list)
    call_first_ms: list[float] = field(default_factory=list)
    call_again_ms: list[float] = field(default_factory=list)
    hang_first: list[float] = field(default_factory=list)
    hang_follow: list[float] = field(default_factory=list)
    hang_baseline: list[float] = field(default_factory=list)
    hang_pairs: list[float] = field(default_factory=list)  # follow / the baseline run after it
    hang_lookups: int = 0
    alias_walls: list[float] = field(default_factory=list)
    alias_in_order: list[bool] = field(default_factory=list)
    hang_senders: list[Orphan] = field(default_factory=list)
    burst_commands: int = 0
    burst_cli_cpu: float = 0.0
    burst_senders: list[Orphan] = field(default_factory=list)
    burst_requests: int = 0
    burst_max_in_flight: int = 0
    burst_delivered: int = 0
    failures: list[str] = field(default_factory=list)


class _WhoamiCloudHandler(_CloudHandler):
    """FakeCloud, plus `/api/v1/auth/whoami` (the shipped CLI's OAuth lookup) served as validate."""

    def do_GET(self) -> None:
        if urlparse(self.path).path == "/api/v1/auth/whoami":
            self.path = "/api/v1/auth/validate"
        super().do_GET()


@contextmanager
def servers(
    posthog_mode: str = "ok", cloud_mode: str = "ok"
) -> Iterator[tuple[FakePostHog, FakeCloud]]:
    posthog = FakePostHog()
    cloud = FakeCloud()
    cloud.RequestHandlerClass = _WhoamiCloudHandler
    cloud.add_account("arc_bench_key_0001", PRINCIPAL, "bench@example.com")
    cloud.add_account("bench_access_token_0001", PRINCIPAL, "bench@example.com")
    posthog.mode, cloud.mode = posthog_mode, cloud_mode
    posthog.start()
    cloud.start()
    try:
        yield posthog, cloud
    finally:
        posthog.stop()
        cloud.stop()


def urls(posthog: FakePostHog, cloud: FakeCloud) -> Servers:
    return Servers(posthog.url, cloud.url)


class Bench:
    def __init__(self, sides: list[Side], plan: Plan, scratch: Path, spawner: Spawner) -> None:
        self.spawner = spawner
        self.sides = sides
        self.plan = plan
        self.scratch = scratch
        self.figures = {side.name: Figures() for side in sides}
        self._homes = itertools.count()

    # -- helpers ---------------------------------------------------------------------------

    def home(self, side: Side) -> Path:
        path = self.scratch / f"{side.name}-{next(self._homes)}"
        path.mkdir()
        return path

    def prepared(self, side: Side, srv: Servers, *, credentials: bool, linked: bool) -> Path:
        home = self.home(side)
        side.prepare(home, srv, credentials=credentials, linked=linked)
        return home

    def command(
        self, side: Side, home: Path, srv: Servers, args: tuple[str, ...], **kw: bool
    ) -> Run:
        result = self.spawner.run([side.arcade, *args], side.env(home, srv, **kw), home)
        if result.returncode != 0:
            self.figures[side.name].failures.append(
                f"`arcade {' '.join(args)}` exited {result.returncode}: "
                + result.stderr.strip()[-300:]
            )
        return result

    def settled(
        self, side: Side, home: Path, srv: Servers, args: tuple[str, ...], **kw: bool
    ) -> tuple[Run, list[Orphan]]:
        """Run a command, then wait for the senders it left, so the next run has the CPU."""
        result = self.command(side, home, srv, args, **kw)
        return result, self.spawner.reap(result.orphans)

    def rotated(self, i: int) -> list[Side]:
        """Alternate which side goes first, so neither always runs after the other."""
        return self.sides if i % 2 == 0 else self.sides[::-1]

    # -- scenarios -------------------------------------------------------------------------

    def main_loop(self) -> None:
        """`--version`, the tracked command on and off: interleaved, senders reaped in between."""
        with servers() as (posthog, cloud):
            srv = urls(posthog, cloud)
            for side in self.sides:  # warm-up (page cache)
                home = self.prepared(side, srv, credentials=True, linked=True)
                self.settled(side, home, srv, side.tracked)
            for i in range(self.plan.main):
                for side in self.rotated(i):
                    fig = self.figures[side.name]
                    home = self.prepared(side, srv, credentials=True, linked=True)
                    fig.version.append(self.settled(side, home, srv, ("--version",))[0].wall)
                    for tracking in (True, False) if i % 2 == 0 else (False, True):
                        home = self.prepared(side, srv, credentials=True, linked=True)
                        result, senders = self.settled(
                            side, home, srv, side.tracked, tracking=tracking
                        )
                        if tracking:
                            fig.tracked.append(result)
                            fig.senders += senders
                        else:
                            fig.untracked.append(result)
                            if senders:
                                fig.failures.append("a process was left behind with tracking off")
            names = {m["properties"].get("command_name") for m in posthog.command_events()}
            for side in self.sides:
                if ".".join(side.tracked) not in names:
                    self.figures[side.name].failures.append("no event reached PostHog")

    def tracking_call(self) -> None:
        """The tracking call itself, timed inside a fresh process of each CLI's venv."""
        with servers() as (posthog, cloud):
            srv = urls(posthog, cloud)
            for i in range(self.plan.calls):
                for side in self.rotated(i):
                    home = self.prepared(side, srv, credentials=True, linked=True)
                    argv = [side.python, "-c", TRACK_CALL_SNIPPET[side.name]]
                    result = self.spawner.run(argv, side.env(home, srv), home)
                    self.spawner.reap(result.orphans)
                    fig = self.figures[side.name]
                    try:
                        first, again = json.loads(result.stdout)
                    except ValueError:
                        fig.failures.append(f"tracking-call snippet failed: {result.stderr[-300:]}")
                        continue
                    fig.call_first_ms.append(first)
                    fig.call_again_ms.append(again)

    def hanging_cloud(self) -> None:
        """Credentials, no linked principal, Arcade Cloud hanging: first command, then the next."""
        for side in self.sides:
            fig = self.figures[side.name]
            with servers(cloud_mode="hang") as (posthog, cloud):
                srv = urls(posthog, cloud)
                # Baseline: no credentials for ours; the shipped `whoami` refuses to run without
                # them, so its baseline is the same command logged in and linked (no lookup).
                shipped = side.name != "ours"
                base = self.prepared(side, srv, credentials=shipped, linked=shipped)
                for _ in range(self.plan.hang_reps[side.name]):
                    home = self.prepared(side, srv, credentials=True, linked=False)
                    fig.hang_baseline.append(self.settled(side, base, srv, side.tracked)[0].wall)
                    fig.hang_first.append(self.settled(side, home, srv, side.tracked)[0].wall)
                    for _ in range(1 if shipped else self.plan.hang_follow):
                        follow = self.settled(side, home, srv, side.tracked)[0].wall
                        baseline = self.settled(side, base, srv, side.tracked)[0].wall
                        fig.hang_follow.append(follow)
                        fig.hang_baseline.append(baseline)
                        fig.hang_pairs.append(follow / baseline)
                fig.hang_lookups = cloud.validations

    def alias_with_posthog_hanging(self) -> None:
        """Credentials found, not linked yet, PostHog hanging: the aliasing command's wall time
        and its sender's lifetime; then, PostHog back, is the alias delivered before the event?
        """
        for i in range(self.plan.alias_reps):
            for side in self.rotated(i):
                fig = self.figures[side.name]
                with servers(posthog_mode="hang") as (posthog, cloud):
                    srv = urls(posthog, cloud)
                    home = self.prepared(side, srv, credentials=True, linked=False)
                    result, hung = self.settled(side, home, srv, side.tracked)
                    fig.alias_walls.append(result.wall)
                    fig.hang_senders += hung
                    posthog.mode = "ok"
                    self.settled(side, home, srv, side.tracked)
                    fig.alias_in_order.append(alias_first(posthog))

    def burst(self) -> None:
        """N tracked commands back to back; then every sender reaped; CPU and uploads counted."""
        for side in self.sides:
            fig = self.figures[side.name]
            n = self.plan.burst[side.name]
            with servers() as (posthog, cloud):
                srv = urls(posthog, cloud)
                home = self.prepared(side, srv, credentials=True, linked=True)
                left: list[int] = []
                for _ in range(n):
                    result = self.command(side, home, srv, side.tracked)
                    fig.burst_cli_cpu += result.cpu
                    left += result.orphans
                fig.burst_senders = self.spawner.reap(left, timeout=60.0)
                fig.burst_commands = n
                fig.burst_requests = posthog.requests
                fig.burst_max_in_flight = posthog.max_in_flight
                fig.burst_delivered = len(posthog.command_events())


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


# -- the table ------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(med(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def secs(v: float) -> str:
    return f"{v:.3f} s"


def mib(v: float) -> str:
    return f"{v:.1f} MiB"


def ms(v: float) -> str:
    return f"{v:.2f} ms"


def cpu(v: float) -> str:
    return f"{v:.3f} CPU-s"


def ratio(v: float) -> str:
    return f"{v:.3f}"


@dataclass
class Row:
    figure: str
    target: str
    ours: str
    passed: bool | None
    shipped: str


def rows(figs: dict[str, Figures]) -> list[Row]:
    o = figs["ours"]
    s = figs.get("shipped")
    out: list[Row] = []

    def add(figure: str, target: str, ours: str, passed: bool | None, shipped: str = "") -> None:
        out.append(Row(figure, target, ours, passed, shipped if s else ""))

    shipped_version = med(s.version) if s else ANCHOR_VERSION_WALL
    v = med(o.version)
    add(
        "`arcade --version` wall",
        f"<= 0.05 x shipped = {secs(0.05 * shipped_version)}",
        spread(o.version, secs) + f" (x{v / shipped_version:.3f})",
        v <= 0.05 * shipped_version,
        spread(s.version, secs) if s else "",
    )

    ours_walls = [r.wall for r in o.tracked]
    shipped_tracked = med([r.wall for r in s.tracked]) if s else ANCHOR_TRACKED_WALL
    w = med(ours_walls)
    add(
        "tracked command wall (ours `usage status`, shipped `whoami`), steady state",
        f"<= 0.08 x shipped = {secs(0.08 * shipped_tracked)}",
        spread(ours_walls, secs) + f" (x{w / shipped_tracked:.3f})",
        w <= 0.08 * shipped_tracked,
        spread([r.wall for r in s.tracked], secs) if s else "",
    )

    add(
        "peak memory of that command (ru_maxrss)",
        "<= 25 MiB",
        spread([r.maxrss_mib for r in o.tracked], mib),
        med([r.maxrss_mib for r in o.tracked]) <= 25,
        spread([r.maxrss_mib for r in s.tracked], mib) if s else "",
    )

    def on_off(f: Figures) -> float:
        # tracked[i] and untracked[i] ran back to back (iteration i): a paired ratio.
        return med([on.wall / off.wall for on, off in zip(f.tracked, f.untracked, strict=True)])

    def fastest_on_off(f: Figures) -> float:
        return min(r.wall for r in f.tracked) / min(r.wall for r in f.untracked)

    add(
        "tracking on/off wall ratio, interleaved (median of on/off pairs)",
        "<= 1.03",
        ratio(on_off(o)) + f" (off {secs(med([r.wall for r in o.untracked]))})",
        on_off(o) <= 1.03,
        ratio(on_off(s)) if s else "",
    )
    add(
        "  same, fastest on / fastest off (less sensitive to machine noise; informational)",
        "",
        ratio(fastest_on_off(o)),
        None,
        ratio(fastest_on_off(s)) if s else "",
    )

    add(
        "tracking call in-process, first call in a fresh process (spawn included)",
        "<= 1.0 ms",
        spread(o.call_first_ms, ms),
        med(o.call_first_ms) <= 1.0,
        spread(s.call_first_ms, ms) if s else "",
    )
    add(
        "  same, a second call in that process (informational)",
        "",
        spread(o.call_again_ms, ms),
        None,
        spread(s.call_again_ms, ms) if s else "",
    )

    def hang_extra(f: Figures) -> list[float]:
        base = med(f.hang_baseline)
        return [w - base for w in f.hang_first]

    def hang_ratio(f: Figures) -> float:
        # Median of adjacent (follow, baseline) pairs: slow drifts of a shared machine's
        # speed cancel within a pair, where a ratio of two medians keeps them.
        return med(f.hang_pairs)

    add(
        "Cloud hanging, credentials, not linked: first command, extra wall",
        "<= 2 s, once",
        spread(hang_extra(o), secs) + f" ({o.hang_lookups} lookups for {len(o.hang_first)} homes)",
        max(hang_extra(o), default=99) <= 2.0,
        spread(hang_extra(s), secs) if s else "",
    )
    add(
        "  following commands (within 5 min), wall ratio vs baseline (median of pairs)",
        "<= 1.03",
        ratio(hang_ratio(o)) + f" (follow {secs(med(o.hang_follow))})",
        hang_ratio(o) <= 1.03,
        (ratio(hang_ratio(s)) + f" (follow {secs(med(s.hang_follow))})") if s else "",
    )

    def alias_extra(f: Figures) -> list[float]:
        base = med([r.wall for r in f.tracked])
        return [w - base for w in f.alias_walls]

    add(
        "lazy alias with PostHog hanging: extra wall of the aliasing command",
        "<= 2 s",
        spread(alias_extra(o), secs),
        max(alias_extra(o), default=99) <= 2.0,
        spread(alias_extra(s), secs) if s else "",
    )
    add(
        "  then PostHog back: alias delivered once, before the first event as the principal",
        "yes",
        f"{sum(o.alias_in_order)}/{len(o.alias_in_order)} yes",
        bool(o.alias_in_order) and all(o.alias_in_order),
        f"{sum(s.alias_in_order)}/{len(s.alias_in_order)} yes" if s else "",
    )

    def sender_cpu(f: Figures) -> list[float]:
        return [x.cpu for x in f.senders]

    add(
        "one detached sender: CPU",
        "<= 0.25 CPU-s",
        spread(sender_cpu(o), cpu) + f" ({len(o.senders)} senders)",
        med(sender_cpu(o)) <= 0.25,
        (spread(sender_cpu(s), cpu) + f" ({len(s.senders)} senders)") if s else "",
    )

    def own_peaks(f: Figures) -> list[float]:
        return [x.own_peak_kib / 1024 for x in f.senders if x.own_peak_kib is not None]

    add(
        "one detached sender: peak memory (its own VmHWM)",
        "<= 40 MiB",
        spread(own_peaks(o), mib),
        med(own_peaks(o)) <= 40,
        spread(own_peaks(s), mib) if s else "",
    )
    add(
        "  same, wait4 ru_maxrss (includes the CLI's RSS at spawn; informational)",
        "",
        spread([x.maxrss_kib / 1024 for x in o.senders], mib),
        None,
        spread([x.maxrss_kib / 1024 for x in s.senders], mib) if s else "",
    )
    add(
        "one detached sender: alive, PostHog up",
        "<= 10 s",
        spread([x.alive for x in o.senders], secs),
        max((x.alive for x in o.senders), default=99) <= 10.0,
        spread([x.alive for x in s.senders], secs) if s else "",
    )
    add(
        "one detached sender: alive, PostHog hanging (max)",
        "<= 10 s hard",
        secs(max((x.alive for x in o.hang_senders), default=float("nan"))),
        max((x.alive for x in o.hang_senders), default=99) <= 10.0 + 0.05,
        secs(max((x.alive for x in s.hang_senders), default=float("nan"))) if s else "",
    )

    def burst_per_command(f: Figures) -> float:
        total = f.burst_cli_cpu + sum(x.cpu for x in f.burst_senders)
        return total / f.burst_commands - med([r.cpu for r in f.untracked])

    def burst_text(f: Figures) -> str:
        return (
            f"{cpu(burst_per_command(f))} ({f.burst_commands} cmds, {len(f.burst_senders)} senders)"
        )

    add(
        "burst: tracking CPU per command, senders included (CPU on - median CPU off)",
        "<= 0.05 CPU-s",
        burst_text(o),
        burst_per_command(o) <= 0.05,
        burst_text(s) if s else "",
    )

    def burst_senders(f: Figures) -> str:
        values = [x.cpu for x in f.burst_senders]
        return spread(values, cpu) + f", total {cpu(sum(values))}, CLIs {cpu(f.burst_cli_cpu)}"

    add(
        "  burst: CPU per sender, median [min-max] (informational)",
        "",
        burst_senders(o),
        None,
        burst_senders(s) if s else "",
    )

    def uploads(f: Figures) -> str:
        return (
            f"max {f.burst_max_in_flight} at once, {f.burst_requests} requests, "
            f"{f.burst_delivered}/{f.burst_commands} events delivered"
        )

    add(
        "burst: concurrent uploads to PostHog",
        "<= 1 uploader, all delivered",
        uploads(o),
        o.burst_max_in_flight <= 1 and o.burst_delivered == o.burst_commands,
        uploads(s) if s else "",
    )
    return out


def print_table(table: list[Row], compare: bool) -> None:
    headers = ["figure", "target", "ours (median [min-max])", "result"]
    if compare:
        headers.append("arcade-mcp 1.16.3 (median [min-max])")
    lines = []
    for r in table:
        cells = [r.figure, r.target, r.ours, {True: "PASS", False: "FAIL", None: ""}[r.passed]]
        if compare:
            cells.append(r.shipped)
        lines.append(cells)
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for cells in lines:
        print("| " + " | ".join(cells) + " |")


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc)
    load = Path("/proc/loadavg").read_text().split()[0]
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"source {commit or 'unknown'}; load average {load}; "
        f"{now:%Y-%m-%d %H:%M UTC}; nproc {os.cpu_count()}; CPU {model};"
        f" Python {platform.python_version()}; {platform.system()} {platform.release()}"
    )


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--compare", action="store_true", help="also measure arcade-mcp 1.16.3")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--keep", action="store_true", help="keep the scratch homes")
    args = parser.parse_args()
    if sys.platform != "linux":
        print("bench/run.py needs Linux (/proc, PR_SET_CHILD_SUBREAPER)", file=sys.stderr)
        return 2
    become_subreaper()
    started = time.monotonic()
    at_start = machine()
    scratch = Path(tempfile.mkdtemp(prefix="arcade-bench-"))
    guard_log = scratch / "non-loopback.log"
    plan = QUICK if args.quick else FULL
    try:
        print("building wheels and throw-away venvs ...", file=sys.stderr, flush=True)
        sides = [Side("ours", build_ours(), ("usage", "status"), guard_log)]
        if args.compare:
            sides.append(Side("shipped", build_shipped(), ("whoami",), guard_log))
        spawner = Spawner(scratch)
        problem = check_guard(spawner, sides, guard_log)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        bench = Bench(sides, plan, scratch, spawner)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("interleaved --version / tracked on / tracked off", bench.main_loop),
            ("tracking call in-process", bench.tracking_call),
            ("Arcade Cloud hanging", bench.hanging_cloud),
            ("alias with PostHog hanging", bench.alias_with_posthog_hanging),
            ("burst", bench.burst),
        ]
        for label, step in steps:
            print(f"[{time.monotonic() - started:6.1f} s] {label} ...", file=sys.stderr, flush=True)
            step()
        elapsed = time.monotonic() - started
        violations = guard_log.read_text().splitlines() if guard_log.exists() else []
        print(f"Machine at start: {at_start}")
        print(f"At the end: {machine()}")
        print(
            f"Command: uv run python bench/run.py{' --compare' if args.compare else ''}"
            f"{' --quick' if args.quick else ''}  (whole run {elapsed:.0f} s)"
        )
        print()
        print_table(rows(bench.figures), args.compare)
        print()
        print(
            f"Peak memory floor (ru_maxrss of /bin/true started the same way): "
            f"{spawner.floor_kib / 1024:.1f} MiB"
        )
        print(f"Non-loopback connection attempts (refused and logged): {len(violations)}")
        for line in violations[:10]:
            print(f"  {line}")
        failures = 0
        for name, fig in bench.figures.items():
            for failure in dict.fromkeys(fig.failures):
                failures += 1
                print(f"{name}: {failure}")
        return 1 if violations or failures else 0
    finally:
        if args.keep:
            print(f"scratch kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
