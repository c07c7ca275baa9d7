"""A server that outlives a change of its credentials: arcade-core refreshing the OAuth
token (the same account), or logging in as another account in another terminal.

Credentials are written by arcade-core's own `Config`, and refreshed by arcade-core's
own code run by the real arcade-mcp-server (ours swapped in), as in
cli/test_cli_arcade_core.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from arcade_core.config_model import AuthConfig, Config, ContextConfig, NamedContext, UserConfig
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from arcade_usage import ServerTracker
from helpers import run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

arcade_mcp_app = pytest.importorskip("arcade_mcp_app")

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("arcade_core_config")]

APP = Path(arcade_mcp_app.__file__).resolve()
CALLED = "MCP tool called"
OLD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.old.sig"
NEW_TOKEN = "eyJhbGciOiJIUzI1NiJ9.new.sig"


def _status_until_linked(posthog: FakePostHog, principal: str) -> None:
    """`arcade usage status` until one's event is `principal`'s (the first, unless starved)."""
    before = len(posthog.command_events())
    for tries in range(1, 4):
        result = run_arcade("usage", "status")
        assert result.returncode == 0, result.stderr
        wait_until(lambda: len(posthog.command_events()) >= before + tries)  # noqa: B023
        if posthog.command_events()[-1]["distinct_id"] == principal:
            return
    raise AssertionError(posthog.command_events()[before:])


def _call_tools_over_stdio(calls: int, stderr_path: Path) -> list[bool]:
    """The real arcade-mcp-server (ours swapped in) over stdio: `calls` calls of `echo`."""
    results: list[bool] = []

    async def main() -> None:
        params = StdioServerParameters(
            command=sys.executable, args=[str(APP), "stdio"], env=dict(os.environ)
        )
        with anyio.fail_after(90), stderr_path.open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = {
                    tool.name.rsplit("_", 1)[-1].lower(): tool.name
                    for tool in (await session.list_tools()).tools
                }
                for _ in range(calls):
                    result = await session.call_tool(tools["echo"], {"text": "hi"})
                    results.append(not result.isError)

    anyio.run(main)
    return results


# -- arcade-mcp-server refreshes the OAuth token: the calls stay the account's --------------


def test_calls_after_the_server_refreshes_the_oauth_token_still_belong_to_the_account(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, tmp_path: Path
) -> None:
    """arcade-mcp-server 1.32.1 calls arcade-core's `get_valid_access_token()` when it
    builds its server (server.py:505 -> 420) and for each tool call's user id
    (server.py:1193): a token within 5 minutes of its expiry is refreshed and
    `credentials.yaml` rewritten (auth_tokens.py:139-146). Same account, new token.

    The events after that belong to the same account (SPEC "Identity resolution": the
    identity in force when captured; arcade-mcp-server's own tracker keeps sending as
    the linked principal), not each to a fresh random id: a new anonymous "user" per
    tool call, for the rest of the server's life, as they did before.
    """
    cloud.next_token = NEW_TOKEN
    cloud.add_token(OLD_TOKEN, "acc_work", "w@x.io")
    cloud.add_token(NEW_TOKEN, "acc_work", "w@x.io")
    config = Config(
        contexts={
            "work": NamedContext(
                coordinator_url=cloud.url,
                auth=AuthConfig(
                    access_token=OLD_TOKEN,
                    refresh_token="refresh-1",
                    # Valid for 2 more minutes: arcade-core refreshes it (its 5-minute
                    # margin), and our lookup may still present it.
                    expires_at=datetime.now() + timedelta(minutes=2),
                ),
                user=UserConfig(email="w@x.io", account_id="acc_work"),
                context=ContextConfig(
                    org_id="org_w", org_name="W", project_id="proj_w", project_name="Default"
                ),
            )
        }
    )
    config.use_context("work")
    config.save_to_file()
    _status_until_linked(posthog, "acc_work")  # our CLI links the machine to the account
    anon_id = json.loads((work_dir / "usage.json").read_bytes())["anon_id"]
    assert posthog.same_person(anon_id, "acc_work")

    results = _call_tools_over_stdio(4, tmp_path / "stderr")

    assert results == [True] * 4
    assert cloud.refreshes >= 1  # the server itself refreshed the token, as arcade-core does
    assert Config.load_from_file().get_access_token() == NEW_TOKEN
    wait_until(lambda: len(posthog.events(CALLED)) >= 4, timeout=30)
    wait_until(lambda: not sender_pids(work_dir), timeout=15)
    calls: list[dict[str, Any]] = posthog.events(CALLED)
    assert len(calls) == 4
    strangers = [
        e["distinct_id"] for e in calls if not posthog.same_person(e["distinct_id"], "acc_work")
    ]
    assert strangers == [], f"tool calls sent as nobody's ids: {strangers}"


# -- arcade-core's `arcade login` as another account while a server runs -------------------


def _oauth_context(cloud: FakeCloud, token: str, account: str) -> NamedContext:
    cloud.add_token(token, account, f"{account}@x.io")
    return NamedContext(
        coordinator_url=cloud.url,
        auth=AuthConfig(
            access_token=token,
            refresh_token=f"refresh-{account}",
            expires_at=datetime.now() + timedelta(hours=1),
        ),
        user=UserConfig(email=f"{account}@x.io", account_id=account),
    )


def test_a_server_running_across_an_arcade_core_login_sends_as_the_new_account(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """SPEC "Identity resolution": a long-lived process that outlives a `login` run
    elsewhere sends its next event as the new identity. Today's Arcade CLI logs in
    through arcade-core's `Config` (a new context, made active): the tracker looks
    the new principal up on a thread of its own, links it (a fresh anon_id aliased
    to B, never A's), and the calls after that are B's, none of them A's."""
    config = Config(contexts={"a": _oauth_context(cloud, "tok-a", "acc_a")})
    config.use_context("a")
    config.save_to_file()
    tracker = ServerTracker()
    tracker.track_server_start("stdio", None, None, 1, None)  # lazy alias: linked to acc_a
    wait_until(lambda: posthog.events("MCP server started"))
    assert posthog.events("MCP server started")[0]["distinct_id"] == "acc_a"

    # `arcade login` of today's Arcade CLI, as another account, in another terminal.
    config = Config.load_from_file()
    assert config.contexts is not None
    config.contexts["b"] = _oauth_context(cloud, "tok-b", "acc_b")
    config.use_context("b")
    config.save_to_file()

    def a_call_as_b() -> bool:
        tracker.track_tool_call(True)
        return any(e["distinct_id"] == "acc_b" for e in posthog.events(CALLED))

    try:
        wait_until(a_call_as_b, timeout=20, interval=0.2)
        for _ in range(20):  # and every call after it, with no lookup more
            tracker.track_tool_call(True)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=15)
    calls = posthog.events(CALLED)
    assert not any(e["distinct_id"] == "acc_a" for e in calls)
    assert [e["distinct_id"] for e in calls[-20:]] == ["acc_b"] * 20
    assert cloud.whoamis == 2  # A's at the start, B's once
    (first_anon, a), (second_anon, b) = posthog.aliases()
    assert (a, b) == ("acc_a", "acc_b")
    assert first_anon != second_anon
    assert not posthog.same_person("acc_a", "acc_b")


