"""Fixtures shared by every test: isolation, the loopback servers, running `arcade`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from arcade_usage import CI_VARIABLES
from servers import FakeCloud, FakePostHog

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
    monkeypatch.setenv("ARCADE_CLOUD_URL", DEAD_URL)
    # A second fence: anything that would still go elsewhere meets a dead loopback
    # proxy (requests and httpx both honour these), while loopback stays direct.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, DEAD_URL)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


@pytest.fixture
def work_dir(isolated_env: Path) -> Path:
    """`ARCADE_WORK_DIR`: the configuration folder itself, where the files live."""
    return isolated_env / ".arcade"


@pytest.fixture
def arcade_dir(work_dir: Path) -> Path:
    """The same folder as `work_dir`, by the name a test about its files reads best with."""
    return work_dir


@pytest.fixture
def posthog(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePostHog]:
    server = FakePostHog()
    server.start()
    monkeypatch.setenv("ARCADE_USAGE_POSTHOG_HOST", server.url)
    try:
        yield server
    finally:
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
