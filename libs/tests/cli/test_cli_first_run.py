"""The first tracked command on a machine, `--version`, and what every event carries."""

from __future__ import annotations

import json
import platform
import uuid
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import pytest

from helpers import run_arcade, sender_pids, wait_until
from servers import FakePostHog

pytestmark = pytest.mark.timeout(60)


def test_first_run_prints_the_notice_on_stderr_and_sends_an_anonymous_event(
    posthog: FakePostHog, arcade_dir: Path
) -> None:
    started = datetime.now(timezone.utc)
    result = run_arcade("usage", "status")
    finished = datetime.now(timezone.utc)

    assert result.returncode == 0, result.stderr
    assert "ARCADE_USAGE_TRACKING=0" in result.stderr
    assert "arcade usage disable" in result.stderr
    assert "ARCADE_USAGE_TRACKING" not in result.stdout
    assert "Tracking:         on (the default)" in result.stdout
    anon_id = json.loads((arcade_dir / "usage.json").read_text())["anon_id"]
    assert f"Anonymous id:     {anon_id}" in result.stdout

    [event] = wait_until(posthog.command_events)
    assert event["event"] == "CLI execution succeeded"
    assert event["distinct_id"] == anon_id
    props = event["properties"]
    assert props["command_name"] == "usage.status"
    assert props["cli_version"] == version("arcade-cli")
    assert props["python_version"] == platform.python_version()
    assert props["os_type"] == platform.system()
    assert props["os_release"] == platform.release()
    assert isinstance(props["duration"], float)
    assert 0 < props["duration"] < 60_000
    assert props["is_ci"] is False
    assert props["$process_person_profile"] is False
    assert "error_message" not in props
    assert uuid.UUID(event["uuid"]).version == 4
    assert started <= datetime.fromisoformat(event["timestamp"]) <= finished


def test_the_notice_is_shown_once(posthog: FakePostHog, first_run: str) -> None:
    result = run_arcade("usage", "status")
    assert result.returncode == 0
    assert result.stderr == ""
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.command_events()[1]["distinct_id"] == first_run


def test_is_ci_is_true_under_a_ci_system(posthog: FakePostHog) -> None:
    assert run_arcade("usage", "status", env={"GITHUB_ACTIONS": "true"}).returncode == 0
    [event] = wait_until(posthog.command_events)
    assert event["properties"]["is_ci"] is True


def test_version_prints_the_installed_version_and_sends_nothing(
    posthog: FakePostHog, work_dir: Path, arcade_dir: Path
) -> None:
    result = run_arcade("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == version("arcade-cli")
    assert result.stderr == ""
    # A sender would still be alive, or would have delivered or queued its event by now.
    assert sender_pids(work_dir) == []
    assert posthog.requests == 0
    assert not arcade_dir.exists()
