"""What each figure is, computed from a results file's raw samples, and its target.

A `Target` is data: the text shown in the table and the check come from the same
fields, so the two cannot disagree. A `Figure` computes, for one side, the value
its target checks and the text shown. A `Table` lists figures and the sides shown
side by side; only `judged` (ours) gets a PASS/FAIL.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Cell = tuple[float, str]  # (the value the target checks, the text shown)
Fmt = Callable[[float], str]


def secs(v: float) -> str:
    return f"{v:.3f} s"


def secs2(v: float) -> str:
    return f"{v:.2f} s"


def mib(v: float) -> str:
    return f"{v:.1f} MiB"


def ms(v: float) -> str:
    return f"{v:.2f} ms"


def cpu(v: float) -> str:
    return f"{v:.3f} CPU-s"


def ratio(v: float) -> str:
    return f"{v:.3f}"


def times(v: float) -> str:
    return f"{v:.2f}x"


def count(v: float) -> str:
    return f"{v:.0f}"


def pct(v: float) -> str:
    return f"{v:.0%}"


def per_s(v: float) -> str:
    return f"{v:.2f}/s"


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank: p99 of 300 calls is the 297th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def spread(values: list[float], fmt: Fmt) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(med(values))} [{fmt(min(values))}-{fmt(max(values))}]"


@dataclass(frozen=True)
class Target:
    """`value op limit`, or, with `relative_to`, `value op limit x (that side's value)`.

    `anchor` stands in for that side's value when it was not measured (the issue's
    figure for it). `fmt` formats both the limit and the value.
    """

    limit: float
    fmt: Fmt
    op: str = "<="
    relative_to: str | None = None
    anchor: float | None = None

    def threshold(self, reference: float | None) -> float | None:
        if self.relative_to is None:
            return self.limit
        base = reference if reference is not None else self.anchor
        return None if base is None else self.limit * base

    def text(self, reference: float | None) -> str:
        threshold = self.threshold(reference)
        if self.relative_to is None:
            return f"{self.op} {self.fmt(self.limit)}"
        shown = self.fmt(threshold) if threshold is not None else "n/a"
        measured = "" if reference is not None else " (its figure in the issue)"
        return f"{self.op} {self.limit:g} x {self.relative_to}{measured} = {shown}"

    def met(self, value: float, reference: float | None) -> bool | None:
        threshold = self.threshold(reference)
        if threshold is None:
            return None
        if math.isnan(value):
            return False
        return value <= threshold if self.op == "<=" else value >= threshold


class Samples:
    """A results file's samples: `get(scenario, side)` is that side's dict, or {}."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.raw: dict[str, dict[str, dict[str, Any]]] = results.get("samples", {})

    def get(self, scenario: str, side: str) -> dict[str, Any]:
        return self.raw.get(scenario, {}).get(side, {})


Compute = Callable[[Samples, str], Cell | None]


@dataclass(frozen=True)
class Figure:
    label: str
    compute: Compute
    target: Target | None = None


@dataclass(frozen=True)
class Table:
    title: str
    sides: list[tuple[str, str]]  # (side in the samples, column header)
    figures: list[Figure]
    judged: str = "ours"


# -- the CLI: commands, slow networks, bursts ------------------------------------------------


def _walls(records: list[dict[str, Any]]) -> list[float]:
    return [r["wall"] for r in records]


def _listed(scenario: str, key: str, fmt: Fmt, pick: Callable[[list[float]], float]) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        values = s.get(scenario, side).get(key)
        if not values:
            return None
        return pick(values), spread(values, fmt)

    return compute


def _version(s: Samples, side: str) -> Cell | None:
    return _listed("commands", "version", secs, med)(s, side)


def _tracked_wall(s: Samples, side: str) -> Cell | None:
    walls = _walls(s.get("commands", side).get("tracked", []))
    return (med(walls), spread(walls, secs)) if walls else None


def _tracked_rss(s: Samples, side: str) -> Cell | None:
    rss = [r["maxrss_kib"] / 1024 for r in s.get("commands", side).get("tracked", [])]
    return (med(rss), spread(rss, mib)) if rss else None


