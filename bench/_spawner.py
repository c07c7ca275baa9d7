"""A small process that starts the measured commands: `python -I -S bench/_spawner.py`.

Linux carries the parent's peak RSS into an exec'd child's `ru_maxrss` (the
high-water mark of the memory it had before exec). Started from the benchmark
itself, a CLI would report at least the benchmark's own size; started from
this tiny process, it reports its own peak (plus this process's few MiB, the
floor printed with the results).

Protocol: one JSON request per line on stdin
(`{"argv", "env", "cwd", "out", "err", "timeout"}`), one JSON reply per line on
stdout (`{"wall", "cpu", "maxrss_kib", "returncode"}`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time


def _spawn(request: dict[str, object]) -> dict[str, object]:
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in request["env"].items()}  # type: ignore[attr-defined]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(str(request["cwd"]))
            stdin = os.open(os.devnull, os.O_RDONLY)
            out = os.open(str(request["out"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            err = os.open(str(request["err"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(stdin, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.closerange(3, 1024)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)

    def kill(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, float(request["timeout"]))  # type: ignore[arg-type]
    _, status, usage = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    return {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
        "returncode": os.waitstatus_to_exitcode(status),
    }


def main() -> None:
    for line in sys.stdin:
        reply = _spawn(json.loads(line))
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
