"""`arcade` beside today's Arcade CLI: the credentials arcade-core 4.23 writes, and ours read by it.

Every credentials file here that stands for a login with today's Arcade CLI is
written by arcade-core's own `Config` (a test dependency), in the configuration
folder `ARCADE_WORK_DIR` names, exactly as `arcade login` of arcade-mcp would.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from arcade_core import config_model
from arcade_core.config_model import AuthConfig, Config, ContextConfig, NamedContext, UserConfig

from cli.accounts import Account
from helpers import run_arcade, wait_until
from servers import FakeCloud, FakePostHog

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("arcade_core_config")]

WORK_TOKEN = "eyJhbGciOiJIUzI1NiJ9.work.sig"
HOME_TOKEN = "eyJhbGciOiJIUzI1NiJ9.home.sig"


def oauth_context(
    cloud: FakeCloud, token: str, account: str, email: str, *, expires_in: float = 3600
) -> NamedContext:
    """A context as arcade-core's browser login leaves it, its org and project chosen."""
    cloud.add_token(token, account, email)
    return NamedContext(
        coordinator_url=cloud.url,
        auth=AuthConfig(
            access_token=token,
            refresh_token=f"refresh-{account}",
            expires_at=datetime.now() + timedelta(seconds=expires_in),
        ),
        user=UserConfig(email=email, account_id=account),
        context=ContextConfig(
            org_id=f"org_{account}",
            org_name=f"{email}'s org",
            project_id=f"proj_{account}",
            project_name="Default",
        ),
    )


def arcade_core_login(contexts: dict[str, NamedContext], active: str) -> Config:
    """Save credentials with arcade-core's Config, as today's Arcade CLI does."""
    config = Config(contexts=contexts)
    config.use_context(active)
    config.save_to_file()
    return config