# -- what a relink must not do ---------------------------------------------------------------


def _server_linked_to_a(cloud: FakeCloud, posthog: FakePostHog) -> ServerTracker:
    """A tracker whose start linked the machine to acc_a (arcade-core's login as A)."""
    config = Config(contexts={"a": _oauth_context(cloud, "tok-a", "acc_a")})
    config.use_context("a")
    config.save_to_file()
    tracker = ServerTracker()
    tracker.track_server_start("stdio", None, None, 1, None)
    wait_until(lambda: posthog.events("MCP server started"))
    assert posthog.events("MCP server started")[0]["distinct_id"] == "acc_a"
    return tracker


def _login_as_b(cloud: FakeCloud) -> None:
    """`arcade login` of today's Arcade CLI (arcade-core's Config), as B, elsewhere."""
    config = Config.load_from_file()
    assert config.contexts is not None
    config.contexts["b"] = _oauth_context(cloud, "tok-b", "acc_b")
    config.use_context("b")
    config.save_to_file()


def test_a_relink_that_cloud_failed_is_tried_again_later(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cloud fails the lookup of B's token just as the server sees it: once Cloud is back
    and the retry period has passed (shortened here from 5 minutes), the server asks
    again and sends as B, rather than under random ids for the rest of its life (a
    failed answer was kept for the life of the process)."""
    import arcade_identity._lookup as lookup
    import arcade_usage._server as server

    monkeypatch.setattr(server, "RELINK_RETRY", 0.5)
    monkeypatch.setattr(lookup, "FAILED_LOOKUP_MEMORY", 0.5)
    tracker = _server_linked_to_a(cloud, posthog)
    asked = cloud.whoamis

    cloud.mode = "error"
    _login_as_b(cloud)
    tracker.track_tool_call(True)
    wait_until(lambda: cloud.whoamis > asked and not tracker._relinking.locked())
    cloud.mode = "ok"

    def a_call_as_b() -> bool:
        tracker.track_tool_call(True)
        return any(e["distinct_id"] == "acc_b" for e in posthog.events(CALLED))

    try:
        wait_until(a_call_as_b, timeout=10, interval=0.2)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=15)
    assert cloud.whoamis == asked + 2  # B's token, failed, then once more


def test_a_relink_under_way_during_a_logout_links_nobody(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """The server looks B up; before Cloud answers, the user logs out (credentials
    removed, anon_id rotated, link cleared). The answer must not link B again, nor alias
    the post-logout anon_id to B: the logged-out user's history is nobody's account."""
    from arcade_identity import remove_credentials
    from arcade_usage import CommandTracker

    tracker = _server_linked_to_a(cloud, posthog)
    config = Config(contexts={"b": _oauth_context(cloud, "tok-b", "acc_b")})
    config.use_context("b")
    config.save_to_file()  # logged in as B (arcade-core), the only context
    cloud.mode = "held"
    tracker.track_tool_call(True)  # the relink starts looking B up
    assert cloud.holding.wait(10)

    assert remove_credentials()  # `arcade logout` in another terminal, meanwhile
    CommandTracker(cli_version="1").track_command_execution("logout", True, is_logout=True)
    after_logout = json.loads((work_dir / "usage.json").read_bytes())
    assert after_logout["linked_principal_id"] is None
    cloud.go_on.set()  # Cloud answers: B

    try:
        wait_until(lambda: not tracker._relinking.locked())
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=15)
    assert json.loads((work_dir / "usage.json").read_bytes()) == after_logout
    assert [b for _, b in posthog.aliases()] == ["acc_a"]


def test_credentials_deleted_by_hand_give_the_calls_one_new_anonymous_person(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rm ~/.arcade/credentials.yaml` while a server runs: no logout ran, so the identity
    stays linked to A, whose anon_id must not be sent. Its calls went out under a new
    random id each (a new anonymous "user" per call on the dashboards) until the next
    login. Once the file has stayed gone for the grace (10 s, shortened here), the
    server ends the session as a logout would: one new anon_id, no alias, and every call
    after that is that one person's."""
    import arcade_identity._identity as identity_module
    import arcade_usage._server as server

    monkeypatch.setattr(identity_module, "CREDENTIALS_GONE_GRACE", 0.5)
    monkeypatch.setattr(server, "CREDENTIALS_GONE_GRACE", 0.5)
    tracker = _server_linked_to_a(cloud, posthog)
    linked_anon = json.loads((work_dir / "usage.json").read_bytes())["anon_id"]

    (work_dir / "credentials.yaml").unlink()  # by hand
    on_disk: dict[str, Any] = {}

    def a_call_as_a_new_person() -> bool:
        tracker.track_tool_call(True)
        on_disk.update(json.loads((work_dir / "usage.json").read_bytes()))
        anon = on_disk["anon_id"]
        return anon != linked_anon and any(e["distinct_id"] == anon for e in posthog.events(CALLED))

    try:
        wait_until(a_call_as_a_new_person, timeout=20, interval=0.05)
        for _ in range(10):
            tracker.track_tool_call(True)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=15)
    assert on_disk["linked_principal_id"] is None
    calls = [e["distinct_id"] for e in posthog.events(CALLED)]
    new_anon = on_disk["anon_id"]
    assert calls[-10:] == [new_anon] * 10
    before = calls[: calls.index(new_anon)]  # during the grace: nobody's, each once
    assert before
    assert len(set(before)) == len(before)
    assert not {"acc_a", linked_anon} & set(calls)
    assert not posthog.same_person(new_anon, "acc_a")
    assert [b for _, b in posthog.aliases()] == ["acc_a"]


