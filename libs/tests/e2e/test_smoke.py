from __future__ import annotations

from helpers import run_arcade, wait_until
from servers import FakeCloud, FakePostHog


def test_first_command_is_tracked_and_delivered(posthog: FakePostHog) -> None:
    result = run_arcade("usage", "status")
    assert result.returncode == 0, result.stderr
    assert "Opt out" in result.stderr
    events = wait_until(posthog.command_events)
    assert events[0]["properties"]["command_name"] == "usage.status"


def test_login_aliases_then_sends_as_principal(posthog: FakePostHog, cloud: FakeCloud) -> None:
    cloud.add_account("key-a", "prn_a", "a@example.com")
    assert run_arcade("usage", "status").returncode == 0
    anon = wait_until(posthog.command_events)[0]["distinct_id"]
    result = run_arcade("login", "--api-key", "key-a")
    assert result.returncode == 0, result.stderr
    assert "a@example.com" in result.stdout
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.aliases() == [(anon, "prn_a")]
    assert posthog.command_events()[1]["distinct_id"] == "prn_a"
    assert posthog.same_person(anon, "prn_a")