def usage_json(work_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((work_dir / "usage.json").read_bytes())
    return data


def status(env: dict[str, str] | None = None) -> None:
    result = run_arcade("usage", "status", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def status_until_linked(
    posthog: FakePostHog, principal: str, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """`arcade usage status` until one's event is `principal`'s (the first, on a machine
    that is not starved); returns the events of those commands.

    A command whose lookup runs out of its 2 s budget on a starved machine is anonymous,
    by design, and the next one asks again: those come first, and none is ever another
    account's."""
    before = len(posthog.command_events())
    for tries in range(1, 4):
        status(env)
        wait_until(lambda: len(posthog.command_events()) >= before + tries)  # noqa: B023
        if posthog.command_events()[-1]["distinct_id"] == principal:
            break
    events = posthog.command_events()[before:]
    assert events[-1]["distinct_id"] == principal, events
    assert all(e["properties"].get("$process_person_profile") is False for e in events[:-1])
    return events


# -- one folder ----------------------------------------------------------------------------


def test_arcade_work_dir_is_the_folder_both_clis_use(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    arcade_core_login({"work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io")}, "work")
    assert Config.get_config_file_path() == work_dir / "credentials.yaml"

    status_until_linked(posthog, "acc_work")  # the first command, unless starved

    assert usage_json(work_dir)["linked_principal_id"] == "acc_work"
    status_json = json.loads(run_arcade("usage", "status", "--json").stdout)
    assert status_json["identity_file"] == str(work_dir / "usage.json")


# -- logged in with today's Arcade CLI ---------------------------------------------------


def test_an_oauth_login_is_linked_on_the_first_command_with_one_alias(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    status()  # the machine's anonymous history
    anon = wait_until(posthog.command_events)[0]["distinct_id"]
    arcade_core_login({"work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io")}, "work")

    linking = status_until_linked(posthog, "acc_work")  # the first command, unless starved
    asked = cloud.whoamis
    status()

    wait_until(lambda: len(posthog.command_events()) == 2 + len(linking))
    first, *later = posthog.command_events()
    assert posthog.aliases() == [(anon, "acc_work")]
    assert [e["distinct_id"] for e in later[-2:]] == ["acc_work", "acc_work"]
    for event in later[-2:]:
        props = event["properties"]
        assert (props["org_id"], props["project_id"]) == ("org_acc_work", "proj_acc_work")
        assert "$process_person_profile" not in props
    assert "org_id" not in first["properties"]
    assert 1 <= asked <= len(linking)
    assert cloud.whoamis == asked  # the next command trusted the link: no request, no YAML
    assert cloud.validations == 0


def test_arcade_context_picks_the_account_for_one_process(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    arcade_core_login(
        {
            "work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io"),
            "home": oauth_context(cloud, HOME_TOKEN, "acc_home", "h@x.io"),
        },
        "work",
    )

    status_until_linked(posthog, "acc_work")
    home = status_until_linked(posthog, "acc_home", env={"ARCADE_CONTEXT": "home"})[-1]
    assert home["properties"]["org_id"] == "org_acc_home"
    assert not posthog.same_person("acc_work", "acc_home")
    # The file still says "work": the choice held for that one process.
    assert Config.load_from_file().active_context == "work"


def test_switching_the_active_context_to_another_account_is_an_account_switch(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    config = arcade_core_login(
        {
            "work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io"),
            "home": oauth_context(cloud, HOME_TOKEN, "acc_home", "h@x.io"),
        },
        "work",
    )
    status_until_linked(posthog, "acc_work")
    linked_anon = usage_json(work_dir)["anon_id"]

    config.use_context("home")  # what `arcade context use home` does
    config.save_to_file()
    status_until_linked(posthog, "acc_home")  # the first command, unless starved
    [(_, first), (previous, second)] = posthog.aliases()
    assert (first, second) == ("acc_work", "acc_home")
    assert previous != linked_anon  # rotated before linking: the two are never merged
    assert not posthog.same_person("acc_work", "acc_home")
    assert usage_json(work_dir)["linked_principal_id"] == "acc_home"


def test_an_expired_access_token_is_not_presented(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    context = oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io", expires_in=-60)
    arcade_core_login({"work": context}, "work")
    before = (work_dir / "credentials.yaml").read_bytes()

    status()

    [event] = wait_until(posthog.command_events)
    assert event["properties"]["$process_person_profile"] is False
    assert posthog.aliases() == []
    assert cloud.whoamis == 0
    assert (work_dir / "credentials.yaml").read_bytes() == before  # never refreshed by us
    assert not (work_dir / "principal_lookup.json").exists()


def test_an_api_key_context_of_arcade_core_is_validated(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, work_dir: Path
) -> None:
    arcade_core_login({"ci": NamedContext(coordinator_url=cloud.url, api_key=account_a.key)}, "ci")

    linking = status_until_linked(posthog, account_a.principal)  # the first, unless starved
    assert 1 <= cloud.validations <= len(linking)


def test_a_self_hosted_contexts_key_is_not_sent_to_arcade_cloud(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, work_dir: Path
) -> None:
    """A `kind: self_hosted` context (an engine of the user's own) holds that engine's key:
    presented to Arcade Cloud (its lookup's fallback) it would be a secret of another
    installation sent to a third party. arcade-core's own usage identity never presents
    it either: the events stay anonymous."""
    key = "self-hosted-secret-key"
    cloud.add_account(key, "prn_self", "s@x.io")  # whatever Cloud would answer
    engine = "http://127.0.0.1:9/engine"
    onprem = NamedContext(kind="self_hosted", engine_url=engine, api_key=key)
    arcade_core_login({"onprem": onprem}, "onprem")
    before = (work_dir / "credentials.yaml").read_bytes()

    status()
    whoami = run_arcade("whoami")
    login = run_arcade("login", "--api-key", account_a.key)

    assert whoami.returncode == 0, whoami.stderr
    assert "Principal: none (a self-hosted context" in whoami.stdout
    assert f"Engine:    {engine}" in whoami.stdout
    assert "Cloud:" not in whoami.stdout
    assert key not in whoami.stdout + whoami.stderr
    # Our login would replace that context whole, and its key with it.
    assert login.returncode == 1
    assert "self-hosted" in login.stderr
    assert "ARCADE_CONTEXT" in login.stderr
    assert (work_dir / "credentials.yaml").read_bytes() == before
    events = wait_until(lambda: len(posthog.command_events()) == 3 and posthog.command_events())
    assert all(e["properties"]["$process_person_profile"] is False for e in events)
    assert posthog.aliases() == []
    assert cloud.validations == 0, "the self-hosted key was presented to Arcade Cloud"


# -- our login, read by today's Arcade CLI -------------------------------------------------


def test_our_api_key_login_is_read_by_arcade_core_as_logged_in(
    posthog: FakePostHog, account_a: Account, work_dir: Path
) -> None:
    result = run_arcade("login", "--api-key", account_a.key)
    assert result.returncode == 0, result.stderr

    config = Config.load_from_file()
    assert config.api_key == account_a.key
    assert config.user is not None
    assert config.user.email == account_a.email
    assert config.active_context in config.list_context_names()
    # An older reader, that knows only the pre-context shape, still finds the key.
    raw = yaml.safe_load((work_dir / "credentials.yaml").read_text())
    assert raw["cloud"]["api"]["key"] == account_a.key


def test_our_login_keeps_the_other_contexts_of_arcade_core(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, work_dir: Path
) -> None:
    arcade_core_login(
        {
            "work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io"),
            "home": oauth_context(cloud, HOME_TOKEN, "acc_home", "h@x.io"),
        },
        "work",
    )

    result = run_arcade("login", "--api-key", account_a.key)
    assert result.returncode == 0, result.stderr

    config = Config.load_from_file()
    assert config.list_context_names() == ["home", "work"]
    assert (config.active_context, config.api_key, config.auth) == ("work", account_a.key, None)
    assert config.contexts is not None
    home = config.contexts["home"]
    assert home.auth is not None
    assert home.auth.access_token == HOME_TOKEN


def test_logout_removes_the_context_in_force_and_the_file_with_the_last(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    arcade_core_login(
        {
            "work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io"),
            "home": oauth_context(cloud, HOME_TOKEN, "acc_home", "h@x.io"),
        },
        "work",
    )

    first = run_arcade("logout")
    assert (first.returncode, first.stdout) == (0, "Logged out.\n"), first.stderr
    config = Config.load_from_file()
    assert (config.list_context_names(), config.active_context) == (["home"], "home")
    assert config.auth is not None
    assert config.auth.access_token == HOME_TOKEN

    second = run_arcade("logout")
    assert (second.returncode, second.stdout) == (0, "Logged out.\n"), second.stderr
    assert not (work_dir / "credentials.yaml").exists()


def test_whoami_shows_the_context_org_and_project(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path
) -> None:
    arcade_core_login({"work": oauth_context(cloud, WORK_TOKEN, "acc_work", "w@x.io")}, "work")

    result = run_arcade("whoami")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Email:     w@x.io\n"
        "Principal: acc_work\n"
        f"Cloud:     {cloud.url}\n"
        "Context:   work\n"
        "Org:       w@x.io's org (org_acc_work)\n"
        "Project:   Default (proj_acc_work)\n"
    )


ENGINE = "http://127.0.0.1:9/engine"


def test_login_does_not_replace_a_self_hosted_context_that_holds_no_key(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, arcade_dir: Path
) -> None:
    """A self-hosted context with no key (an engine without auth) is a login all the same:
    `arcade login` refuses to replace it, as it does one with a key."""
    arcade_core_login({"onprem": NamedContext(kind="self_hosted", engine_url=ENGINE)}, "onprem")
    before = (arcade_dir / "credentials.yaml").read_bytes()

    login = run_arcade("login", "--api-key", account_a.key)

    assert login.returncode == 1, login.stdout
    assert "self-hosted" in login.stderr
    assert (arcade_dir / "credentials.yaml").read_bytes() == before


def test_logout_with_arcade_context_default_logs_out_of_a_file_of_flat_fields(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path
) -> None:
    """A file with no `contexts` (older Arcade CLIs wrote it so) is the context `default`
    to arcade-core 4.23: logged in with ARCADE_CONTEXT=default, and logged out of."""
    arcade_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = arcade_dir / "credentials.yaml"
    credentials.write_text("cloud:\n  api_key: arc_key_flat_0123456789\n  user: {email: f@x.io}\n")
    credentials.chmod(0o600)
    config_model.select_context("default")
    try:
        assert Config.load_from_file().api_key == "arc_key_flat_0123456789"
    finally:
        config_model.select_context(None)

    logout = run_arcade("logout", env={"ARCADE_CONTEXT": "default"})

    assert (logout.returncode, logout.stdout) == (0, "Logged out.\n"), logout.stderr
    assert not credentials.exists()


def test_whoami_of_a_self_hosted_context_shows_its_org_and_project(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path
) -> None:
    onprem = NamedContext(
        kind="self_hosted",
        engine_url=ENGINE,
        api_key="engine-key-0123",
        user=UserConfig(email="me@corp.io"),
        context=ContextConfig(
            org_id="org_1", org_name="Corp", project_id="prj_1", project_name="Main"
        ),
    )
    arcade_core_login({"onprem": onprem}, "onprem")

    result = run_arcade("whoami")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Email:     me@corp.io\n"
        "Principal: none (a self-hosted context; usage events stay anonymous)\n"
        f"Engine:    {ENGINE}\n"
        "Context:   onprem\n"
        "Org:       Corp (org_1)\n"
        "Project:   Main (prj_1)\n"
    )
    assert cloud.validations == 0


def test_logout_with_no_active_context_keeps_the_named_ones(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, account_b: Account, work_dir: Path
) -> None:
    """Several contexts, none of them active (edited by hand, or by another tool): the flat
    fields are in force, and logout drops them alone (it deleted the whole file, every
    context's key); the first context by name becomes active, as when an active one goes."""
    credentials = work_dir / "credentials.yaml"
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials.write_text(
        "cloud:\n"
        "  active_context: gone\n"
        "  api_key: arc_key_of_a_context_gone\n"
        "  contexts:\n"
        f"    second: {{api_key: {account_b.key}, user: {{email: b@x.io}}}}\n"
        f"    first: {{api_key: {account_a.key}, user: {{email: a@x.io}}}}\n"
    )
    credentials.chmod(0o600)

    logout = run_arcade("logout")

    assert (logout.returncode, logout.stdout) == (0, "Logged out.\n"), logout.stderr
    left = yaml.safe_load(credentials.read_text())["cloud"]
    assert sorted(left["contexts"]) == ["first", "second"]
    assert left["active_context"] == "first"
    assert "arc_key_of_a_context_gone" not in credentials.read_text()
    assert Config.load_from_file().api_key == account_a.key  # arcade-core reads it so