def _on_off(s: Samples, side: str) -> Cell | None:
    # tracked[i] and untracked[i] ran back to back: a paired ratio cancels the machine's drift.
    got = s.get("commands", side)
    pairs = list(zip(_walls(got.get("tracked", [])), _walls(got.get("untracked", [])), strict=True))
    if not pairs:
        return None
    value = med([on / off for on, off in pairs])
    return value, f"{ratio(value)} (off {secs(med([off for _, off in pairs]))})"


def _fastest_on_off(s: Samples, side: str) -> Cell | None:
    got = s.get("commands", side)
    on, off = _walls(got.get("tracked", [])), _walls(got.get("untracked", []))
    if not on or not off:
        return None
    value = min(on) / min(off)
    return value, ratio(value)


def _hang_extra(s: Samples, side: str) -> Cell | None:
    got = s.get("hanging", side)
    if not got.get("hang_first"):
        return None
    base = med(got["hang_baseline"])
    extra = [w - base for w in got["hang_first"]]
    lookups = f" ({got['hang_lookups']} lookups for {got['hang_homes']} homes)"
    return max(extra), spread(extra, secs) + lookups


def _hang_follow(s: Samples, side: str) -> Cell | None:
    got = s.get("hanging", side)
    if not got.get("hang_pairs"):
        return None
    value = med(got["hang_pairs"])
    return value, f"{ratio(value)} (follow {secs(med(got['hang_follow']))})"


def _alias_extra(s: Samples, side: str) -> Cell | None:
    walls = s.get("hanging", side).get("alias_walls")
    tracked = _walls(s.get("commands", side).get("tracked", []))
    if not walls or not tracked:
        return None
    extra = [w - med(tracked) for w in walls]
    return max(extra), spread(extra, secs)


def _alias_order(s: Samples, side: str) -> Cell | None:
    got = s.get("hanging", side)
    flags = got.get("alias_in_order")
    if not flags:
        return None
    after = got.get("alias_commands")
    commands = f" (after {', '.join(map(str, after))} commands)" if after else ""
    return sum(flags) / len(flags), f"{sum(flags)}/{len(flags)} yes{commands}"


def _senders(s: Samples, side: str) -> list[dict[str, Any]]:
    return list(s.get("commands", side).get("senders", []))


def _sender_cpu(s: Samples, side: str) -> Cell | None:
    values = [x["cpu"] for x in _senders(s, side)]
    if not values:
        return None
    return med(values), spread(values, cpu) + f" ({len(values)} senders)"


def _sender_peak(s: Samples, side: str) -> Cell | None:
    peaks = [x["own_peak_kib"] / 1024 for x in _senders(s, side) if x["own_peak_kib"]]
    return (med(peaks), spread(peaks, mib)) if peaks else None


def _sender_rss(s: Samples, side: str) -> Cell | None:
    values = [x["maxrss_kib"] / 1024 for x in _senders(s, side)]
    return (med(values), spread(values, mib)) if values else None


def _sender_alive(s: Samples, side: str) -> Cell | None:
    values = [x["alive"] for x in _senders(s, side)]
    return (max(values), spread(values, secs)) if values else None


def _sender_alive_hanging(s: Samples, side: str) -> Cell | None:
    values = [x["alive"] for x in s.get("hanging", side).get("alias_senders", [])]
    return (max(values), secs(max(values))) if values else None


def _burst_per_command(s: Samples, side: str) -> Cell | None:
    got = s.get("burst", side)
    off = [r["cpu"] for r in s.get("commands", side).get("untracked", [])]
    if not got or not off:
        return None
    total = got["cli_cpu"] + sum(x["cpu"] for x in got["senders"])
    value = total / got["commands"] - med(off)
    return value, f"{cpu(value)} ({got['commands']} cmds, {len(got['senders'])} senders)"


def _burst_senders(s: Samples, side: str) -> Cell | None:
    got = s.get("burst", side)
    if not got:
        return None
    values = [x["cpu"] for x in got["senders"]]
    text = spread(values, cpu) + f", total {cpu(sum(values))}, CLIs {cpu(got['cli_cpu'])}"
    return med(values) if values else 0.0, text


