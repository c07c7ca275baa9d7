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
from collections.abc import Callable

import pytest

from arcade_usage._scrub import MAX_ERROR_LENGTH, ROWS, WINDOW, scrub

HOME = "/home/al"

# Each kind of secret with the messages it must scrub, exactly as they are sent.
CASES: dict[str, list[tuple[str, str]]] = {
    "PEM private key block": [
        (
            "bad key -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAZq8vW3nP\n"
            "x7LmZq8vW3nPx7Lm\n-----END RSA PRIVATE KEY----- in config",
            "bad key -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY----- in config",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n"
            "-----END OPENSSH PRIVATE KEY-----\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----***-----END OPENSSH PRIVATE KEY-----",
        ),
        (
            # As a JSON string holds it: escaped newlines.
            '{"data": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----"}',
            '{"data": "-----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY-----"}',
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHzBJBgkq\n"
            "-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----***-----END ENCRYPTED PRIVATE KEY-----",
        ),
        (
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIZq8v\n-----END EC PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----***-----END EC PRIVATE KEY-----",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----***-----END PGP PRIVATE KEY BLOCK-----",
        ),
        # No END (the message was cut): everything after BEGIN goes.
        (
            "cannot load -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAZq8vW3nP\nx7Lm",
            "cannot load -----BEGIN RSA PRIVATE KEY-----***",
        ),
        # A public key or a certificate is not a secret.
        (
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYH\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYH\n-----END PUBLIC KEY-----",
        ),
    ],
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
    "Cookie and Set-Cookie value": [
        ("Cookie: sid=Zq8vW3nP; theme=dark", "Cookie: ***"),
        (
            "Set-Cookie: sid=Zq8vW3nP; Path=/; HttpOnly\nServer: nginx",
            "Set-Cookie: ***\nServer: nginx",
        ),
        ("set-cookie:session=Zq8vW3nP", "set-cookie:***"),
        ("{'Cookie': 'sid=Zq8vW3nP; a=b', 'Host': 'x'}", "{'Cookie': '***', 'Host': 'x'}"),
        ("request cookies={'sid': 'Zq8vW3nP'}", "request cookies=***"),
        ("the cookie jar is empty", "the cookie jar is empty"),
    ],
    "YAML value of a key named like a secret": [
        ("secret:    Zq8vW3nP", "secret: ***"),
        ("client_secret   :   Zq8v W3nP x7Lm", "client_secret   : ***"),
        ("db:\n  password: 'Zq8v W3nP'\n  user: bob", "db:\n  password: ***\n  user: bob"),
        ('"api_key": "Zq8v W3nP"', '"api_key": ***'),
        ("secret: |\n  Zq8vW3nP\n  x7Lm\nuser: bob", "secret: ***\nuser: bob"),
        ("secret: >-\n    Zq8v\n\n    W3nP\nnext: 1", "secret: ***\nnext: 1"),
        ("config:\n  token: |+\n    Zq8vW3nP\n  user: bob", "config:\n  token: ***\n  user: bob"),
        ("token:\n  Zq8vW3nP\n  x7Lm", "token: ***"),
        ("- api_key: &key Zq8vW3nP", "- api_key: ***"),
        ("password: !!str Zq8v W3nP", "password: ***"),
        ("error in config\nauth_token: Zq8v W3nP", "error in config\nauth_token: ***"),
        # Not a key: an exception's name, or no space after the colon (the next row's).
        ("AuthenticationError: wrong account", "AuthenticationError: wrong account"),
        ("password:Zq8vW3nP and more", "password:*** and more"),
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
        # A list, tuple or mapping as the value: all of it goes, nested ones included,
        # to the last closing bracket of its kind on the line.
        ("{'api_key': ['Zq8vW3nP'], 'user': 1}", "{'api_key': ***, 'user': 1}"),
        ("{'credentials': ('me', 'Zq8vW3nP')}", "{'credentials': ***}"),
        ('{"auth": {"user": "me", "pass": "Zq8vW3nP"}, "n": 1}', '{"auth": ***'),
        ("{'auth': {'basic': {'user': 'u'}, 'pw': 'Zq8vW3nP'}, 'n': 1}", "{'auth': ***"),
        ("{'credentials': [['me'], 'Zq8vW3nP']}", "{'credentials': ***}"),
        ("{'client_secret': ('id', ('Zq8vW3nP',)), 'x': 1}", "{'client_secret': ***, 'x': 1}"),
        ('password=["Zq8vW3nP"', "password=***"),
        # An exception's name is not a key: the error stays readable.
        ("KeyError: 'profile'", "KeyError: 'profile'"),
        ("AuthenticationError: wrong account", "AuthenticationError: wrong account"),
        ("the token expired", "the token expired"),
    ],
    "quoted value after a word naming a password": [
        ("password 'Zq8v W3nP' was refused", "password '***' was refused"),
        ('db_passwd\t"Zq8vW3nP"', 'db_passwd\t"***"'),
        # After other words a quoted value is as often a name: it stays.
        ("ValueError: Secret 'GITHUB_TOKEN' not found in context.",) * 2,
        ("No credentials 'work' context",) * 2,
        ("unknown token 'EOF'",) * 2,
        ("missing key 'profile'",) * 2,
        ("the password expired",) * 2,
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
    "Stripe secret or restricted key": [
        ("stripe: sk_live_51HxZq8vW3nPx7Lm rejected", "stripe: sk_live_*** rejected"),
        ("rk_live_Zq8vW3nPx7Lm01", "rk_live_***"),
        ("sk_test_Zq8vW3nPx7Lm and rk_test_Zq8vW3nPx7Lm", "sk_test_*** and rk_test_***"),
        # A publishable key is public by design; a name that only ends so is no key.
        ("pk_live_Zq8vW3nPx7Lm", "pk_live_Zq8vW3nPx7Lm"),
        ("task_test_Zq8vW3nPx7Lm", "task_test_Zq8vW3nPx7Lm"),
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
    "AWS secret access key": [
        ("aws wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY denied", "aws *** denied"),
        ("(Zq8vW3nPx7LmZq8vW3nPx7LmZq8vW3nPx7LmZq8v)", "(***)"),
        ("AKIAZQ8VW3NPX7LM0123:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "AKIA***:***"),
        # A git hash, a path, 41 characters: not a key.
        (
            "at 3f786850e387550fdab836ed7e6dc881de23001b",
            "at 3f786850e387550fdab836ed7e6dc881de23001b",
        ),
        ("/usr/lib/python3/dist-packages/a/b.py", "/usr/lib/python3/dist-packages/a/b.py"),
        (
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1",
        ),
    ],
    "Google API key": [
        (
            "maps: AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW invalid",
            "maps: AIza*** invalid",
        ),
        ("AIzaSyZq8v-W3nP_x7LmZq8vW3nPx7LmZq8vW3n", "AIza***"),
        ("AIzaShort", "AIzaShort"),
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


@pytest.mark.parametrize(("message", "expected"), _cases("PEM private key block"))
def test_pem_private_key_block(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Cookie and Set-Cookie value"))
def test_cookie_value(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("YAML value of a key named like a secret"))
def test_yaml_value_of_a_secret_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Stripe secret or restricted key"))
def test_stripe_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("AWS secret access key"))
def test_aws_secret_access_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


@pytest.mark.parametrize(("message", "expected"), _cases("Google API key"))
def test_google_api_key(message: str, expected: str) -> None:
    assert _scrubbed(message) == expected


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


@pytest.mark.parametrize(
    ("message", "expected"), _cases("quoted value after a word naming a password")
)
def test_quoted_value_after_a_password_word(message: str, expected: str) -> None:
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
    "PEM heads with no end": _repeated("-----BEGIN RSA PRIVATE KEY-----"),
    "PEM ends with no head": _repeated("-----END RSA PRIVATE KEY-----"),
    "cookie headers with no value": _repeated("Set-Cookie: "),
    "YAML secret keys with no value": _repeated("password:\n  "),
    "YAML keys nested deeper and deeper": "".join(" " * i + "token: |\n" for i in range(2_000)),
    "base64 runs of 41": _repeated("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1 "),
    "Stripe heads": _repeated("sk_live_"),
    "AIza heads": _repeated("AIza"),
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


# -- the window: cost bounded by what is kept -------------------------------------

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KNOWN = "c2VjcmV0LWFwaS1rZXk8Zq8v"
SECRET_HOME = f"/home/{SECRET}"

# A secret in its context, and the text that must not be readable in the result.
STRADDLING: dict[str, tuple[str, str]] = {
    "PEM block": (
        f"-----BEGIN RSA PRIVATE KEY-----\nMIIE{SECRET}{SECRET}\n{SECRET}{SECRET}\n"
        "-----END RSA PRIVATE KEY-----",
        SECRET,
    ),
    "YAML block": (f"\nsecret: |\n  {SECRET} {SECRET}\n  {SECRET}\nnext: 1", SECRET),
    "cookie": (f"Cookie: sid=x; a={SECRET} b {SECRET}", SECRET),
    "quoted value": (f'password="{SECRET} {SECRET}"', SECRET),
    "sk- key": (f"sk-{SECRET}{SECRET}", SECRET),
    "GitHub token": (f"ghp_{SECRET}{SECRET}", SECRET),
    "Stripe key": (f"sk_live_{SECRET}{SECRET}", SECRET),
    "Google key": (f"AIza{SECRET}{SECRET}{SECRET}", SECRET),
    "AWS secret": (AWS_SECRET, AWS_SECRET),
    "JWT": (f"eyJhbGciOiJIUzI1NiJ9.eyJ{SECRET}.{SECRET}", SECRET),
    "email": (f"{SECRET}@example.com", SECRET),
    "URL password": (f"https://me:{SECRET}@host/x", SECRET),
    "known secret": (KNOWN, KNOWN),
    "home path": (f"{SECRET_HOME}/project", SECRET),
}

PAD = "Zz" * 50  # a known secret: a hundred characters in, three out
FILL = "Yy" * 60


def _straddling(context: str, at: int) -> str:
    """`context` placed so that the window ends `at` characters into it, after text that
    the known secrets shrink to a third of the output."""
    before = WINDOW - at
    pads = (before - 5) // (len(PAD) + 1)
    fill = before - pads * (len(PAD) + 1) - 1
    return (PAD + " ") * pads + FILL[:fill] + " " + context + " and the rest " * 1000


@pytest.mark.parametrize(("context", "secret"), STRADDLING.values(), ids=list(STRADDLING.keys()))
def test_a_secret_cut_by_the_window_leaves_nothing_of_itself(context: str, secret: str) -> None:
    for at in range(1, len(context)):
        message = _straddling(context, at)
        assert message[WINDOW - at : WINDOW] == context[:at]

        sent = scrub(message, [PAD, FILL[: len(message)], KNOWN], home=SECRET_HOME)

        assert len(sent) <= MAX_ERROR_LENGTH
        assert sent.endswith("...")
        assert _leaks(secret, sent) == [], (at, sent)


@pytest.mark.parametrize(
    "message",
    [
        # Not a JWT until its second dot, which is past the window.
        f"eyJhbGciOiJIUzI1NiJ9.eyJ{SECRET * 1000}.sig",
        f"mailto:{SECRET * 1000}@example.com",
        SECRET * 1000,
    ],
)
def test_a_message_that_is_one_word_longer_than_the_window_keeps_none_of_it(
    message: str,
) -> None:
    assert scrub(message, home=HOME) == "..."


def test_what_comes_before_the_window_end_is_kept() -> None:
    message = "Deploy failed: api_key=Zq8vW3nPx7Lm rejected by " + "the server " * 1_000_000

    sent = scrub(message, home=HOME)

    assert sent.startswith("Deploy failed: api_key=*** rejected by the server the server")
    assert len(sent) == MAX_ERROR_LENGTH
    assert sent.endswith("...")


def _best_of(runs: int, message: object) -> float:
    """The fastest of `runs` scrubs, in seconds: what the work costs, not the machine's load."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        scrub(message, [KNOWN], home=HOME)
        best = min(best, time.perf_counter() - started)
    return best


TEN_MB = 10_000_000
# Built in the test that uses them, not at collection: 50 MB in every worker otherwise.
LARGE: dict[str, Callable[[], str | bytes]] = {
    "words": lambda: _repeated("a line of an error ", TEN_MB),
    "one word": lambda: "a" * TEN_MB,
    "secrets everywhere": lambda: _repeated("\n".join(message for message, _ in ALL_CASES), TEN_MB),
    "every row's characters at random": lambda: (
        PATHOLOGICAL["every row's characters at random"] * 10
    ),
    "bytes": lambda: _repeated("\udcff error bytes ", TEN_MB).encode("utf-8", "surrogateescape"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("make", LARGE.values(), ids=LARGE.keys())
def test_a_10_mb_message_is_scrubbed_in_5_ms(make: Callable[[], str | bytes]) -> None:
    # Whole-text work would cost 10 MB / 4 KB = 2,400 times a window's; the best of
    # 30 runs is what the work costs on a loaded machine.
    message = make()
    assert len(message) >= TEN_MB
    scrub(message, home=HOME)  # compiles the table
    assert _best_of(30, message) <= 0.005


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
