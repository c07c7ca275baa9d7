"""Fixtures shared by every test: isolation, the loopback servers, running `arcade`.

And the suite's own bookkeeping: the `versions` subset (VERSIONS_MODULES), the
`ARCADE_TEST_ROUNDS` check, and the count of inconclusive skips.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arcade_usage import CI_VARIABLES
from helpers import INCONCLUSIVE, busy_cpus, check_rounds_setting, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

TESTS = Path(__file__).resolve().parent
QUICK_TIMINGS = "life=6,request=2.5,linger=0.2,interval=0.2,backoff=0.5"
"""The protocol's timings in every test (`ARCADE_USAGE_TIMINGS`): a sender lives 6 s, not
10, lingers 0.2 s, paces a trickle at 0.2 s and backs off 0.5 s first, so that no test
waits out production's seconds where they are not what it proves. The relations between
them hold (arcade_usage checks them); the tests that prove the production figures (pacing,
back-off, life) ask for `production_timings`."""
PRODUCTION_PACE = "linger=0.2"
"""Production's life, request timeout, pacing and back-off; only the linger is short."""

VERSIONS_MODULES = (
    # What changes from one Python (or one dependency's release) to the next:
    "test_public_names.py",  # the lazy name tables, module __getattr__, TYPE_CHECKING
    "usage/test_usage_api.py",  # lazy loading, the lean hand-over path
    "usage/test_usage_imports.py",  # what a command imports, and its start-up budget
    "usage/test_usage_typer.py",  # typer and click: exit codes, errors, the wrapped app
    "e2e/test_typer_lowest.py",  # typer 0.16 (Arcade's pin): annotations as each Python has them
    "usage/test_usage_delivery.py",  # the detached sender end to end: httpx, posthog, signals
    "identity/test_identity_platforms.py",  # os names and flags, as each platform gives them
    "e2e/test_windows_surface.py",  # the commands and senders with Windows' os surface
    "e2e/test_cli_packaging.py",  # the wheels build, install and run in a fresh venv
)
"""The modules of `pytest -m versions`, the subset CI runs on the Pythons other than the
default and the lowest-versions one (which run everything): paths under libs/tests."""

STRICT_SKIPS = os.environ.get("ARCADE_TEST_STRICT_SKIPS") == "1"  # before the fixture clears it

# Nothing a test starts may reach a real host: until a test asks for a fake
# server, both URLs point at a loopback port nobody listens on.
DEAD_URL = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private home and work dir, no opt-out or CI variables, loopback-only URLs."""
    for name in list(os.environ):
        if name.startswith("ARCADE_") or name == "DO_NOT_TRACK" or name in CI_VARIABLES:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # ARCADE_WORK_DIR names the configuration folder itself (as arcade-core reads it);
    # it is not created here, so a test sees what tracking creates.
    monkeypatch.setenv("ARCADE_WORK_DIR", str(home / ".arcade"))
    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", DEAD_URL)
    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_API_KEY", "phc_test")
    monkeypatch.setenv("ARCADE_USAGE_TIMINGS", QUICK_TIMINGS)
    monkeypatch.setenv("ARCADE_CLOUD_URL", DEAD_URL)
    # A second fence: anything that would still go elsewhere meets a dead loopback
    # proxy (requests and httpx both honour these), while loopback stays direct.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, DEAD_URL)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


@pytest.fixture
def production_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that proves a production figure (requests per second of traffic, the
    back-off's steps, the sender's life): those timings, with a short linger only."""
    monkeypatch.setenv("ARCADE_USAGE_TIMINGS", PRODUCTION_PACE)


@pytest.fixture
def work_dir(isolated_env: Path) -> Path:
    """`ARCADE_WORK_DIR`: the configuration folder itself, where the files live."""
    return isolated_env / ".arcade"


@pytest.fixture
def arcade_dir(work_dir: Path) -> Path:
    """The same folder as `work_dir`, by the name a test about its files reads best with."""
    return work_dir


@pytest.fixture
def posthog(monkeypatch: pytest.MonkeyPatch, work_dir: Path) -> Iterator[FakePostHog]:
    server = FakePostHog()
    server.start()
    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", server.url)
    try:
        yield server
    finally:
        # The test has asserted what it saw. PostHog now takes everything and stays up
        # until the test's senders are done, so that none is left waiting out a back-off
        # that a server stopped under it caused (`senders_finish` then finds them gone).
        server.mode = "ok"
        server.rate_limit(0, None)
        server.release.set()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not sender_pids(work_dir), timeout=12)
        server.stop()


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloud]:
    server = FakeCloud()
    server.start()
    monkeypatch.setenv("ARCADE_CLOUD_URL", server.url)
    try:
        yield server
    finally:
        server.stop()


