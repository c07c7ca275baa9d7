"""Scrubbing: what an error message may say before it leaves the machine.

An error message is the one free-text field we send, and the text a failing
command prints can hold anything: a header dumped by an HTTP library, a URL with
its password, a token pasted on the command line. `scrub` masks every kind of
secret that SPEC names, one row of `ROWS` per kind, and keeps the words around
it (`access_token=***`) so the error still says what went wrong.

Each row masks a value whole, up to a delimiter (whitespace, `&`, `,`, `;`, a
quote, a closing bracket), so nothing of it is left to recover the secret from.
The patterns are written to run in linear time: every unbounded run either ends
the pattern or cannot cross the literal that starts the next match, and a match
that may start inside a word is pinned to the word's start by a lookbehind. A
row runs only when its trigger (a lowercase substring) is in the text, so a long
message with nothing secret in it costs a few substring searches.

`re` is imported, and the table compiled, on the first failed command only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing

if TYPE_CHECKING:
    import re
    from collections.abc import Iterable

MAX_ERROR_LENGTH = 300
MASK = "***"

# `passw` is password, passwd (and Passwort); `auth` also finds `authorization`.
_KEY_WORDS = ("key", "token", "secret", "passw", "auth", "credential", "signature")
_KEY_WORD = r"(?:key|token|secret|passw|auth|credential|signature)"
# What ends a value: whitespace, `&` `,` `;`, a quote or backtick, a closing bracket.
_VALUE = r"""[^\s&,;'"`)\]}]+"""
# A quoted value runs to its closing quote, past escaped ones (or to the end of the
# line when it has none).
_QUOTED = r"""(?P<q>["'])(?:\\.|(?!(?P=q))[^\\\r\n])*(?P=q)?"""
_NAME = r"[\w.-]"


# One row per kind of secret: what it is, the lowercase substrings without which it
# cannot be there, its pattern, and what is left of it.
Row = tuple[str, tuple[str, ...], str, str]

ROWS: tuple[Row, ...] = (
    (
        "URL userinfo password",
        ("://",),
        # The password runs to the last `@` of the address; it may hold `:` and `/`,
        # but not `://`, so a scan never crosses into the next URL.
        r"(?i)(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^\s:/\"'<>]*:)"
        r"(?:[^\s:\"'<>]|:(?!//))*@",
        rf"\g<head>{MASK}@",
    ),
    (
        "Authorization value, any scheme",
        ("authorization",),
        rf"(?i)(?P<head>authorization[\"']?[ \t]*[:=][ \t]*[\"']?)"
        rf"(?:[a-z][\w.+-]*[ \t]+)?{_VALUE}",
        rf"\g<head>{MASK}",
    ),
    (
        "Bearer token",
        ("bearer",),
        rf"(?i)(?<![\w-])(?P<head>bearer)[ \t]+{_VALUE}",
        rf"\g<head> {MASK}",
    ),
    (
        "value of a key named like a secret",
        _KEY_WORDS,
        # `Error`, `Exception` and `Warning` end a class name (`KeyError: 'x'`), not a key.
        rf"(?i)(?<!{_NAME})(?={_NAME}*?{_KEY_WORD})(?P<head>{_NAME}+)"
        r"(?<!error)(?<!exception)(?<!warning)"
        rf"(?P<sep>[\"']?[ \t]*(?:[:=]>?)[ \t]*)(?:{_QUOTED}|{_VALUE})",
        rf"\g<head>\g<sep>\g<q>{MASK}\g<q>",
    ),
    (
        "command-line option named like a secret",
        _KEY_WORDS,
        rf"(?i)(?<!{_NAME})(?=--{_NAME}*?{_KEY_WORD})(?P<head>--{_NAME}+[ \t]+)"
        rf"(?:{_QUOTED}|{_VALUE})",
        rf"\g<head>\g<q>{MASK}\g<q>",
    ),
    (
        "OpenAI/Anthropic-style key",
        ("sk-",),
        r"(?<![A-Za-z0-9_-])(?P<head>sk-)[A-Za-z0-9_-]{20,}",
        rf"\g<head>{MASK}",
    ),
    (
        "GitHub token",
        ("gh", "github_pat_"),
        r"(?<![A-Za-z0-9_])(?P<head>gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}",
        rf"\g<head>{MASK}",
    ),
    (
        "Slack token",
        ("xox",),
        r"(?<![A-Za-z0-9_-])(?P<head>xox[abprs]-)[A-Za-z0-9-]{10,}",
        rf"\g<head>{MASK}",
    ),
    (
        "AWS access key id",
        ("akia", "asia"),
        r"(?<![A-Za-z0-9])(?P<head>AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        rf"\g<head>{MASK}",
    ),
    (
        "JSON Web Token",
        ("eyj",),
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
        MASK,
    ),
    (
        "email address",
        ("@", "%40"),
        r"(?<![\w.+%-])[\w.+%-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+",
        "<email>",
    ),
)

_TRIGGERS = frozenset(trigger for _, triggers, _, _ in ROWS for trigger in triggers)
_compiled: list[tuple[tuple[str, ...], re.Pattern[str], str]] = []


def _table() -> list[tuple[tuple[str, ...], re.Pattern[str], str]]:
    """`ROWS`, compiled on first use (a command that succeeds never needs `re`)."""
    if not _compiled:
        import re

        _compiled.extend((triggers, re.compile(pattern), sub) for _, triggers, pattern, sub in ROWS)
    return _compiled


def _without_home(message: str, home: str) -> str:
    """`home` replaced with `~` where it is a whole path, not the start of a longer name."""
    home = home.rstrip("/\\") or home
    if home in ("", os.sep, "/", "~") or home not in message:
        return message
    import re

    pattern = rf"(?<![\w.-]){re.escape(home)}(?![\w.-])"
    return re.sub(pattern, lambda _: "~", message)


def scrub(message: str, secrets: Iterable[str | None] = (), home: str | None = None) -> str:
    """`message` without secrets, emails or the home path, at most 300 characters.

    Known secrets (the API key, the email) are removed verbatim, longest first so
    a secret that holds another is not left half masked; then every row of
    `ROWS` masks the secrets we were not told about. The cut comes last, so it
    can never leave the start of a secret the rows would have recognised whole.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        message = message.replace(secret, MASK)
    message = _without_home(message, home if home is not None else os.path.expanduser("~"))
    # A row leaves only text that was there, or a mask, so no row adds a trigger.
    lowered = message.lower()
    present = {trigger for trigger in _TRIGGERS if trigger in lowered}
    for triggers, pattern, replacement in _table():
        if not present.isdisjoint(triggers):
            message = pattern.sub(replacement, message)
    message = message.strip()
    if len(message) > MAX_ERROR_LENGTH:
        message = message[: MAX_ERROR_LENGTH - 3] + "..."
    return message
