"""A steady-state tracked command stays light: no HTTP, YAML or lock library is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from arcade_identity import Credentials, UsageIdentity, save_credentials
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


@pytest.mark.timeout(60)
def test_linked_oauth_context_keeps_its_org_without_yaml_on_the_steady_path(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    # Credentials of today's Arcade CLI (a named context, an access token, an org and a
    # project): once linked, a command still imports no YAML, yet its event carries the
    # context's org and project, kept with the link's fingerprint.
    from datetime import datetime, timedelta

    from arcade_core.config_model import AuthConfig, Config, ContextConfig, NamedContext

    token = f"tok-{uuid.uuid4().hex}"
    cloud.add_token(token, "acc_light", "light@example.com")
    auth = AuthConfig(
        access_token=token, refresh_token="r", expires_at=datetime.now() + timedelta(hours=1)
    )
    context = ContextConfig(org_id="org_l", org_name="L", project_id="proj_l", project_name="P")
    config = Config(contexts={"work": NamedContext(auth=auth, context=context)})
    config.use_context("work")
    config.save_to_file()
    # Linked as a first command links (with time to spare on a loaded machine).
    identity = UsageIdentity(lookup_timeout=30)
    principal = identity.get_principal_id()
    assert principal == "acc_light"
    identity.set_linked_principal_id(principal)

    assert _heavy_modules_after_one_command() == []

    steady = wait_until(posthog.command_events)[0]
    assert steady["distinct_id"] == "acc_light"
    assert (steady["properties"]["org_id"], steady["properties"]["project_id"]) == (
        "org_l",
        "proj_l",
    )
    assert cloud.whoamis == 1
    wait_until(lambda: not sender_pids(work_dir))
