"""Where a tool call's CPU goes on the caller's threads, beside posthog's client.

    uv run python bench/caller_cost.py [--scratch DIR] [--calls N]

One process tracks N tool calls with `ServerTracker`, from one thread, then from eight
(N/8 each), with each part of the outbox's filing taken out in turn: the entry file
(create, write, close), the sequence number (`.seq`), both. Each line gives the CPU of
the calling threads alone per call (not the detached sender's, nor posthog's consumer
thread's), and their voluntary context switches per call (a system call that lets go of
the GIL while other threads wait for it costs about two). The anchor: posthog's client's
`capture` from the same threads, in the same run. Each run starts with nothing queued.

A part taken out is what another on-disk format could save, not a working variant:
events filed without it are not delivered. Linux (per-thread rusage).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "libs" / "tests"))
from servers import FakePostHog  # noqa: E402

REPEATS = 3


def _run(call: Callable[[], None], threads: int, calls: int) -> tuple[float, float]:
    """(CPU µs per call, voluntary context switches per call) of the calling threads alone,
    `threads` of them making `calls` together."""
    barrier = threading.Barrier(threads)
    spent: list[tuple[float, int]] = []

    def work() -> None:
        barrier.wait()
        cpu, switches = time.thread_time(), _switches()
        for _ in range(calls // threads):
            call()
        spent.append((time.thread_time() - cpu, _switches() - switches))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(c for c, _ in spent) / calls * 1e6, sum(s for _, s in spent) / calls


def _switches() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--calls", type=int, default=8000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="caller-cost-", dir=args.scratch))
    posthog = FakePostHog()
    posthog.start()
    os.environ.update(
        ARCADE_WORK_DIR=str(home / ".arcade"),
        ARCADE_USAGE_POSTHOG_HOST=posthog.url,
        ARCADE_USAGE_POSTHOG_API_KEY="phc_bench",
    )
    try:
        _measure(args.calls)
    finally:
        posthog.stop()
        shutil.rmtree(home, ignore_errors=True)


def _measure(calls: int) -> None:
    import posthog

    from arcade_usage import ServerTracker, _outbox

    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="http", host="127.0.0.1", port=8000, tool_count=3)
    client = posthog.Posthog(
        os.environ["ARCADE_USAGE_POSTHOG_API_KEY"], host=os.environ["ARCADE_USAGE_POSTHOG_HOST"]
    )
    properties = {"arcade_mcp_server_version": "1.2.3", "is_execution_success": True}

    def ours() -> None:
        tracker.track_tool_call(success=True, failure_reason=None)

    def theirs() -> None:
        client.capture("MCP tool called", distinct_id="bench", properties=properties)

    outbox = _outbox.Outbox
    parts: dict[str, tuple[object, str, object]] = {
        "entry file": (_outbox, "_write_entry", lambda path, data, durable: True),
        "sequence number": (outbox, "_next_seq", lambda self: 1),
    }
    rows: list[tuple[str, Callable[[], None], list[str]]] = [
        ("posthog's client: capture", theirs, []),
        ("ours: the whole call", ours, []),
        *((f"ours, without the {part}", ours, [part]) for part in parts),
        ("ours, without both", ours, list(parts)),
    ]

    def settle() -> None:
        """Each run starts with nothing queued: posthog's queue sent, our outbox drained."""
        client.flush()
        _drained(_outbox.Outbox())

    for _ in range(200):  # warm: the identity made, a sender accepting
        ours()
        theirs()
    print(
        f"{calls} calls, median of {REPEATS}; CPU of the calling threads per call (µs), "
        "voluntary context switches per call"
    )
    print(f"{'':40} {'1 thread':>10} {'8 threads':>10} {'switches, 8':>12}")
    for label, call, removed in rows:
        saved = {part: getattr(parts[part][0], parts[part][1]) for part in removed}
        for part in removed:
            owner, name, stub = parts[part]
            setattr(owner, name, stub)
        try:
            one, eight = [], []
            for _ in range(REPEATS):
                one.append(_run(call, 1, calls)[0])
                settle()
                eight.append(_run(call, 8, calls))
                settle()
        finally:
            for part, original in saved.items():
                setattr(parts[part][0], parts[part][1], original)
        print(
            f"{label:40} {statistics.median(one):10.1f} "
            f"{statistics.median(e[0] for e in eight):10.1f} "
            f"{statistics.median(e[1] for e in eight):12.2f}"
        )
    client.shutdown()


def _drained(outbox: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while outbox.count() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)


if __name__ == "__main__":
    main()
