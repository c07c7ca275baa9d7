"""A long-lived process that tracks a server start and many tool calls, for the usage tests.

Run as `python tracking_process.py CALLS THREADS PAUSE ENDING`: the start, then
CALLS tool calls shared among THREADS threads released together. With a PAUSE
(seconds), the threads make their calls in rounds, together, pausing between
rounds; with 0, each thread calls as fast as it can. Every tenth call is a
failure. Then one JSON line on stdout:

- `senders`: how many `python -m arcade_usage` processes this process started,
  counted by an audit hook on `subprocess.Popen` (exact, and blind to nothing:
  every process start in Python raises that event before it happens);
- `sender_starts`: when each was started, in seconds from the first call
  (negative: for the start);
- `traffic_s`: seconds from the first call to the last one's return.

and ENDING: `exit` (a normal exit), `os_exit` (`os._exit(0)`, nothing else runs)
or `kill` (SIGKILL, right after the line is flushed).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

from arcade_usage import ServerTracker

sender_starts: list[float] = []


def count_senders(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and "arcade_usage" in list(args[1] or ()):
        sender_starts.append(time.monotonic())


def main() -> None:
    calls, threads, pause, ending = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        sys.argv[4],
    )
    sys.addaudithook(count_senders)
    tracker = ServerTracker(server_version="1.2.3")
    tracker.track_server_start(transport="stdio", tool_count=3)

    if pause and calls % threads:
        sys.exit("paced calls must be shared evenly among the threads")
    barrier = threading.Barrier(threads)

    def work(share: range) -> None:
        barrier.wait()
        for i in share:
            if pause:
                barrier.wait()  # the threads' calls of a round come together, as requests do
            if i % 10 == 9:
                tracker.track_tool_call(success=False, failure_reason=f"call {i} failed")
            else:
                tracker.track_tool_call(success=True)
            if pause:
                time.sleep(pause)

    workers = [
        threading.Thread(target=work, args=(range(n, calls, threads),)) for n in range(threads)
    ]
    first = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    traffic = time.monotonic() - first
    report = {
        "senders": len(sender_starts),
        "sender_starts": [t - first for t in sender_starts],
        "traffic_s": traffic,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    if ending == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if ending == "os_exit":
        os._exit(0)


if __name__ == "__main__":
    main()
