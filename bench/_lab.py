"""What every scenario works with: the command starter, fresh homes, loopback servers.

A scenario gets a `Lab` and returns raw samples (numbers and small records, all
JSON); it judges nothing and prints nothing. What went wrong on the way (a
command that failed, an event that never arrived) goes to `Lab.failures`, which
the run reports and turns into exit status 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from _procs import Orphan, Run, Spawner
from _sides import API_KEY, EMAIL, PRINCIPAL, ROOT, Servers, Side

sys.path.insert(0, str(ROOT / "libs" / "tests"))
from servers import FakeCloud, FakePostHog, _CloudHandler, _PostHogHandler

RETRY_AFTER_SECONDS = 60
_T = TypeVar("_T")


class _WhoamiCloudHandler(_CloudHandler):
    """FakeCloud, plus `/api/v1/auth/whoami` (arcade_core's OAuth lookup) served as validate."""

    def do_GET(self) -> None:
        if urlparse(self.path).path == "/api/v1/auth/whoami":
            self.path = "/api/v1/auth/validate"
        super().do_GET()


class _BenchPostHogHandler(_PostHogHandler):
    """FakePostHog, plus mode `ratelimit`: 429 with `Retry-After`, as PostHog answers a flood."""

    def misbehave(self, mode: str) -> bool:
        if mode == "ratelimit":
            self.reply(429, {"detail": "rate limited"}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return True
        return super().misbehave(mode)


@contextmanager
def servers(
    posthog_mode: str = "ok", cloud_mode: str = "ok"
) -> Iterator[tuple[FakePostHog, FakeCloud]]:
    """A fresh FakePostHog and FakeCloud on loopback, both knowing the bench's account."""
    posthog = FakePostHog()
    posthog.RequestHandlerClass = _BenchPostHogHandler
    cloud = FakeCloud()
    cloud.RequestHandlerClass = _WhoamiCloudHandler
    cloud.add_account(API_KEY, PRINCIPAL, EMAIL)
    cloud.add_account("bench_access_token_0001", PRINCIPAL, EMAIL)
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


def run_record(run: Run) -> dict[str, Any]:
    """What a results file keeps of a finished command."""
    return {"wall": run.wall, "cpu": run.cpu, "maxrss_kib": run.maxrss_kib}


def orphan_record(orphan: Orphan) -> dict[str, Any]:
    """What a results file keeps of a reaped detached process."""
    record = dataclasses.asdict(orphan)
    del record["pid"]
    return record


def rotated(items: Sequence[_T], i: int) -> list[_T]:
    """Alternate which goes first, so none always runs after the others."""
    return list(items) if i % 2 == 0 else list(items)[::-1]


class Lab:
    def __init__(self, spawner: Spawner, scratch: Path, quick: bool) -> None:
        self.spawner = spawner
        self.scratch = scratch
        self.quick = quick
        self.failures: list[str] = []
        self._homes = itertools.count()

    def home(self, side: Side) -> Path:
        path = self.scratch / f"{side.name}-{next(self._homes)}"
        path.mkdir()
        return path

    def prepared(self, side: Side, srv: Servers, *, credentials: bool, linked: bool) -> Path:
        home = self.home(side)
        side.prepare(home, srv, credentials=credentials, linked=linked)
        return home

    def fail(self, side: Side, text: str) -> None:
        self.failures.append(f"{side.name}: {text}")

    def command(
        self, side: Side, home: Path, srv: Servers, args: tuple[str, ...], **kw: bool
    ) -> Run:
        result = self.spawner.run([side.arcade, *args], side.env(home, srv, **kw), home)
        if result.returncode != 0:
            self.fail(
                side,
                f"`arcade {' '.join(args)}` exited {result.returncode}: "
                + result.stderr.strip()[-300:],
            )
        return result

    def settled(
        self, side: Side, home: Path, srv: Servers, args: tuple[str, ...], **kw: bool
    ) -> tuple[Run, list[Orphan]]:
        """Run a command, then wait for the senders it left, so the next run has the CPU."""
        result = self.command(side, home, srv, args, **kw)
        return result, self.spawner.reap(result.orphans)

    def python(
        self,
        side: Side,
        home: Path,
        srv: Servers,
        argv: list[str],
        extra_env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[Run, list[Orphan]]:
        """Run `python argv...` in the side's venv, then reap everything it left behind."""
        env = {**side.env(home, srv), **(extra_env or {})}
        result = self.spawner.run([side.python, *argv], env, home, timeout=timeout)
        return result, self.spawner.reap(result.orphans)


def count_lines(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return len(path.read_text().splitlines())
    return 0