def _burst_in_flight(s: Samples, side: str) -> Cell | None:
    got = s.get("burst", side)
    if not got:
        return None
    return got["max_in_flight"], f"max {got['max_in_flight']} at once, {got['requests']} requests"


def _burst_delivered(s: Samples, side: str) -> Cell | None:
    got = s.get("burst", side)
    if not got:
        return None
    return got["delivered"] / got["commands"], f"{got['delivered']}/{got['commands']}"


CLI = Table(
    "The CLI: a user's commands",
    [("ours", "ours (median [min-max])"), ("shipped", "arcade-mcp 1.16.3 (median [min-max])")],
    [
        Figure(
            "`arcade --version` wall",
            _version,
            Target(0.05, secs, relative_to="shipped", anchor=1.30),
        ),
        Figure(
            "tracked command wall (ours `usage status`, shipped `whoami`), steady state",
            _tracked_wall,
            Target(0.08, secs, relative_to="shipped", anchor=1.30),
        ),
        Figure("peak memory of that command (ru_maxrss)", _tracked_rss, Target(25, mib)),
        Figure(
            "tracking on/off wall ratio, interleaved (median of on/off pairs)",
            _on_off,
            Target(1.03, ratio),
        ),
        Figure(
            "  same, fastest on / fastest off (less sensitive to machine noise; informational)",
            _fastest_on_off,
        ),
        Figure(
            "tracking call in-process, first call in a fresh process (spawn included)",
            _listed("commands", "call_first_ms", ms, med),
            Target(1.0, ms),
        ),
        Figure(
            "  same, a second call in that process (informational)",
            _listed("commands", "call_again_ms", ms, med),
        ),
        Figure(
            "Cloud hanging, credentials, not linked: first command, extra wall (max checked)",
            _hang_extra,
            Target(2.0, secs),
        ),
        Figure(
            "  following commands (within 5 min), wall ratio vs baseline (median of pairs)",
            _hang_follow,
            Target(1.03, ratio),
        ),
        Figure(
            "lazy alias with PostHog hanging: extra wall of the aliasing command (max checked)",
            _alias_extra,
            Target(2.0, secs),
        ),
        Figure(
            "  then PostHog back, commands until an event arrives: alias once, before it",
            _alias_order,
            Target(1.0, pct, op=">="),
        ),
        Figure("one detached sender: CPU", _sender_cpu, Target(0.25, cpu)),
        Figure("one detached sender: peak memory (its own VmHWM)", _sender_peak, Target(40, mib)),
        Figure(
            "  same, wait4 ru_maxrss (includes the CLI's RSS at spawn; informational)",
            _sender_rss,
        ),
        Figure(
            "one detached sender: alive, PostHog up (max checked)",
            _sender_alive,
            Target(10.0, secs),
        ),
        Figure(
            "one detached sender: alive, PostHog hanging (max; hard exit at 10 s)",
            _sender_alive_hanging,
            Target(10.05, secs2),
        ),
        Figure(
            "burst: tracking CPU per command, senders included (CPU on - median CPU off)",
            _burst_per_command,
            Target(0.05, cpu),
        ),
        Figure("  burst: CPU per sender, median [min-max] (informational)", _burst_senders),
        Figure("burst: uploads to PostHog at once", _burst_in_flight, Target(1, count)),
        Figure("burst: events delivered", _burst_delivered, Target(1.0, pct, op=">=")),
    ],
)


# -- senders alone ---------------------------------------------------------------------------


def _capture_cost(n: int) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        got = s.get("senders", side)
        if str(n) not in got or "0" not in got:
            return None
        value = med(got[str(n)]["cpu"]) - med(got["0"]["cpu"])
        peak = med(got[str(n)]["peak_kib"]) / 1024
        return value, f"{cpu(value)} ({cpu(value / n)} per event; sender peak {mib(peak)})"

    return compute


def _capture_processes(n: int) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        got = s.get("senders", side).get(str(n))
        if not got:
            return None
        delivered = f", {med(got['delivered']):.0f}/{n} delivered"
        return max(got["processes"]), spread(got["processes"], count) + delivered

    return compute


