"""`arcade login` (by key and in the browser) and `arcade whoami`, as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlencode, urlparse

import pytest
import yaml

from arcade_identity import CREDENTIALS_GONE_GRACE
from cli.live_arcade import LiveArcade
from helpers import assert_one_line_error, run_arcade, sender_pids, wait_until
from servers import FakeCloud, FakePostHog

if TYPE_CHECKING:
    from cli.accounts import Account

pytestmark = pytest.mark.timeout(60)

# Guards the tests that blank ARCADE_CLOUD_URL: should the CLI fall back to the real
# Arcade Cloud, its request goes to this dead loopback proxy, never off the machine.
NO_WAY_OUT = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


TWO_CONTEXTS = """\
cloud:
  active_context: work
  contexts:
    work:
      api_key: arc_key_work_0123456789
      user: {email: work@example.com}
    home:
      api_key: arc_key_home_0123456789
      user: {email: home@example.com}
"""


def everything_posthog_got(posthog: FakePostHog) -> str:
    return json.dumps(posthog.events())


def saved_by_hand(arcade_dir: Path, text: str) -> Path:
    """A credentials file as a user (or another tool) left it."""
    arcade_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials = arcade_dir / "credentials.yaml"
    credentials.write_text(text)
    credentials.chmod(0o600)
    return credentials


# -- login with an API key -----------------------------------------------------------------


def test_login_by_key_saves_credentials_and_aliases_before_the_login_event(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    result = run_arcade("login", "--api-key", account_a.key)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in as {account_a.email}.\n"
    assert result.stderr == ""
    assert account_a.key not in result.stdout + result.stderr

    credentials = arcade_dir / "credentials.yaml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(arcade_dir.stat().st_mode) == 0o700
    # The shape today's Arcade CLI writes (a named context, repeated flat), plus the
    # pre-context `api.key` older readers link by.
    saved = {"api_key": account_a.key, "user": {"email": account_a.email}}
    assert yaml.safe_load(credentials.read_text()) == {
        "cloud": {
            "active_context": "default",
            "contexts": {"default": saved},
            **saved,
            "api": {"key": account_a.key},
        }
    }

    wait_until(lambda: len(posthog.command_events()) == 2)
    names = [(m["event"], m["distinct_id"]) for m in posthog.events()]
    assert names == [
        ("CLI execution succeeded", first_run),
        ("$create_alias", first_run),
        ("CLI execution succeeded", account_a.principal),
    ]
    assert posthog.aliases() == [(first_run, account_a.principal)]
    login_event = posthog.command_events()[1]
    assert login_event["properties"]["command_name"] == "login"
    assert "$process_person_profile" not in login_event["properties"]
    assert posthog.same_person(first_run, account_a.principal)
    assert account_a.key not in everything_posthog_got(posthog)
    assert json.loads((arcade_dir / "usage.json").read_text())["linked_principal_id"] == (
        account_a.principal
    )


def test_login_with_host_saves_the_coordinator_url_and_later_commands_use_it(
    posthog: FakePostHog,
    cloud: FakeCloud,
    account_a: Account,
    account_b: Account,
    arcade_dir: Path,
) -> None:
    env = {"ARCADE_CLOUD_URL": "", **NO_WAY_OUT}
    result = run_arcade("login", "--api-key", account_a.key, "--host", cloud.url + "/", env=env)
    assert result.returncode == 0, result.stderr
    assert account_a.email in result.stdout
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["coordinator_url"] == cloud.url

    whoami = run_arcade("whoami", env=env)
    assert whoami.returncode == 0, whoami.stderr
    assert f"Cloud:     {cloud.url}" in whoami.stdout
    assert account_a.principal in whoami.stdout

    # Switching accounts without --host stays on the Cloud chosen before (it used to
    # validate against the default Cloud and forget the coordinator URL).
    switch = run_arcade("login", "--api-key", account_b.key, env=env)
    assert switch.returncode == 0, switch.stderr
    assert switch.stdout == f"Logged in as {account_b.email} (replacing {account_a.email}).\n"
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    context = {
        "coordinator_url": cloud.url,
        "api_key": account_b.key,
        "user": {"email": account_b.email},
    }
    assert saved["cloud"] == {
        "active_context": "default",
        "contexts": {"default": context},
        **context,
        "api": {"key": account_b.key},
    }


def test_login_with_a_rejected_key_fails_with_one_line_and_saves_nothing(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    bad_key = "arc_key_not_valid_5555"
    result = run_arcade("login", "--api-key", bad_key)

    message = assert_one_line_error(result, "rejected the API key")
    assert result.stdout == ""
    assert bad_key not in result.stderr
    assert not (arcade_dir / "credentials.yaml").exists()
    assert cloud.validations == 1

    failed = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed[0]["distinct_id"] == first_run
    assert failed[0]["properties"]["command_name"] == "login"
    assert failed[0]["properties"]["error_message"] == message
    assert bad_key not in everything_posthog_got(posthog)
    assert posthog.aliases() == []


@pytest.mark.parametrize("trouble", ["down", "hang"])
def test_login_when_the_cloud_is_down_or_hangs_fails_quickly_and_saves_nothing(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str, trouble: str
) -> None:
    env = {"ARCADE_CLOUD_URL": "http://127.0.0.1:9"} if trouble == "down" else {}
    cloud.mode = "hang"
    started = time.monotonic()
    result = run_arcade("login", "--api-key", "arc_key_whatever_1234", env=env, timeout=20)
    elapsed = time.monotonic() - started

    expected = "cannot reach Arcade Cloud" if trouble == "down" else "did not answer"
    assert_one_line_error(result, expected, "http://127.0.0.1:")
    assert elapsed < 8, elapsed
    assert not (arcade_dir / "credentials.yaml").exists()
    failed = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed[0]["distinct_id"] == first_run
    assert posthog.aliases() == []


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["--api-key", "{key}\nsecond line"], None),
        (["--api-key", "{key}\u00e9"], None),
        (["--api-key", "-"], "{key}\nfoo\n"),
        (["--api-key", "-"], "{key}\0\n"),
    ],
    ids=["two-lines", "non-ascii", "two-lines-on-stdin", "nul-on-stdin"],
)
def test_a_malformed_api_key_is_not_reported_as_cloud_unreachable(
    posthog: FakePostHog,
    cloud: FakeCloud,
    account_a: Account,
    arcade_dir: Path,
    first_run: str,
    args: list[str],
    stdin: str | None,
) -> None:
    """Cloud is up; the key (pasted with a stray line or character) cannot be put in a
    header. "cannot reach Arcade Cloud" would send the user to debug the network."""
    args = [arg.format(key=account_a.key) for arg in args]
    result = run_arcade("login", *args, input=stdin and stdin.format(key=account_a.key))

    error = assert_one_line_error(result, "API key")
    assert "cannot reach" not in error
    assert account_a.key not in result.stdout + result.stderr
    assert not (arcade_dir / "credentials.yaml").exists()
    assert cloud.validations == 0


@pytest.mark.parametrize(
    ("args", "stdin"),
    [(["--api-key", " {key} "], None), (["--api-key", "-"], "  {key}\r\n\n")],
    ids=["argument", "stdin"],
)
def test_spaces_and_line_breaks_around_a_pasted_key_are_not_part_of_it(
    posthog: FakePostHog,
    account_a: Account,
    arcade_dir: Path,
    args: list[str],
    stdin: str | None,
) -> None:
    args = [arg.format(key=account_a.key) for arg in args]
    result = run_arcade("login", *args, input=stdin and stdin.format(key=account_a.key))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in as {account_a.email}.\n"
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["api_key"] == account_a.key


@pytest.mark.parametrize("host", ["notaurl", "ftp://cloud.example", "http://[::1"])
def test_login_with_a_malformed_host_says_the_url_is_wrong(
    posthog: FakePostHog,
    cloud: FakeCloud,
    account_a: Account,
    arcade_dir: Path,
    first_run: str,
    host: str,
) -> None:
    result = run_arcade("login", "--api-key", account_a.key, "--host", host)
    error = assert_one_line_error(result, "--host", "not an http:// or https:// URL")
    assert "cannot reach" not in error

    from_env = run_arcade("login", "--api-key", account_a.key, env={"ARCADE_CLOUD_URL": host})
    error = assert_one_line_error(from_env, f"{host} is not an http:// or https:// URL")
    assert "cannot reach" not in error
    assert not (arcade_dir / "credentials.yaml").exists()
    assert cloud.validations == 0


def test_a_saved_key_that_cannot_be_sent_is_reported_as_such_not_as_cloud_unreachable(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, arcade_dir: Path
) -> None:
    """A hand-written file whose key kept a line break: whoami says what is wrong with it,
    and tracked commands go on, anonymous."""
    saved_by_hand(arcade_dir, f'cloud:\n  api_key: "{account_a.key}\\nmore"\n')

    whoami = run_arcade("whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert "Principal: unknown (the API key or token cannot be sent" in whoami.stdout
    assert "cannot reach" not in whoami.stdout
    assert account_a.key not in whoami.stdout + whoami.stderr
    status = run_arcade("usage", "status")
    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    events = wait_until(lambda: len(posthog.command_events()) == 2 and posthog.command_events())
    assert all(e["properties"]["$process_person_profile"] is False for e in events)
    assert cloud.validations == 0


def test_login_that_cannot_save_names_credentials_yaml_not_a_temp_file(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    (arcade_dir / "credentials.yaml").mkdir()
    error = assert_one_line_error(
        run_arcade("login", "--api-key", account_a.key), "cannot save credentials"
    )
    assert ".tmp" not in error
    assert error == f"cannot save credentials to {arcade_dir / 'credentials.yaml'}: Is a directory"
    assert (arcade_dir / "credentials.yaml").is_dir()


# -- login in the browser ------------------------------------------------------------------


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_browser_login_refuses_a_forged_callback_then_accepts_the_real_one(
    posthog: FakePostHog,
    cloud: FakeCloud,
    account_a: Account,
    arcade_dir: Path,
    first_run: str,
) -> None:
    cloud.browser_key = account_a.key
    with LiveArcade("login", "--no-browser", "--timeout", "20") as arcade:
        url = arcade.wait_for_line("http")
        assert url.startswith(f"{cloud.url}/api/v1/auth/cli_login?")
        query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        callback = urlparse(query["callback_uri"])
        assert callback.hostname == "127.0.0.1"
        assert callback.path == "/callback"
        assert len(query["state"]) >= 16

        forged = urlencode({"state": "not-the-state", "api_key": "arc_key_attacker"})
        assert _get(f"{query['callback_uri']}?{forged}")[0] == 400
        no_key = urlencode({"state": query["state"]})
        assert _get(f"{query['callback_uri']}?{no_key}")[0] == 400
        assert arcade.proc.poll() is None
        assert not (arcade_dir / "credentials.yaml").exists()

        status, page = _get(url)  # the browser: Cloud signs the user in, redirects back
        assert status == 200
        assert "logged in" in page
        code, stdout, stderr = arcade.finish()
    assert code == 0, stderr
    assert stderr == ""
    assert stdout.endswith(f"Logged in as {account_a.email}.\n")

    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["api"]["key"] == account_a.key
    assert stat.S_IMODE((arcade_dir / "credentials.yaml").stat().st_mode) == 0o600
    wait_until(lambda: len(posthog.command_events()) == 2)
    assert posthog.aliases() == [(first_run, account_a.principal)]
    assert posthog.command_events()[1]["distinct_id"] == account_a.principal
    assert "arc_key_attacker" not in everything_posthog_got(posthog)


def _raw_status(port: int, request: bytes) -> int:
    """Send `request` as is on a fresh connection; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.makefile("rb").readline()
    return int(answer.split()[1])