# -- the suite's bookkeeping ----------------------------------------------------------------


@pytest.fixture
def arcade_core_config() -> Iterator[None]:
    """arcade-core's `Config`, with no context chosen in this process (arcade-core reads
    ARCADE_CONTEXT once, at import): for the tests that write credentials through it."""
    from arcade_core import config_model

    saved = config_model._env_context
    config_model._env_context = None
    config_model.select_context(None)
    yield
    config_model._env_context = saved


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, in the controller
        compile_our_sources()
    # pytest keeps the test modules it rewrites (for its assertions) as bytecode beside
    # them, but writes none under PYTHONDONTWRITEBYTECODE=1: each worker would rewrite
    # them all again (1.8 of 5.4 CPU-s of collecting). Only this process writes them;
    # what the tests start keeps the environment's setting.
    sys.dont_write_bytecode = False
    problem = check_rounds_setting()
    if problem:
        raise pytest.UsageError(problem)
    missing = [name for name in VERSIONS_MODULES if not (TESTS / name).is_file()]
    if missing:
        raise pytest.UsageError(f"VERSIONS_MODULES names modules that do not exist: {missing}")


def compile_our_sources() -> None:
    """Bytecode for the workspace's own packages and the tests' helper modules.

    uv compiles what it installs, but the workspace's packages are installed as links to
    their sources, which an interpreter run with PYTHONDONTWRITEBYTECODE=1 (set on many
    CI machines, and here) compiles again in every process: half of what each `arcade`
    command a test runs costs (0.11 CPU-s, 0.055 compiled). Stale files are compiled
    again here and, meanwhile, ignored by Python (their source is newer).
    """
    import compileall

    for folder in (*TESTS.parent.glob("*/src"), TESTS):
        compileall.compile_dir(folder, quiet=2, workers=1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per CPU on an idle machine, one per CPU on a busy one.

    Many tests wait on other processes (a sender's linger, a command's exit) rather than
    compute, so one worker per CPU leaves the CPUs idle part of the time (2 CPUs: 4 min
    37 s with 2 workers, 2 min 28 s with 4). Three per CPU were no faster (the suite is
    then bound by CPU) and starved the twelve-process races past their 2 s lookups in
    most runs; on a machine already busy, more workers only starve the tests that time
    a budget.
    """
    cpus = os.cpu_count() or 1
    if busy_cpus() >= cpus / 2:
        return cpus
    return min(2 * cpus, 32)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    subset = {TESTS / name for name in VERSIONS_MODULES}
    for item in items:
        if item.path in subset:
            item.add_marker(pytest.mark.versions)


OUTCOMES: dict[str, str] = {}
"""Each test marked `may_be_inconclusive`: "inconclusive" if skipped as such, else its
outcome. Filled from the reports, so under xdist the controller has every worker's."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "may_be_inconclusive" not in report.keywords:
        return
    if report.skipped and INCONCLUSIVE in str(report.longrepr):
        OUTCOMES[report.nodeid] = "inconclusive"
    elif report.when == "call" or report.outcome != "passed":
        OUTCOMES.setdefault(report.nodeid, report.outcome)


def _most_inconclusive() -> tuple[int, bool]:
    """How many were skipped as inconclusive, and whether that is most of them."""
    skipped = sum(outcome == "inconclusive" for outcome in OUTCOMES.values())
    return skipped, 2 * skipped > len(OUTCOMES)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With ARCADE_TEST_STRICT_SKIPS=1, most tests that can be inconclusive being so fails
    the run: each such skip alone is a busy machine; most of them may be a regression."""
    if hasattr(session.config, "workerinput"):
        return
    if STRICT_SKIPS and OUTCOMES and _most_inconclusive()[1]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES or hasattr(terminalreporter.config, "workerinput"):
        return
    skipped, most = _most_inconclusive()
    line = (
        f"inconclusive: {skipped} of {len(OUTCOMES)} tests that can be inconclusive "
        "were skipped as such (the machine too busy to observe what they prove)"
    )
    failing = STRICT_SKIPS and most
    terminalreporter.write_sep("-", "inconclusive skips")
    terminalreporter.write_line(line, red=failing, yellow=bool(skipped) and not failing)
    if failing:
        terminalreporter.write_line(
            "error: most of them were: with ARCADE_TEST_STRICT_SKIPS=1 that fails the run",
            red=True,
        )
