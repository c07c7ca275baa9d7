"""Who events belong to across login, steady state, side-channel credentials, switch and logout."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers import run_arcade, wait_until
from servers import FakeCloud, FakePostHog

if TYPE_CHECKING:
    from cli.accounts import Account

pytestmark = pytest.mark.timeout(60)


def usage_file(arcade_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((arcade_dir / "usage.json").read_text())
    return data


def login(account: Account) -> None:
    result = run_arcade("login", "--api-key", account.key)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("outage", ["hang", "dead port"])
def test_logged_in_commands_need_no_cloud(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, first_run: str, outage: str
) -> None:
    login(account_a)
    validations = cloud.validations
    env = {}
    if outage == "hang":
        cloud.mode = "hang"
    else:
        env["ARCADE_CLOUD_URL"] = "http://127.0.0.1:9"

    started = time.monotonic()
    result = run_arcade("usage", "status", env=env)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert f"Linked principal: {account_a.principal}" in result.stdout
    assert elapsed < 2  # a lookup against a hanging Cloud would take its 2 s
    wait_until(lambda: len(posthog.command_events()) == 3)
    status_event = posthog.command_events()[2]
    assert status_event["properties"]["command_name"] == "usage.status"
    assert status_event["distinct_id"] == account_a.principal
    assert cloud.validations == validations
    assert len(posthog.aliases()) == 1


def test_logout_sends_as_the_principal_then_rotates_the_anon_id(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    login(account_a)
    assert usage_file(arcade_dir)["linked_principal_id"] == account_a.principal

    result = run_arcade("logout")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Logged out.\n"
    assert not (arcade_dir / "credentials.yaml").exists()
    identity = usage_file(arcade_dir)
    new_anon = identity["anon_id"]
    assert new_anon != first_run
    assert identity["linked_principal_id"] is None

    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert f"Anonymous id:     {new_anon}" in status.stdout
    assert "Linked principal: none" in status.stdout

    wait_until(lambda: len(posthog.command_events()) == 4)
    _, login_event, logout_event, after = posthog.command_events()
    assert login_event["distinct_id"] == account_a.principal
    assert logout_event["properties"]["command_name"] == "logout"
    assert logout_event["distinct_id"] == account_a.principal
    assert "$process_person_profile" not in logout_event["properties"]
    assert after["distinct_id"] == new_anon
    assert after["properties"]["$process_person_profile"] is False
    assert not posthog.same_person(new_anon, account_a.principal)


def test_logout_while_anonymous_keeps_the_anon_id(
    posthog: FakePostHog, arcade_dir: Path, first_run: str
) -> None:
    result = run_arcade("logout")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Not logged in.\n"
    assert usage_file(arcade_dir)["anon_id"] == first_run
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.command_events()[1]["distinct_id"] == first_run


def test_hand_written_credentials_are_aliased_by_the_next_command(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    (arcade_dir / "credentials.yaml").write_text(
        f"cloud:\n  api:\n    key: {account_a.key}\n  user:\n    email: {account_a.email}\n"
    )
    result = run_arcade("usage", "status")
    assert result.returncode == 0, result.stderr
    # The status is printed before this command's own event links the account.
    assert "Linked principal: none" in result.stdout
    assert usage_file(arcade_dir)["linked_principal_id"] == account_a.principal
    assert f"Linked principal: {account_a.principal}" in run_arcade("usage", "status").stdout

    wait_until(lambda: len(posthog.command_events()) == 3)
    assert [(m["event"], m["distinct_id"]) for m in posthog.events()][1:] == [
        ("$create_alias", first_run),
        ("CLI execution succeeded", account_a.principal),
        ("CLI execution succeeded", account_a.principal),
    ]
    assert posthog.same_person(first_run, account_a.principal)


def test_switching_accounts_never_merges_the_two_people(
    posthog: FakePostHog,
    account_a: Account,
    account_b: Account,
    arcade_dir: Path,
    first_run: str,
) -> None:
    login(account_a)
    result = run_arcade("login", "--api-key", account_b.key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in as {account_b.email} (replacing {account_a.email}).\n"
    second_anon = usage_file(arcade_dir)["anon_id"]
    assert second_anon != first_run

    wait_until(lambda: len(posthog.command_events()) == 3)
    assert posthog.aliases() == [
        (first_run, account_a.principal),
        (second_anon, account_b.principal),
    ]
    assert posthog.command_events()[2]["distinct_id"] == account_b.principal
    assert not posthog.same_person(account_a.principal, account_b.principal)
    assert posthog.same_person(second_anon, account_b.principal)
    assert not posthog.same_person(first_run, account_b.principal)
    assert posthog.refused_aliases == []
    assert usage_file(arcade_dir)["linked_principal_id"] == account_b.principal
