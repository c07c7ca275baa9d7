"""Scrubbing: an error message leaves the machine without a secret, an email or the home path.

One test per row of the scrubbing table (`CASES` is keyed by the row's kind, and a
test holds the two together), then the adversarial ones: nothing of a secret left
to recover it from, a message that is all secret, text Python finds odd, input
built to make a regular expression backtrack, and the 300-character cut.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from arcade_usage._scrub import MAX_ERROR_LENGTH, ROWS, scrub

HOME = "/home/al"

# Each kind of secret with the messages it must scrub, exactly as they are sent.
CASES: dict[str, list[tuple[str, str]]] = {
    "URL userinfo password": [
        ("https://user:p%40ss!w:rd@host/x", "https://user:***@host/x"),
        (
            "clone https://bot:pa/ss@git.example.org/r.git failed",
            "clone https://bot:***@git.example.org/r.git failed",
        ),
        (
            "postgres://:hunter2@localhost:5432/db refused",
            "postgres://:***@localhost:5432/db refused",
        ),
        ("redis://u:p@ss@cache:6379 down", "redis://u:***@cache:6379 down"),
        ("GIT+SSH://me:Zq8v@host/r", "GIT+SSH://me:***@host/r"),
        ("http://localhost:8080/health is down", "http://localhost:8080/health is down"),
    ],
    "Authorization value, any scheme": [
        ("Authorization: Bearer Zq8vW3nP", "Authorization: ***"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: ***"),
        ("Authorization: Token Zq8vW3nP rejected", "Authorization: *** rejected"),
        ("authorization=Zq8vW3nP&x=1", "authorization=***&x=1"),
        ("{'Authorization': 'Bearer Zq8vW3nP'}", "{'Authorization': '***'}"),
        ("Proxy-Authorization: Negotiate YIIB", "Proxy-Authorization: ***"),
    ],
    "Bearer token": [
        ("server said Bearer Zq8vW3nP is expired", "server said Bearer *** is expired"),
        ("bearer\tZq8vW3nP", "bearer ***"),
    ],
    "value of a key named like a secret": [
        ("GET /x?access_token=Zq8vW3nP&page=2", "GET /x?access_token=***&page=2"),
        ("client_secret: Zq8vW3nP", "client_secret: ***"),
        ("db_password=Zq8vW3nP failed", "db_password=*** failed"),
        ("PASSWD=Zq8vW3nP", "PASSWD=***"),
        ("--api-key=Zq8vW3nP", "--api-key=***"),
        ('{"token": "Zq8v W3nP", "user": 1}', '{"token": "***", "user": 1}'),
        ('{"password": "Zq8v\\"W3nP"}', '{"password": "***"}'),
        (
            "s3?X-Amz-Credential=AK/2024&X-Amz-Signature=Zq8vW3nP",
            "s3?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        ("api_key = 'Zq8vW3nP'", "api_key = '***'"),
        ("auth_header=Zq8vW3nP;next", "auth_header=***;next"),
        ("(secret=Zq8vW3nP)", "(secret=***)"),
        ("{'password' => 'Zq8v W3nP'}", "{'password' => '***'}"),
        # An exception's name is not a key: the error stays readable.
        ("KeyError: 'profile'", "KeyError: 'profile'"),
        ("AuthenticationError: wrong account", "AuthenticationError: wrong account"),
        ("the token expired", "the token expired"),
    ],
    "command-line option named like a secret": [
        ("--db-password Zq8vW3nP --verbose", "--db-password *** --verbose"),
        ("arcade deploy --token 'Zq8v W3nP'", "arcade deploy --token '***'"),
        ("--client-secret\tZq8vW3nP,", "--client-secret\t***,"),
    ],
    "OpenAI/Anthropic-style key": [
        ("key sk-proj-Zq8vW3nPx7Lm0123456789abcdef rejected", "key sk-*** rejected"),
        ("sk-ant-api03-Zq8vW3nPx7Lm0123456789", "sk-***"),
        ("sk-Zq8vW3nPx7Lm0123456789ab", "sk-***"),
        (
            "task-Zq8vW3nPx7Lm0123456789ab and sk-learn",
            "task-Zq8vW3nPx7Lm0123456789ab and sk-learn",
        ),
    ],
    "GitHub token": [
        ("ghp_Zq8vW3nPx7Lm0123456789abcdefABCDEF12 bad", "ghp_*** bad"),
        ("gho_Zq8vW3nPx7Lm0123456789", "gho_***"),
        ("ghu_Zq8vW3nPx7Lm0123456789", "ghu_***"),
        ("ghs_Zq8vW3nPx7Lm0123456789", "ghs_***"),
        ("ghr_Zq8vW3nPx7Lm0123456789", "ghr_***"),
        ("github_pat_11AB_Zq8vW3nPx7Lm0123456789", "github_pat_***"),
    ],
    "Slack token": [
        ("xoxb-1234567890-Zq8vW3nPx7", "xoxb-***"),
        ("xoxp-1-2-Zq8vW3nPx7 xoxa-2-Zq8vW3nPx7", "xoxp-*** xoxa-***"),
        ("xoxr-Zq8vW3nPx7Lm xoxs-Zq8vW3nPx7Lm", "xoxr-*** xoxs-***"),
    ],
    "AWS access key id": [
        ("AKIAZQ8VW3NPX7LM0123 denied", "AKIA*** denied"),
        ("id=ASIAZQ8VW3NPX7LM0123;", "id=ASIA***;"),
        ("ASIAN markets", "ASIAN markets"),
    ],
    "JSON Web Token": [
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJaOHYifQ.Zq8v-W3nP_x7 expired", "jwt *** expired"),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJaOHYifQ.", "***"),
    ],
    "email address": [
        ("sent to jane.doe+ci@example.co.uk today", "sent to <email> today"),
        ("mailto:Zq8v@corp.example", "mailto:<email>"),
        ("?to=jane%2Btag%40example.com&x=1", "?to=<email>&x=1"),
        ("user@localhost stays", "user@localhost stays"),
    ],
}


def test_every_row_of_the_table_has_its_cases() -> None:
    assert sorted(CASES) == sorted(kind for kind, *_ in ROWS)


def _scrubbed(message: str) -> str:
    return scrub(message, home=HOME)


def _cases(kind: str) -> list[tuple[str, str]]:
    return CASES[kind]


@pytest.mark.parametrize(("message", "expected"), _cases("URL userinfo password"))
def test_url_password(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Authorization value, any scheme"))
def test_authorization_value(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Bearer token"))
def test_bearer_token(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("value of a key named like a secret"))
def test_value_of_a_secret_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("command-line option named like a secret"))
def test_secret_option_value(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("OpenAI/Anthropic-style key"))
def test_sk_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("GitHub token"))
def test_github_token(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Slack token"))
def test_slack_token(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("AWS access key id"))
def test_aws_key_id(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("JSON Web Token"))
def test_jwt(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("email address"))
def test_email(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


KEY = "c2VjcmV0LWFwaS1rZXk"  # no known shape: only being told can remove it


@pytest.mark.parametrize(
    ("message", "secrets", "expected"),
    [
        (f"request with {KEY} failed", [KEY], "request with *** failed"),
        (f"{KEY}{KEY}", [KEY, None, ""], "******"),
        # Longest first: the key that holds the shorter one goes whole.
        ("using abcdef-123456", ["abcdef", "abcdef-123456"], "using ***"),
        ("as Jane.Doe@Example.com", ["Jane.Doe@Example.com"], "as ***"),
        # Shorter than four characters: masking it everywhere would eat the message.
        ("exit 1 abc", ["abc"], "exit 1 abc"),
    ],
)
def test_given_secrets_are_removed_verbatim(
    message: str, secrets: list[str | None], expected: str
) -> None:
    assert scrub(message, secrets, home=HOME) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (f"cannot read {HOME}/proj/arcade.toml", "cannot read ~/proj/arcade.toml"),
        (f"no space in {HOME}", "no space in ~"),
        (f"'{HOME}': denied", "'~': denied"),
        (f"{HOME}/a and /home/alice/b and {HOME}.bak", "~/a and /home/alice/b and /home/al.bak"),
        # Another path that only holds the home's text is not the home.
        (f"/mnt{HOME}/x", f"/mnt{HOME}/x"),
    ],
)
def test_home_becomes_tilde_at_a_path_boundary(message: str, expected: str) -> None:
    assert scrub(message, home=HOME) == expected


def test_home_given_with_a_trailing_separator() -> None:
    assert scrub(f"{HOME}/x", home=HOME + "/") == "~/x"


def test_root_as_home_changes_nothing() -> None:
    assert scrub("/etc/passwd missing", home="/") == "/etc/passwd missing"


ALL_CASES = [case for cases in CASES.values() for case in cases]


@pytest.mark.parametrize(("message", "expected"), ALL_CASES)
def test_scrubbing_twice_changes_nothing(message: str, expected: str) -> None:
    # TrackedTyper scrubs the error and the tracker scrubs it again.
    assert _scrubbed(expected) == expected


SECRET = "Zq8vW3nPx7Lm"


def _leaks(secret: str, text: str) -> list[str]:
    """Every four-character piece of `secret` that can still be read in `text`."""
    return [secret[i : i + 4] for i in range(len(secret) - 3) if secret[i : i + 4] in text]


@pytest.mark.parametrize(
    "message",
    [
        f"password={SECRET}",
        f"password={SECRET}&next=1",
        f"password={SECRET}, retry",
        f"password={SECRET};",
        f"(password={SECRET})",
        f"[token={SECRET}]",
        f"{{token={SECRET}}}",
        f"token='{SECRET}'",
        f'token="{SECRET} {SECRET}"',
        f"token: {SECRET}",
        f"--token {SECRET}",
        f"--token={SECRET}",
        f"Authorization: Digest {SECRET}",
        f"Bearer {SECRET}",
        f"https://me:{SECRET}@host",
        f"https://me:{SECRET}:{SECRET}/{SECRET}@host",
        f"sk-{SECRET}{SECRET}",
        f"ghp_{SECRET}{SECRET}",
        f"{SECRET}@example.com",
        f"password=  {SECRET}",
        f"Passwort={SECRET}",
    ],
)
def test_nothing_of_the_value_is_left(message: str) -> None:
    sent = _scrubbed(message)
    assert _leaks(SECRET, sent) == [], sent


@pytest.mark.parametrize(
    ("message", "secrets", "secret"),
    [
        (KEY, [KEY], KEY),
        (f"  {KEY}\n", [KEY], KEY),
        (f"sk-{SECRET}0123456789", [], SECRET),
        (f"{SECRET}@example.com", [], SECRET),
        (f"password={SECRET}", [], SECRET),
        (f"Authorization: Bearer {SECRET}", [], SECRET),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJaOHYifQ.Zq8vW3nP", [], "eyJzdWIiOiJaOHYifQ"),
    ],
)
def test_a_message_that_is_all_secret_is_still_said(
    message: str, secrets: list[str], secret: str
) -> None:
    sent = scrub(message, secrets, home=HOME)
    assert sent
    assert _leaks(secret, sent) == []


def test_non_ascii_and_lone_surrogates_do_not_crash_it() -> None:
    secret = "\udcfe\udcfdkey\udcfc"
    message = f"échec \udcff {secret}: passwort=s3cr\udcffet für ünïcødé@exämple.de in {HOME}/ü"
    assert scrub(message, [secret], home=HOME) == (
        "échec \udcff ***: passwort=*** für <email> in ~/ü"
    )


def test_the_cut_never_leaves_half_a_secret() -> None:
    message = "x" * 280 + f" password={SECRET}{SECRET} then " + "y" * 100

    sent = scrub(message, home=HOME)

    assert len(sent) == MAX_ERROR_LENGTH == 300
    assert sent.endswith("...")
    assert _leaks(SECRET, sent) == []
    assert "password=***" in sent


def test_a_message_within_the_limit_is_only_stripped() -> None:
    message = "z" * MAX_ERROR_LENGTH
    assert scrub(f"\n {message} \n", home=HOME) == message


def _repeated(piece: str, size: int = 1_000_000) -> str:
    return (piece * (size // len(piece) + 1))[:size]


# Each would take minutes in a pattern with nested or overlapping unbounded runs.
PATHOLOGICAL = {
    "one long word": "a" * 1_000_000,
    "key words run together": _repeated("keytoken"),
    "keys with no value": _repeated("token="),
    "options with no value": _repeated("--token"),
    "an unclosed quote after each key": _repeated('token="'),
    "a key, then a megabyte of blanks": "token" + " " * 1_000_000,
    "URL heads with no @": _repeated("a://b:"),
    "a password of colons and slashes": "a://b:" + ":/" * 500_000,
    "@ with no domain dot": _repeated("a@b"),
    "%40 run together": _repeated("a%40"),
    "JWT heads": _repeated("eyJa.eyJ"),
    "sk- run together": _repeated("sk-"),
    "Authorization with no value": _repeated("Authorization: "),
    "Bearer Bearer": _repeated("Bearer "),
    "the home again and again": _repeated(HOME),
    "every row's characters at random": "".join(
        random.Random(11).choices("keytonsaupwrh:=@%40/-_.\"' \t", k=1_000_000)
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("message", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_a_megabyte_built_to_backtrack_is_scrubbed_quickly(message: str) -> None:
    started = time.process_time()
    sent = scrub(message, ["Zq8vW3nPx7Lm"], home=HOME)
    elapsed = time.process_time() - started
    # Linear patterns take at most 0.2 CPU-s here; a backtracking one, minutes.
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert 0 < len(sent) <= MAX_ERROR_LENGTH


@pytest.mark.timeout(60)
def test_importing_the_module_does_not_import_re() -> None:
    # A successful command never scrubs; it should not pay for `re` either.
    script = "import sys, arcade_usage._scrub; print('re' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr
