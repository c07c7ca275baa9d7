"""What each event tells the product team, and what it must never tell them."""

from __future__ import annotations

import platform
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import Credentials, save_credentials
from arcade_usage import FAILED, SUCCEEDED, CommandTracker
from helpers import wait_until
from servers import FakeCloud, FakePostHog

pytestmark = pytest.mark.timeout(60)


def _by_command(posthog: FakePostHog, count: int) -> dict[str, dict[str, Any]]:
    wait_until(lambda: len(posthog.command_events()) >= count)
    events = posthog.command_events()
    assert len(events) == count
    return {e["properties"]["command_name"]: e for e in events}


def test_every_property_with_its_type_and_the_finish_time(posthog: FakePostHog) -> None:
    tracker = CommandTracker(cli_version="9.9.9")
    before = datetime.now(timezone.utc)
    tracker.track_command_execution("usage.status", True, duration_ms=12)
    after_success = datetime.now(timezone.utc)
    tracker.track_command_execution("whoami", False, duration_ms=7.5, error_message="boom")
    after_failure = datetime.now(timezone.utc)

    events = _by_command(posthog, 2)
    ok, failed = events["usage.status"], events["whoami"]
    assert ok["event"] == SUCCEEDED
    assert failed["event"] == FAILED
    for event in (ok, failed):
        props = event["properties"]
        assert props["cli_version"] == "9.9.9"
        assert props["python_version"] == platform.python_version()
        assert props["os_type"] == platform.system()
        assert props["os_release"] == platform.release()
        assert props["is_ci"] is False
        assert props["$process_person_profile"] is False
        assert isinstance(props["duration"], float)
        assert str(uuid.UUID(event["uuid"])) == event["uuid"]
    assert ok["properties"]["duration"] == 12.0
    assert failed["properties"]["duration"] == 7.5
    assert "error_message" not in ok["properties"]
    assert failed["properties"]["error_message"] == "boom"
    assert len({ok["uuid"], failed["uuid"]}) == 2
    # Taken when the command finished, not when a sender got round to it.
    assert before <= datetime.fromisoformat(ok["timestamp"]) <= after_success
    assert after_success <= datetime.fromisoformat(failed["timestamp"]) <= after_failure


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CI": "true"}, True),
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"CI": "1", "GITLAB_CI": "true"}, True),
        ({"CI": "false"}, False),
        ({}, False),
    ],
)
def test_is_ci(
    posthog: FakePostHog,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    expected: bool,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    CommandTracker(cli_version="9.9.9").track_command_execution("usage.status", True)
    assert wait_until(posthog.command_events)[0]["properties"]["is_ci"] is expected


def test_error_message_is_scrubbed_and_cut(posthog: FakePostHog, work_dir: Path) -> None:
    key = "c2VjcmV0LWFwaS1rZXktOTk5"  # no key-like shape: only knowing it can remove it
    email = "jane.doe@example.com"
    save_credentials(Credentials(key, email))
    home = str(work_dir.parent)
    message = (
        f"request with {key} for {email} failed reading {home}/project/arcade.toml: "
        + "detail " * 80
    )

    CommandTracker(cli_version="9.9.9").track_command_execution("deploy", False, 5.0, message)

    sent = wait_until(posthog.command_events)[0]["properties"]["error_message"]
    assert key not in sent
    assert email not in sent
    assert home not in sent
    assert "~/project/arcade.toml" in sent
    assert sent.startswith("request with ")
    assert len(sent) <= 300


@pytest.mark.parametrize("error", [None, "", "   \n"])
def test_failed_event_never_has_an_empty_error(
    posthog: FakePostHog, error: str | None, track: Callable[..., None]
) -> None:
    track("deploy", False, error_message=error)
    sent = wait_until(posthog.command_events)[0]["properties"]["error_message"]
    assert isinstance(sent, str)
    assert sent.strip()


def test_cli_name_says_which_tool_sent_the_event(posthog: FakePostHog) -> None:
    CommandTracker(cli_version="9.9.9").track_command_execution("usage.status", True)
    CommandTracker(cli_version="0.4.0", cli_name="arcade-deploy").track_command_execution(
        "push", True
    )
    events = _by_command(posthog, 2)
    assert events["usage.status"]["properties"]["cli_name"] == "arcade"
    assert events["push"]["properties"]["cli_name"] == "arcade-deploy"
    assert events["push"]["properties"]["cli_version"] == "0.4.0"


def test_track_times_a_block_and_records_how_it_ended(posthog: FakePostHog) -> None:
    """`with tracker.track(name):` for any CLI: success, an exception (raised again), exits."""
    tracker = CommandTracker(cli_version="9.9.9", cli_name="argparse-tool")
    with tracker.track("ok"):
        pass
    with pytest.raises(ValueError, match="bad input"), tracker.track("raises"):
        raise ValueError("bad input for alice@example.com")
    with pytest.raises(SystemExit), tracker.track("exits-zero"):
        raise SystemExit(0)
    with pytest.raises(SystemExit), tracker.track("exits-two"):
        raise SystemExit(2)
    with pytest.raises(KeyboardInterrupt), tracker.track("interrupted"):
        raise KeyboardInterrupt

    events = _by_command(posthog, 5)
    assert {name: e["event"] for name, e in events.items()} == {
        "ok": SUCCEEDED,
        "raises": FAILED,
        "exits-zero": SUCCEEDED,
        "exits-two": FAILED,
        "interrupted": FAILED,
    }
    assert events["raises"]["properties"]["error_message"] == "ValueError: bad input for <email>"
    assert events["exits-two"]["properties"]["error_message"] == "exit code 2"
    assert events["interrupted"]["properties"]["error_message"] == "Aborted!"
    for event in events.values():
        assert event["properties"]["cli_name"] == "argparse-tool"
        assert event["properties"]["duration"] >= 0.0


# -- the docs' tables ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[3] / "docs" / "usage-data.md"


def _documented() -> dict[str, set[str]]:
    """The property names in docs/usage-data.md's tables, by the event they describe."""
    import re

    tables: dict[str, set[str]] = {}
    kind = ""
    for line in DOCS.read_text().splitlines():
        if line.startswith("### "):
            commands, aliases = line == "### Commands", line.startswith("### Linking")
            kind = "command" if commands else "$create_alias" if aliases else ""
        elif re.fullmatch(r"`MCP (server started|tool called)`:", line):
            kind = line.strip("`:")
        elif kind and line.startswith("| `"):
            name = line.split("|")[1].strip()
            tables.setdefault(kind, set()).update(re.findall(r"`([^`]+)`", name))
    return tables


def test_the_docs_list_every_property_exactly_as_sent(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    from arcade_core.config_model import Config, ContextConfig, NamedContext, UserConfig

    from arcade_usage import ServerTracker

    key = f"key-{uuid.uuid4().hex}"
    cloud.add_account(key, "prn_docs", "docs@example.com")
    # Anonymous: a failed command, a server's start and calls.
    CommandTracker(cli_version="9.9.9").track_command_execution("deploy", False, 5.0, "boom")
    server = ServerTracker(server_version="1.2.3")
    server.track_server_start("http", "127.0.0.1", 8000, 2, None)
    server.track_tool_call(False, "no such row")
    # Logged in with today's Arcade CLI, in a context with an org and a project.
    context = ContextConfig(org_id="org_1", org_name="O", project_id="proj_1", project_name="P")
    config = Config(
        contexts={
            "work": NamedContext(
                api_key=key, user=UserConfig(email="docs@example.com"), context=context
            )
        }
    )
    config.use_context("work")
    config.save_to_file()
    CommandTracker(cli_version="9.9.9").track_command_execution("whoami", True, 3.0)
    server.track_tool_call(True)

    wait_until(lambda: len(posthog.events()) == 6)
    sent: dict[str, set[str]] = {}
    for event in posthog.events():
        kind = "command" if event["event"].startswith("CLI execution") else event["event"]
        sent.setdefault(kind, set()).update(event["properties"])
    assert sent == _documented()
    linked = posthog.events(SUCCEEDED)[0]["properties"]
    assert (linked["org_id"], linked["project_id"]) == ("org_1", "proj_1")
    assert isinstance(linked["duration_ms"], int)
    assert linked["runtime_language"] == "python"
    assert linked["runtime_version"] == platform.python_version()
    assert all(e["properties"]["$geoip_disable"] is True for e in posthog.events())