TRIGGERING_CALL = r"""
import hashlib, json, sys, time  # hashlib: a changed file is hashed (as before)
from arcade_usage import ServerTracker

tracker = ServerTracker(server_version="1")
for _ in range(20):
    tracker.track_tool_call(True)
yaml_before = "yaml" in sys.modules
with open(sys.argv[1], "wb") as f:  # arcade-core refreshed the token: same account, in place
    f.write(sys.argv[2].encode())
cpu = time.thread_time()
tracker.track_tool_call(True)
cpu = time.thread_time() - cpu
print(json.dumps({"yaml_before": yaml_before, "cpu_ms": cpu * 1e3}))
"""


def test_the_call_that_sees_new_credentials_costs_its_thread_no_yaml(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """In a server whose steady path never loaded YAML, the first call after a token
    refresh costs its thread what a call costs (it cost ~20 ms of CPU importing and
    parsing YAML): reading the new credentials is the relink thread's work."""
    from arcade_usage import CommandTracker

    config = Config(contexts={"a": _oauth_context(cloud, "tok-1", "acc_a")})
    config.use_context("a")
    config.save_to_file()
    CommandTracker(cli_version="1").track_command_execution("status", True)  # links acc_a
    assert json.loads((work_dir / "usage.json").read_bytes())["linked_principal_id"] == "acc_a"
    path = work_dir / "credentials.yaml"
    refreshed = path.read_text().replace("tok-1", "tok-2")
    cloud.add_token("tok-2", "acc_a", "acc_a@x.io")

    run = subprocess.run(
        [sys.executable, "-c", TRIGGERING_CALL, str(path), refreshed],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(run.stdout.splitlines()[-1])
    wait_until(lambda: not sender_pids(work_dir), timeout=15)
    assert found["yaml_before"] is False
    assert found["cpu_ms"] < 5.0, found


def test_an_expired_token_does_not_count_as_the_linked_account(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    """Credentials switched to a context of A's whose token has expired: not presented to
    Cloud, so nobody vouches for it; the calls are nobody's, not A's."""
    tracker = _server_linked_to_a(cloud, posthog)
    config = Config.load_from_file()
    assert config.contexts is not None
    stale = _oauth_context(cloud, "tok-old", "acc_a")
    assert stale.auth is not None
    stale.auth.expires_at = datetime.now() - timedelta(hours=2)
    config.contexts["old"] = stale
    config.use_context("old")
    config.save_to_file()
    asked = cloud.whoamis

    tracker.track_tool_call(True)
    wait_until(lambda: not tracker._relinking.locked())
    for _ in range(3):
        tracker.track_tool_call(True)
    try:
        wait_until(lambda: len(posthog.events(CALLED)) >= 4)
    finally:
        wait_until(lambda: not sender_pids(work_dir), timeout=15)
    assert cloud.whoamis == asked
    assert [e["distinct_id"] for e in posthog.events(CALLED) if e["distinct_id"] == "acc_a"] == []