def test_the_callback_is_never_held_up_and_refuses_every_malformed_state(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    cloud.browser_key = account_a.key
    held: list[socket.socket] = []
    with LiveArcade("login", "--no-browser", "--timeout", "30") as arcade:
        try:
            url = arcade.wait_for_line("http")
            query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
            callback, state = query["callback_uri"], query["state"]
            port = urlparse(callback).port
            assert port is not None

            # Clients that hold a connection: one idle, one that sent half a request.
            held.append(socket.create_connection(("127.0.0.1", port)))
            held.append(socket.create_connection(("127.0.0.1", port)))
            held[1].sendall(b"GET /callback?state=" + state[:8].encode())
            # Clients that hang up: mid-request, and with a reset before reading the answer.
            with socket.create_connection(("127.0.0.1", port)) as gone:
                gone.sendall(b"GET /callback?sta")
            rude = socket.create_connection(("127.0.0.1", port))
            rude.sendall(b"GET /callback?state=x&api_key=y HTTP/1.0\r\n\r\n")
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rude.close()

            attacker = "arc_key_attacker_000"
            malformed = [
                f"api_key={attacker}",  # no state
                f"state={state}&state={state}&api_key={attacker}",  # repeated
                f"state={quote(state + 'é')}&api_key={attacker}",  # not ASCII
                f"state=%FF%FE&api_key={attacker}",  # not UTF-8
                f"state={'a' * 20_000}&api_key={attacker}",  # huge
                f"state={state}{'a' * 5_000}&api_key={attacker}",  # ours, then more
                f"state={state}&api_key={attacker}&api_key={attacker}",  # ours, key repeated
                f"state=&api_key={attacker}",  # empty
            ]
            for bad in malformed:
                assert _get(f"{callback}?{bad}", timeout=5)[0] == 400, bad
            raw = (
                b"GET /callback?state=\xc3\xa9&api_key=" + attacker.encode() + b" HTTP/1.0\r\n\r\n"
            )
            assert _raw_status(port, raw) == 400
            assert arcade.proc.poll() is None

            # The real callback, while the idle and half-sent connections are still open:
            # served at once, well within the 10 s a client is given to finish its request.
            status, page = _get(url, timeout=5)
            assert status == 200
            assert "logged in" in page
            code, stdout, stderr = arcade.finish()
        finally:
            for sock in held:
                sock.close()
    assert code == 0, stderr
    assert stderr == ""  # no traceback for any of it
    assert stdout.endswith(f"Logged in as {account_a.email}.\n")
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["api"]["key"] == account_a.key
    assert cloud.validations == 1


# -- the key on stdin ----------------------------------------------------------------------


def test_login_reads_the_key_from_stdin(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path
) -> None:
    result = run_arcade("login", "--api-key", "-", input=account_a.key + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in as {account_a.email}.\n"
    saved = yaml.safe_load((arcade_dir / "credentials.yaml").read_text())
    assert saved["cloud"]["api"]["key"] == account_a.key


@pytest.mark.parametrize("given", ["", "\n"], ids=["nothing", "an empty line"])
def test_login_with_no_key_on_stdin_fails_with_one_line(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str, given: str
) -> None:
    result = run_arcade("login", "--api-key", "-", input=given)
    assert_one_line_error(result, "no API key on standard input")
    assert result.stdout == ""
    assert cloud.validations == 0
    assert not (arcade_dir / "credentials.yaml").exists()


def test_browser_login_opens_the_users_browser(
    posthog: FakePostHog,
    cloud: FakeCloud,
    account_a: Account,
    arcade_dir: Path,
    tmp_path: Path,
) -> None:
    # The one stand-in allowed: a "browser" ($BROWSER) that just follows the link.
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{sys.executable}\n"
        "import sys, urllib.request\n"
        "urllib.request.urlopen(sys.argv[1], timeout=10).read()\n"
    )
    browser.chmod(0o755)
    cloud.browser_key = account_a.key
    result = run_arcade("login", "--timeout", "20", env={"BROWSER": str(browser)}, timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"Logged in as {account_a.email}." in result.stdout
    assert yaml.safe_load((arcade_dir / "credentials.yaml").read_text())["cloud"]["api"] == {
        "key": account_a.key
    }


def test_browser_login_gives_up_after_its_timeout(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    result = run_arcade("login", "--no-browser", "--timeout", "1", timeout=20)
    assert_one_line_error(result, "no login arrived within 1 s", "arcade login")
    assert "/api/v1/auth/cli_login?" in result.stdout
    assert not (arcade_dir / "credentials.yaml").exists()
    assert cloud.validations == 0
    failed = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed[0]["properties"]["command_name"] == "login"


def test_login_when_already_logged_in_says_so(posthog: FakePostHog, account_a: Account) -> None:
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    result = run_arcade("login", "--no-browser", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert f"Already logged in as {account_a.email}" in result.stdout
    assert "arcade logout" in result.stdout
    assert "http" not in result.stdout


# -- whoami --------------------------------------------------------------------------------


def test_whoami_shows_email_and_principal(
    posthog: FakePostHog, account_a: Account, first_run: str
) -> None:
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    result = run_arcade("whoami")
    assert result.returncode == 0, result.stderr
    assert f"Email:     {account_a.email}" in result.stdout
    assert f"Principal: {account_a.principal}" in result.stdout
    assert account_a.key not in result.stdout
    assert result.stderr == ""
    wait_until(lambda: len(posthog.command_events()) == 3)
    assert posthog.command_events()[2]["properties"]["command_name"] == "whoami"
    assert posthog.command_events()[2]["distinct_id"] == account_a.principal


def test_whoami_when_not_logged_in_says_so_and_fails(
    posthog: FakePostHog, cloud: FakeCloud, work_dir: Path, first_run: str
) -> None:
    result = run_arcade("whoami")
    assert_one_line_error(result, "not logged in", "arcade login")
    assert result.stdout == ""
    assert cloud.validations == 0
    failed = wait_until(lambda: posthog.events("CLI execution failed"))
    assert failed[0]["properties"]["command_name"] == "whoami"
    assert failed[0]["distinct_id"] == first_run


def test_a_credentials_file_that_is_not_a_file_is_named_once_in_the_error(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    credentials = arcade_dir / "credentials.yaml"
    os.mkfifo(credentials)
    error = assert_one_line_error(run_arcade("whoami"), "not a regular file", "arcade login")
    assert error.count(str(credentials)) == 1, error

    credentials.unlink()
    saved_by_hand(arcade_dir, "#" * (70 * 1024))
    error = assert_one_line_error(run_arcade("whoami"), "larger than 64 KiB", "arcade login")
    assert error.count(str(credentials)) == 1, error

    saved_by_hand(arcade_dir, "cloud: [unclosed\n")
    error = assert_one_line_error(run_arcade("whoami"), "not valid YAML", "arcade login")
    assert error.count(str(credentials)) == 1, error


def test_whoami_of_a_self_hosted_context_shows_no_principal_and_asks_no_cloud(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path
) -> None:
    key = "self-hosted-secret-key"
    cloud.add_account(key, "prn_self", "s@x.io")  # whatever Cloud would answer
    saved_by_hand(
        arcade_dir,
        "cloud:\n  active_context: onprem\n  contexts:\n    onprem:\n"
        f"      kind: self_hosted\n      engine_url: http://127.0.0.1:9/engine\n"
        f"      api_key: {key}\n",
    )

    result = run_arcade("whoami")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Email:     unknown\n"
        "Principal: none (a self-hosted context; usage events stay anonymous)\n"
        "Engine:    http://127.0.0.1:9/engine\n"
        "Context:   onprem\n"
    )
    wait_until(posthog.command_events)
    assert cloud.validations == 0


@pytest.mark.parametrize("command", ["login", "whoami", "logout"])
def test_a_key_given_as_an_argument_is_refused_without_being_printed(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, command: str
) -> None:
    """`arcade login KEY` (no `--api-key`): click would answer "Got unexpected extra
    argument (KEY)", printing the key. The error says how to give it, and shows none."""
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    before = (arcade_dir / "credentials.yaml").read_bytes()
    result = run_arcade(command, account_a.key, "x")
    assert_one_line_error(
        result, "2 unexpected argument(s), not shown", "arcade login --api-key KEY"
    )
    assert account_a.key not in result.stdout + result.stderr
    assert (arcade_dir / "credentials.yaml").read_bytes() == before  # nothing done
    wait_until(lambda: len(posthog.command_events()) == 2)
    failed = posthog.command_events()[-1]
    assert failed["event"] == "CLI execution failed"
    assert failed["properties"]["command_name"] == command
    assert account_a.key not in json.dumps(failed)


# -- logout --------------------------------------------------------------------------------


def test_logout_says_so_and_starts_a_new_anonymous_identity(
    posthog: FakePostHog, account_a: Account, work_dir: Path, arcade_dir: Path, first_run: str
) -> None:
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0

    result = run_arcade("logout")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Logged out.\n"
    assert not (arcade_dir / "credentials.yaml").exists()
    status = run_arcade("usage", "status")
    new_anon = json.loads((arcade_dir / "usage.json").read_text())["anon_id"]
    assert new_anon != first_run
    assert f"Anonymous id:     {new_anon}\nLinked principal: none\n" in status.stdout
    # `arcade logout` is tracked as the logout: sent as the account that logged out.
    wait_until(lambda: len(posthog.command_events()) == 4)
    logout_event = posthog.command_events()[2]
    assert logout_event["properties"]["command_name"] == "logout"
    assert logout_event["distinct_id"] == account_a.principal

    again = run_arcade("logout")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "Not logged in.\n"
    assert json.loads((arcade_dir / "usage.json").read_text())["anon_id"] == new_anon


def test_a_logout_while_tracking_is_off_sends_nothing_and_still_ends_the_session(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    """Turned on again, tracking sends as one new anonymous person: not as the account
    that logged out, nor under a random id per event (the identity still linked to it)."""
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    wait_until(lambda: len(posthog.command_events()) == 2)  # status, login
    assert run_arcade("usage", "disable").returncode == 0
    sent_before = len(posthog.log())
    logout = run_arcade("logout")
    assert (logout.returncode, logout.stdout, logout.stderr) == (0, "Logged out.\n", "")
    identity = json.loads((arcade_dir / "usage.json").read_text())
    assert identity["linked_principal_id"] is None
    assert identity["anon_id"] != first_run
    assert len(posthog.log()) == sent_before  # nothing sent while off

    assert run_arcade("usage", "enable").returncode == 0
    assert run_arcade("whoami").returncode == 1  # not logged in: an event all the same
    status = run_arcade("usage", "status")
    assert f"Anonymous id:     {identity['anon_id']}\nLinked principal: none\n" in status.stdout
    wait_until(lambda: len(posthog.command_events()) == 5)
    after = posthog.command_events()[-3:]  # enable, whoami, status
    assert {e["distinct_id"] for e in after} == {identity["anon_id"]}
    assert posthog.aliases() == [(first_run, account_a.principal)]


def test_credentials_deleted_by_hand_end_the_session_once_they_stay_gone(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    """`rm ~/.arcade/credentials.yaml` is a logout that tracking does not see: the identity
    stays linked to the account, whose anon_id must not be sent. A command then goes out
    under an id of nobody's, and writes down when it found the file gone; once it has
    been gone CREDENTIALS_GONE_GRACE (the date is moved back here, as the clock would
    move on), the next command ends the session as a logout would: one new anonymous
    person from then on, and `usage status` no longer shows the account."""
    assert run_arcade("login", "--api-key", account_a.key).returncode == 0
    wait_until(lambda: len(posthog.command_events()) == 2)  # status, login
    (arcade_dir / "credentials.yaml").unlink()

    assert run_arcade("whoami").returncode == 1  # not logged in
    usage = arcade_dir / "usage.json"
    identity = json.loads(usage.read_text())
    assert identity["linked_principal_id"] == account_a.principal
    identity["credentials_gone_since"] -= CREDENTIALS_GONE_GRACE
    usage.write_text(json.dumps(identity))

    assert run_arcade("whoami").returncode == 1
    status = run_arcade("usage", "status")
    after = json.loads(usage.read_text())
    assert after["linked_principal_id"] is None
    assert after["anon_id"] not in (first_run, identity["anon_id"])
    assert f"Anonymous id:     {after['anon_id']}\nLinked principal: none\n" in status.stdout
    wait_until(lambda: len(posthog.command_events()) == 5)
    gone, ended, shown = (e["distinct_id"] for e in posthog.command_events()[2:])
    assert gone not in (first_run, account_a.principal, after["anon_id"])  # nobody's
    assert ended == shown == after["anon_id"]
    assert posthog.aliases() == [(first_run, account_a.principal)]
    assert not posthog.same_person(after["anon_id"], account_a.principal)


def test_a_logout_beside_a_busy_server_is_sent_as_the_account_that_leaves(
    posthog: FakePostHog, account_a: Account, arcade_dir: Path, first_run: str
) -> None:
    """`arcade logout` deletes the file first and ends the session itself a moment later.
    A server calling a tool every 2 ms finds the file gone in between: it must leave the
    ending to the logout (whose event goes out as the account), not end it first."""
    import threading

    from arcade_usage import ServerTracker

    tracker = ServerTracker(server_version="1")
    stop = threading.Event()

    def calls() -> None:
        while not stop.wait(0.002):
            tracker.track_tool_call(True)

    caller = threading.Thread(target=calls)
    caller.start()
    try:
        for _ in range(3):
            assert run_arcade("login", "--api-key", account_a.key).returncode == 0
            logout = run_arcade("logout")
            assert (logout.returncode, logout.stdout) == (0, "Logged out.\n"), logout.stderr
    finally:
        stop.set()
        caller.join()
    wait_until(lambda: len(posthog.command_events()) == 7 and not sender_pids(arcade_dir))
    logouts = [e for e in posthog.command_events() if e["properties"]["command_name"] == "logout"]
    assert [e["distinct_id"] for e in logouts] == [account_a.principal] * 3


def test_logout_with_arcade_context_naming_no_saved_context_deletes_nothing(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    """`ARCADE_CONTEXT=typo arcade whoami` says "not logged in"; logout with the same
    environment says so too, and leaves every other context's key where it was."""
    credentials = saved_by_hand(arcade_dir, TWO_CONTEXTS)
    typo = {"ARCADE_CONTEXT": "typo"}
    assert_one_line_error(run_arcade("whoami", env=typo), "not logged in")

    logout = run_arcade("logout", env=typo)

    assert logout.returncode == 0, logout.stderr
    assert logout.stdout == "Not logged in.\n"
    assert credentials.read_text() == TWO_CONTEXTS


def test_logout_of_a_credentials_file_it_cannot_parse_keeps_it(
    posthog: FakePostHog, cloud: FakeCloud, arcade_dir: Path, first_run: str
) -> None:
    """A hand-edited file with one YAML mistake holds several contexts' keys: logout cannot
    tell which context is in force, so it says why in one line and loses nothing."""
    damaged = TWO_CONTEXTS + "    broken: [unclosed\n"
    credentials = saved_by_hand(arcade_dir, damaged)

    logout = run_arcade("logout")

    error = assert_one_line_error(logout, "not valid YAML", "Fix the file, or delete it")
    assert error.count(str(credentials)) == 1, error
    assert logout.stdout == ""
    assert credentials.read_text() == damaged


def test_no_message_shows_the_password_of_a_host_url(
    posthog: FakePostHog, cloud: FakeCloud, account_a: Account, first_run: str
) -> None:
    """A --host may carry a user name and password: no message shows them."""
    result = run_arcade(
        "login", "--api-key", account_a.key, "--host", "http://ops:s3cr3t-pw@127.0.0.1:9"
    )

    assert_one_line_error(result, "cannot reach Arcade Cloud at http://***@127.0.0.1:9")
    assert "s3cr3t" not in result.stdout + result.stderr