SENDERS = Table(
    "Senders alone: one process captures N events and exits at once",
    [("ours", "ours (median [min-max])")],
    [
        Figure("1 event: CPU of every process, minus capturing nothing", _capture_cost(1)),
        Figure("1 event: processes started", _capture_processes(1)),
        Figure("50 events: CPU of every process, minus capturing nothing", _capture_cost(50)),
        Figure(
            "50 events: processes started (max checked)", _capture_processes(50), Target(1, count)
        ),
    ],
)


# -- a long-lived MCP server -----------------------------------------------------------------

SERVER_EVENTS = 301  # the start and 300 tool calls


def _server_runs(s: Samples, side: str, ending: str) -> list[dict[str, Any]]:
    return list(s.get("server", side).get(ending, []))


def _server_cpu(ending: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _server_runs(s, side, ending)
        base = [r["cpu"] for r in _server_runs(s, "baseline", "exit")]
        if not runs or not base:
            return None
        values = [r["cpu"] - med(base) for r in runs]
        return med(values), spread(values, cpu)

    return compute


def _call_quantile(q: float) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        calls = [
            c for e in ("exit", "kill") for r in _server_runs(s, side, e) for c in r["call_ms"]
        ]
        if not calls:
            return None
        value = quantile(calls, q)
        return value, ms(value)

    return compute


def _start_ms(s: Samples, side: str) -> Cell | None:
    values = [r["start_ms"] for e in ("exit", "kill") for r in _server_runs(s, side, e)]
    return (max(values), spread(values, ms)) if values else None


def _start_hanging(s: Samples, side: str) -> Cell | None:
    values = [v / 1000 for v in s.get("server", side).get("start_hanging_ms", [])]
    return (max(values), spread(values, secs)) if values else None


def _requests_per_s(s: Samples, side: str) -> Cell | None:
    runs = _server_runs(s, side, "exit")
    if not runs:
        return None
    rates = [r["requests"] / r["traffic_s"] for r in runs]
    counts = ", ".join(str(r["requests"]) for r in runs)
    return med(rates), f"{per_s(med(rates))} ({counts} requests in {runs[0]['traffic_s']:.1f} s)"


def _server_delivered(ending: str, key: str = "delivered") -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _server_runs(s, side, ending)
        if not runs:
            return None
        # Exactly once: a duplicate counts as a miss.
        worst = min((r[key] if r["duplicates"] == 0 else -1) / SERVER_EVENTS for r in runs)
        shown = ", ".join(
            f"{r[key]}/{SERVER_EVENTS}" + (f" ({r['duplicates']} dup)" if r["duplicates"] else "")
            for r in runs
        )
        return worst, shown

    return compute


def _server_processes(s: Samples, side: str) -> Cell | None:
    values = [r["processes"] for r in _server_runs(s, side, "exit")]
    return (max(values), spread(values, count)) if values else None


SERVER = Table(
    "A long-lived MCP server: start + 300 tool calls at 150/s",
    [
        ("ours", "ours: arcade_usage.ServerTracker"),
        ("posthog", "posthog-python's in-process client"),
        ("mcp-server", "arcade-mcp-server's ServerTracker"),
    ],
    [
        Figure(
            "CPU of every process started, normal exit (minus the same driver tracking nothing)",
            _server_cpu("exit"),
            Target(2.0, cpu, relative_to="posthog"),
        ),
        Figure(
            "  same, SIGKILL after the last call (ours: one later sender included; informational)",
            _server_cpu("kill"),
        ),
        Figure("caller's thread per tool call, p50 (informational)", _call_quantile(0.50)),
        Figure("caller's thread per tool call, p99", _call_quantile(0.99), Target(1.0, ms)),
        Figure("server start on the caller's thread, services up (informational)", _start_ms),
        Figure(
            "server start with Arcade Cloud and PostHog hanging (credentials, not linked)",
            _start_hanging,
            Target(2.0, secs),
        ),
        Figure(
            "requests PostHog received per second of traffic, normal exit",
            _requests_per_s,
            Target(1.5, per_s),
        ),
        Figure(
            "events delivered exactly once, normal exit (worst run checked)",
            _server_delivered("exit"),
            Target(1.0, pct, op=">="),
        ),
        Figure(
            "events delivered exactly once after SIGKILL (ours: after one later sender)",
            _server_delivered("kill"),
            Target(1.0, pct, op=">="),
        ),
        Figure(
            "  same, before ours' later sender (informational)",
            _server_delivered("kill", "delivered_before_later_sender"),
        ),
        Figure("Python processes started, normal exit (informational)", _server_processes),
    ],
    judged="ours",
)


# -- PostHog on a bad day --------------------------------------------------------------------


def _outage_cpu(condition: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        values = s.get("outage", side).get(f"cpu_{condition}")
        return (med(values), spread(values, cpu)) if values else None

    return compute


def _outage_ratio(condition: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        got = s.get("outage", side)
        bad, good = got.get(f"cpu_{condition}"), got.get("cpu_ok")
        if not bad or not good:
            return None
        # Commands of one round ran back to back: a paired ratio, as elsewhere.
        value = med([b / g for b, g in zip(bad, good, strict=True)])
        return value, f"{ratio(value)} ({cpu(med(bad))} vs {cpu(med(good))})"

    return compute


def _ratelimit_requests(s: Samples, side: str) -> Cell | None:
    got = s.get("outage", side)
    if "ratelimit_requests" not in got:
        return None
    requests = got["ratelimit_requests"]
    return requests, f"{requests} requests for {got['ratelimit_commands']} commands"


def _ratelimit_cpu(s: Samples, side: str) -> Cell | None:
    value = s.get("outage", side).get("ratelimit_cpu")
    return (value, cpu(value)) if value is not None else None


OUTAGE = Table(
    "PostHog on a bad day: commands in a row, CPU per command with every process included",
    [("ours", "ours (median [min-max])")],
    [
        Figure("good day (PostHog answers 200)", _outage_cpu("ok")),
        Figure(
            "PostHog answering 503: CPU per command vs a good day (median of rounds)",
            _outage_ratio("error"),
            Target(1.5, ratio),
        ),
        Figure(
            "PostHog refusing connections: CPU per command vs a good day (median of rounds)",
            _outage_ratio("refused"),
            Target(1.5, ratio),
        ),
        Figure(
            "429 with Retry-After: 60, commands in a row: requests reaching PostHog",
            _ratelimit_requests,
            Target(1, count),
        ),
        Figure("  same, CPU per command (informational)", _ratelimit_cpu),
    ],
)

# -- busy servers: many processes x threads, a pre-fork server ------------------------------


def _busy_runs(s: Samples, side: str, scenario: str, key: str) -> list[dict[str, Any]]:
    return list(s.get(scenario, side).get(key, []))


def _busy_delivered(scenario: str, key: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        if not runs:
            return None
        # Exactly once: a duplicate counts as a miss.
        worst = min((r["delivered"] if r["duplicates"] == 0 else -1) / r["events"] for r in runs)
        shown = ", ".join(
            f"{r['delivered']}/{r['events']}"
            + (f" ({r['duplicates']} dup)" if r["duplicates"] else "")
            for r in runs
        )
        return worst, shown

    return compute


def _busy_cpu(scenario: str, key: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        base = [r["cpu"] for r in _busy_runs(s, "baseline", scenario, key)]
        if not runs or not base:
            return None
        values = [r["cpu"] - med(base) for r in runs]
        return med(values), spread(values, cpu)

    return compute


def _busy_senders_cpu(scenario: str, key: str) -> Compute:
    """The detached senders' part of `_busy_cpu` (posthog's client has none)."""

    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        values = [r["senders_cpu"] for r in runs if "senders_cpu" in r]
        if not values or side != "ours":
            return None
        return med(values), spread(values, cpu)

    return compute


def _busy_call(scenario: str, key: str, q: float) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        calls = [c for r in _busy_runs(s, side, scenario, key) for c in r["call_ms"]]
        if not calls:
            return None
        value = quantile(calls, q)
        return value, ms(value)

    return compute


def _busy_rate(scenario: str, key: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        if not runs:
            return None
        rates = [(r["events"] - 1) / r["traffic_s"] for r in runs if r["traffic_s"] > 0]
        return (med(rates), spread(rates, per_s)) if rates else None

    return compute


def _busy_settled(scenario: str, key: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        if not runs:
            return None
        values = [r["settled_s"] for r in runs]
        senders = ", ".join(str(r["processes"]) for r in runs)
        requests = ", ".join(str(r["requests"]) for r in runs)
        return max(values), f"{spread(values, secs2)} ({senders} senders; {requests} requests)"

    return compute


def _busy_hung(scenario: str, key: str) -> Compute:
    def compute(s: Samples, side: str) -> Cell | None:
        runs = _busy_runs(s, side, scenario, key)
        if not runs:
            return None
        hung = [r["hung"] for r in runs]
        return max(hung), ", ".join(str(h) for h in hung)

    return compute


BUSY = Table(
    "Busy servers: tool calls as fast as they go (median [min-max] of runs)",
    [("ours", "ours: arcade_usage.ServerTracker"), ("posthog", "posthog-python's client")],
    [
        Figure(
            "4 processes x 8 threads x 500 calls: events delivered exactly once (worst run)",
            _busy_delivered("busy", "processes"),
            Target(1.0, pct, op=">="),
        ),
        Figure(
            "  same, from the last call to every process gone, senders included (informational)",
            _busy_settled("busy", "processes"),
        ),
        Figure(
            "  same, CPU of every process, minus the driver tracking nothing (informational)",
            _busy_cpu("busy", "processes"),
        ),
        Figure(
            "  same, caller's thread per call, p99 (informational)",
            _busy_call("busy", "processes", 0.99),
        ),
        Figure(
            "  same, calls per second, all processes together (informational)",
            _busy_rate("busy", "processes"),
        ),
        Figure(
            "1 process x 8 threads x 1,000 calls: caller's thread per call, p99",
            _busy_call("busy", "threads", 0.99),
            Target(2.0, ms, relative_to="posthog"),
        ),
        Figure(
            "  same, p50 (informational)",
            _busy_call("busy", "threads", 0.50),
        ),
        Figure(
            "  same, CPU of every process, minus the driver tracking nothing",
            _busy_cpu("busy", "threads"),
            Target(1.5, cpu, relative_to="posthog"),
        ),
        Figure(
            "  same, of which the detached senders (informational)",
            _busy_senders_cpu("busy", "threads"),
        ),
        Figure(
            "  same, events delivered exactly once (worst run)",
            _busy_delivered("busy", "threads"),
            Target(1.0, pct, op=">="),
        ),
        Figure(
            "  same, calls per second (informational)",
            _busy_rate("busy", "threads"),
        ),
    ],
)

PREFORK = Table(
    "A pre-fork server: master 8 threads x 250 calls while it forks 4 workers of 8 x 250",
    [("ours", "ours: arcade_usage.ServerTracker"), ("posthog", "posthog-python's client")],
    [
        Figure(
            "workers hung (killed after 30 s), each run",
            _busy_hung("prefork", "runs"),
            Target(0, count),
        ),
        Figure(
            "events delivered exactly once (worst run)",
            _busy_delivered("prefork", "runs"),
            Target(1.0, pct, op=">="),
        ),
        Figure(
            "from the last call to every process gone, senders included (informational)",
            _busy_settled("prefork", "runs"),
        ),
        Figure(
            "CPU of every process, minus the driver tracking nothing (informational)",
            _busy_cpu("prefork", "runs"),
        ),
        Figure(
            "caller's thread per call, p99 (informational)",
            _busy_call("prefork", "runs", 0.99),
        ),
    ],
)

TABLES = {
    "commands": CLI,
    "senders": SENDERS,
    "server": SERVER,
    "outage": OUTAGE,
    "busy": BUSY,
    "prefork": PREFORK,
}
# Which scenarios feed each table (a table is shown when any of them ran).
SOURCES = {
    "commands": ("commands", "hanging", "burst"),
    "senders": ("senders",),
    "server": ("server",),
    "outage": ("outage",),
    "busy": ("busy",),
    "prefork": ("prefork",),
}
