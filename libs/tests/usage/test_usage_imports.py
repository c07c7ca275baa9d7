"""A steady-state tracked command stays light: no HTTP, YAML or lock library is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from arcade_identity import Credentials, save_credentials
from arcade_usage import CommandTracker
from helpers import sender_pids, wait_until
from servers import FakeCloud, FakePostHog

HEAVY = ("posthog", "httpx", "yaml", "filelock", "requests")

SCRIPT = f"""
import json, sys
from arcade_usage import CommandTracker
CommandTracker(cli_version="9.9.9").track_command_execution("x", True)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
"""


def _heavy_modules_after_one_command() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout)
    return modules


@pytest.mark.timeout(60)
def test_anonymous_command_imports_nothing_heavy(posthog: FakePostHog, work_dir: Path) -> None:
    CommandTracker(cli_version="9.9.9").track_command_execution("first", True)
    anon = wait_until(posthog.command_events)[0]["distinct_id"]

    assert _heavy_modules_after_one_command() == []

    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.command_events()[1]["distinct_id"] == anon
    wait_until(lambda: not sender_pids(work_dir))


@pytest.mark.timeout(60)
def test_linked_command_with_unchanged_credentials_imports_nothing_heavy(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    key = f"key-{uuid.uuid4().hex}"
    cloud.add_account(key, "prn_light", "light@example.com")
    save_credentials(Credentials(key, "light@example.com"))
    CommandTracker(cli_version="9.9.9").track_command_execution("login", True, is_login=True)
    wait_until(posthog.command_events)
    validations = cloud.validations

    assert _heavy_modules_after_one_command() == []

    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.command_events()[1]["distinct_id"] == "prn_light"
    assert cloud.validations == validations
    wait_until(lambda: not sender_pids(work_dir))


@pytest.mark.timeout(60)
def test_tracking_raises_no_resource_warning_in_dev_mode(
    posthog: FakePostHog, work_dir: Path
) -> None:
    # Regression: the sender's Popen was dropped while the sender still ran, so a tool
    # run with `-X dev -W error` (or tested with filterwarnings=error) got a ResourceWarning.
    script = (
        "import gc\n"
        "from arcade_usage import CommandTracker\n"
        "CommandTracker(cli_version='9.9.9').track_command_execution('x', True)\n"
        "gc.collect()\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    wait_until(posthog.command_events)
    wait_until(lambda: not sender_pids(work_dir))
