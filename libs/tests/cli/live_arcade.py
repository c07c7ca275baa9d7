"""A real `arcade` process a test talks to while it runs: its lines, a signal, its end."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from types import TracebackType
from typing import IO

from helpers import ARCADE


class LiveArcade:
    """`arcade ARGS` started in this test's environment, stdout read line by line on a thread.

    Use it as a context manager: the process is killed (if still running) and
    reaped on the way out, whatever the test did.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(ARCADE), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        self._stderr: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def _pump_stderr(self, stream: IO[str]) -> None:
        self._stderr.append(stream.read())

    def wait_for_line(self, prefix: str, timeout: float = 15) -> str:
        """The next stdout line that starts with `prefix` (stripped); fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting with {prefix!r}: {self._seen}") from None
            self._seen.append(line)
            if line.startswith(prefix):
                return line.strip()

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal sends it."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 15) -> tuple[int, str, str]:
        """Wait for the exit; (exit code, all of stdout, all of stderr)."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(10)
        while not self._lines.empty():
            self._seen.append(self._lines.get())
        return code, "".join(self._seen), "".join(self._stderr)

    def __enter__(self) -> LiveArcade:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
