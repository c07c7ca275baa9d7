"""Who events belong to across login, lazy alias, account switch and logout, seen by PostHog."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arcade_identity import Credentials, remove_credentials, save_credentials
from arcade_usage import SUCCEEDED, UsageService
from helpers import wait_until
from servers import FakeCloud, FakePostHog

Track = Callable[..., None]
Data = Callable[[], dict[str, Any]]

pytestmark = pytest.mark.timeout(60)


def _key() -> str:
    """An API key no other test of this process has looked up (lookups are cached per process)."""
    return f"key-{uuid.uuid4().hex}"


def _wait_events(posthog: FakePostHog, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(posthog.command_events()) >= count)
    events = posthog.command_events()
    assert len(events) == count, events
    return events


def _index(posthog: FakePostHog, message: dict[str, Any]) -> int:
    return [m["uuid"] for m in posthog.events()].index(message["uuid"])


def _log_in(cloud: FakeCloud, principal: str) -> str:
    key = _key()
    cloud.add_account(key, principal, f"{principal}@example.com")
    save_credentials(Credentials(key, f"{principal}@example.com"))
    return key


def test_login_aliases_anonymous_history_before_the_login_event(
    posthog: FakePostHog, cloud: FakeCloud, track: Track, usage_data: Data
) -> None:
    track("usage.status")
    track("whoami", False, error_message="not logged in")
    anonymous = _wait_events(posthog, 2)
    anon_id = usage_data()["anon_id"]
    assert {e["distinct_id"] for e in anonymous} == {anon_id}
    assert all(e["properties"]["$process_person_profile"] is False for e in anonymous)

    _log_in(cloud, "prn_a")
    track("login", is_login=True)

    login = _wait_events(posthog, 3)[2]
    assert posthog.aliases() == [(anon_id, "prn_a")]
    assert _index(posthog, posthog.events("$create_alias")[0]) < _index(posthog, login)
    assert login["distinct_id"] == "prn_a"
    assert login["properties"]["command_name"] == "login"
    assert "$process_person_profile" not in login["properties"]
    assert posthog.same_person(anon_id, "prn_a")
    assert usage_data()["linked_principal_id"] == "prn_a"
    assert usage_data()["anon_id"] == anon_id

    # The next command is the same account: no lookup, no second alias.
    validations = cloud.validations
    track("usage.status")
    assert _wait_events(posthog, 4)[3]["distinct_id"] == "prn_a"
    assert posthog.aliases() == [(anon_id, "prn_a")]
    assert cloud.validations == validations


def test_hand_written_credentials_are_aliased_lazily(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, track: Track, usage_data: Data
) -> None:
    track("usage.status")
    anon_id = _wait_events(posthog, 1)[0]["distinct_id"]
    key = _key()
    cloud.add_account(key, "prn_side", "side@example.com")
    (arcade_dir / "credentials.yaml").write_text(
        f"cloud:\n  api:\n    key: {key}\n  user:\n    email: side@example.com\n"
    )

    track("usage.status")

    event = _wait_events(posthog, 2)[1]
    assert posthog.aliases() == [(anon_id, "prn_side")]
    assert _index(posthog, posthog.events("$create_alias")[0]) < _index(posthog, event)
    assert event["distinct_id"] == "prn_side"
    assert "$process_person_profile" not in event["properties"]
    assert posthog.same_person(anon_id, "prn_side")
    assert usage_data()["linked_principal_id"] == "prn_side"


def test_account_switch_rotates_before_linking_and_never_merges_accounts(
    posthog: FakePostHog, cloud: FakeCloud, track: Track, usage_data: Data
) -> None:
    track("usage.status")
    first_anon = _wait_events(posthog, 1)[0]["distinct_id"]
    _log_in(cloud, "prn_a")
    track("login", is_login=True)
    _wait_events(posthog, 2)

    _log_in(cloud, "prn_b")  # credentials now hold B's key; usage.json still says A
    track("usage.status")

    event = _wait_events(posthog, 3)[2]
    assert event["distinct_id"] == "prn_b"
    second_anon = usage_data()["anon_id"]
    assert second_anon != first_anon
    assert usage_data()["linked_principal_id"] == "prn_b"
    assert posthog.aliases() == [(first_anon, "prn_a"), (second_anon, "prn_b")]
    assert not posthog.same_person("prn_a", "prn_b")
    assert posthog.same_person(first_anon, "prn_a")
    assert posthog.same_person(second_anon, "prn_b")


def test_logout_sends_as_the_account_then_starts_a_new_anonymous_person(
    posthog: FakePostHog, cloud: FakeCloud, track: Track, usage_data: Data
) -> None:
    track("usage.status")
    first_anon = _wait_events(posthog, 1)[0]["distinct_id"]
    _log_in(cloud, "prn_a")
    track("login", is_login=True)
    _wait_events(posthog, 2)

    assert remove_credentials()
    track("logout", is_logout=True)

    logout = _wait_events(posthog, 3)[2]
    assert logout["properties"]["command_name"] == "logout"
    assert logout["distinct_id"] == "prn_a"
    assert "$process_person_profile" not in logout["properties"]
    data = usage_data()
    assert data["linked_principal_id"] is None
    assert data["anon_id"] != first_anon
    uuid.UUID(data["anon_id"])

    track("usage.status")
    after = _wait_events(posthog, 4)[3]
    assert after["distinct_id"] == data["anon_id"]
    assert after["properties"]["$process_person_profile"] is False
    assert not posthog.same_person(after["distinct_id"], "prn_a")
    assert posthog.aliases() == [(first_anon, "prn_a")]


def test_logout_while_anonymous_keeps_the_anonymous_id(
    posthog: FakePostHog, track: Track, usage_data: Data
) -> None:
    track("usage.status")
    anon_id = _wait_events(posthog, 1)[0]["distinct_id"]

    track("logout", is_logout=True)

    logout = _wait_events(posthog, 2)[1]
    assert logout["distinct_id"] == anon_id
    assert logout["properties"]["$process_person_profile"] is False
    assert usage_data()["anon_id"] == anon_id
    assert usage_data()["linked_principal_id"] is None
    assert posthog.aliases() == []


def test_refused_alias_is_not_fought(
    posthog: FakePostHog, cloud: FakeCloud, track: Track, usage_data: Data
) -> None:
    # A returning user: PostHog already has an identified person for the principal.
    UsageService().capture(SUCCEEDED, "prn_back", {"command_name": "login"})
    _wait_events(posthog, 1)
    track("usage.status")
    anon_id = _wait_events(posthog, 2)[1]["distinct_id"]
    _log_in(cloud, "prn_back")

    track("login", is_login=True)

    assert _wait_events(posthog, 3)[2]["distinct_id"] == "prn_back"
    assert posthog.refused_aliases == [(anon_id, "prn_back")]
    assert usage_data()["linked_principal_id"] == "prn_back"

    track("usage.status")
    track("whoami")
    events = _wait_events(posthog, 5)
    assert [e["distinct_id"] for e in events[3:]] == ["prn_back", "prn_back"]
    assert posthog.aliases() == [(anon_id, "prn_back")]
