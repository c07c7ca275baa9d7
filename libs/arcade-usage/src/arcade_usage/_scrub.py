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
WINDOW = 4096
"""Characters of a message that are scrubbed; the rest is cut unread."""
CUT = "..."

# `passw` is password, passwd (and Passwort); `auth` also finds `authorization`.
_KEY_WORDS = ("key", "token", "secret", "passw", "auth", "credential", "signature")
_KEY_WORD = r"(?:key|token|secret|passw|auth|credential|signature)"
# What ends a value: whitespace, `&` `,` `;`, a quote or backtick, a closing bracket.
_VALUE = r"""[^\s&,;'"`)\]}]+"""
# A quoted value runs to its closing quote, past escaped ones (or to the end of the
# line when it has none).
_QUOTED = r"""(?P<q>["'])(?:\\.|(?!(?P=q))[^\\\r\n])*(?P=q)?"""
# A value that is a list, tuple or mapping (`{'api_key': ['x']}`) goes to the last
# closing bracket of that kind on its line (or the end of the line): whatever is
# nested in it goes with it, and what follows it on the line may too.
_BRACKETED = r"\[(?:[^\r\n]*\]|[^\r\n]*)|\((?:[^\r\n]*\)|[^\r\n]*)|\{(?:[^\r\n]*\}|[^\r\n]*)"
_NAME = r"[\w.-]"
# A name ending so is a class name (`KeyError: 'x'`), not a key.
_NOT_A_KEY = r"(?<!error)(?<!exception)(?<!warning)"


# One row per kind of secret: what it is, the lowercase substrings without which it
# cannot be there, its pattern, and what is left of it.
Row = tuple[str, tuple[str, ...], str, str]

ROWS: tuple[Row, ...] = (
    (
        "PEM private key block",
        ("private key",),
        # From BEGIN to its END, or to the end of the text (a block the window cuts).
        r"(?i)(?P<begin>-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)[\s\S]*?"
        r"(?P<end>-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        rf"\g<begin>{MASK}\g<end>",
    ),
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
        "Cookie and Set-Cookie value",
        ("cookie",),
        # A cookie header holds `name=value; name=value; attributes`: all of it goes,
        # to its closing quote or the end of the line.
        r"""(?i)(?<![\w-])(?P<head>(?:set-)?cookies?["']?[ \t]*[:=][ \t]*)"""
        rf"(?:{_QUOTED}|[^\r\n]+)",
        rf"\g<head>\g<q>{MASK}\g<q>",
    ),
    (
        "YAML value of a key named like a secret",
        _KEY_WORDS,
        # A key at the start of a line (in a list item, quoted or not, spaces before
        # the colon): its value is the rest of the line, tags, anchors, quotes and
        # spaces included, and every line below indented further (a block scalar
        # `|` or `>`, a plain scalar over several lines, a nested mapping).
        # Authorization has its own row, which keeps the words after the credential.
        rf"(?im)^(?P<indent>[ \t]*)(?P<head>(?:-[ \t]+)?[\"']?"
        rf"(?!(?:proxy-)?authorization\b)(?={_NAME}*?{_KEY_WORD}){_NAME}+{_NOT_A_KEY}"
        r"""["']?[ \t]*:)(?=[ \t]|$)[^\r\n]*"""
        r"(?:\r?\n(?:(?P=indent)[ \t]+[^\r\n]*|[ \t]*(?=\r?\n)))*",
        rf"\g<indent>\g<head> {MASK}",
    ),
    (
        "value of a key named like a secret",
        _KEY_WORDS,
        # `Error`, `Exception` and `Warning` end a class name (`KeyError: 'x'`), not a key.
        rf"(?i)(?<!{_NAME})(?={_NAME}*?{_KEY_WORD})(?P<head>{_NAME}+){_NOT_A_KEY}"
        rf"(?P<sep>[\"']?[ \t]*(?:[:=]>?)[ \t]*)(?:{_QUOTED}|{_BRACKETED}|{_VALUE})",
        rf"\g<head>\g<sep>\g<q>{MASK}\g<q>",
    ),
    (
        "quoted value after a word naming a password",
        ("passw",),
        # `password 'x'`: a space instead of `:` or `=`, then a quoted value. Only after
        # a password: after the other words it is as often a name (`Secret 'GITHUB_TOKEN'
        # not found`, `unknown token 'EOF'`, `missing key 'profile'`).
        rf"(?i)(?<!{_NAME})(?={_NAME}*?passw)(?P<head>{_NAME}+)"
        rf"{_NOT_A_KEY}(?P<sep>[ \t]+){_QUOTED}",
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
        "Stripe secret or restricted key",
        ("_live_", "_test_"),
        r"(?<![A-Za-z0-9_])(?P<head>(?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{8,}",
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
        "AWS secret access key",
        ("",),  # no name to look for: forty characters of base64 alone
        # Exactly 40, with a digit, a lowercase and an uppercase letter (a git hash
        # or a path segment has not all three; a random key misses one 1 time in 1,000).
        r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[0-9])(?=[A-Za-z0-9/+]{0,39}[a-z])"
        r"(?=[A-Za-z0-9/+]{0,39}[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        MASK,
    ),
    (
        "Google API key",
        ("aiza",),
        r"(?<![A-Za-z0-9_-])(?P<head>AIza)[A-Za-z0-9_-]{35,}",
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


def scrub(message: object, secrets: Iterable[str | None] = (), home: str | None = None) -> str:
    """`message` without secrets, emails or the home path, at most 300 characters.

    `message` may be anything a caller has (bytes, an exception: see
    `as_text`). Only its first `WINDOW` characters are read. Known secrets (the
    API key, the email) are removed verbatim, longest first so a secret that
    holds another is not left half masked; then every row of `ROWS` masks the
    secrets we were not told about. The cut comes last, so it can never leave
    the start of a secret the rows would have recognised whole.
    """
    from arcade_usage._events import as_text

    text = as_text(message, WINDOW + 1)
    cut = len(text) > WINDOW
    home = home if home is not None else os.path.expanduser("~")
    known = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
    if cut:
        text = _without_partial(text[:WINDOW], [*known, home])
    for secret in known:
        text = text.replace(secret, MASK)
    text = _without_home(text, home)
    # A row leaves only text that was there, or a mask, so no row adds a trigger.
    lowered = text.lower()
    present = {trigger for trigger in _TRIGGERS if trigger in lowered}
    for triggers, pattern, replacement in _table():
        if not present.isdisjoint(triggers):
            text = pattern.sub(replacement, text)
    if cut:
        # The last run of non-blank characters may be the start of a token, an email
        # or a path that its row could not recognise without its end.
        last_blank = max(text.rfind(c) for c in " \t\r\n")
        text = text[: max(last_blank, 0)].rstrip() + CUT
    text = text.strip()
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - len(CUT)] + CUT
    return text


def _without_partial(window: str, secrets: list[str]) -> str:
    """`window` without a tail that begins one of `secrets` (cut off by the window)."""
    for secret in secrets:
        for length in range(min(len(secret) - 1, len(window)), 0, -1):
            if window.endswith(secret[:length]):
                window = window[:-length]
                break
    return window
