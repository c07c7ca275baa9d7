"""Who a credential belongs to, asked of Arcade Cloud at most once per process, and the
on-disk memory of a lookup Cloud failed, which spares the next commands the wait.

An API key is looked up at `/api/v1/auth/validate`, an OAuth access token at
`/api/v1/auth/whoami`. Only Cloud's failures are remembered (refused, 5xx, no
answer within a fair wait once the request went out): a lookup whose own process
ran out of time before sending, or sent too late to hear back (a starved machine, a
dozen commands starting together), is `LookupNotSentError`, and leaves a logged-in
user's next commands free to try.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from arcade_identity._files import read_regular, write_atomic
from arcade_identity.exceptions import (
    InvalidApiKeyError,
    LookupNotSentError,
    PrincipalLookupError,
)

if TYPE_CHECKING:
    import httpx

VALIDATE_PATH = "/api/v1/auth/validate"
WHOAMI_PATH = "/api/v1/auth/whoami"
API_KEY = "api_key"
ACCESS_TOKEN = "access_token"
LOOKUP_TIMEOUT = 2.0
CLOUD_FAIR_WAIT = 1.0
"""A request that went out with less than this left (or half the budget) and timed out
was not given a fair chance: that is the process's lack of time, not Cloud's failure."""
FAILED_LOOKUP_MEMORY = 300.0
"""Seconds during which a failed lookup (with the same credentials and Cloud URL) is
not tried again."""

T = TypeVar("T")


class Principal:
    """The account behind an API key."""

    __slots__ = ("email", "principal_id")

    def __init__(self, principal_id: str, email: str | None = None) -> None:
        self.principal_id = principal_id
        self.email = email

    def __repr__(self) -> str:
        return f"Principal(principal_id={self.principal_id!r}, email={self.email!r})"


# One answer per (base URL, kind, credential) for the life of the process, so that
# `arcade login`'s own validation also serves as the tracker's lookup; a failure, for
# FAILED_LOOKUP_MEMORY seconds (a long-lived process asks again after that), with when.
_answers: dict[tuple[str, str, str], tuple[Principal | Exception, float]] = {}


def lookup_principal(
    secret: str,
    base_url: str,
    *,
    kind: str = API_KEY,
    timeout: float = LOOKUP_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> Principal:
    """Ask Arcade Cloud who `secret` (an API key, or with `kind="access_token"` an OAuth
    access token) belongs to, presenting it as a bearer token.

    `timeout` bounds the whole call, name resolution included. Raises
    InvalidApiKeyError for a refused credential, LookupNotSentError when the time
    ran out before the request went out, and PrincipalLookupError for anything
    else that keeps us from an answer. The outcome is cached for the process (a
    failure for FAILED_LOOKUP_MEMORY seconds).
    """
    cache_key = (base_url, kind, secret)
    known = _answers.get(cache_key)
    if known is None or (
        isinstance(known[0], Exception) and time.monotonic() - known[1] >= FAILED_LOOKUP_MEMORY
    ):
        path = WHOAMI_PATH if kind == ACCESS_TOKEN else VALIDATE_PATH
        sent: list[float] = []  # when the request went out (monotonic)
        try:
            answer: Principal | Exception = _within(
                timeout, sent, lambda: _request(secret, base_url + path, timeout, transport, sent)
            )
        except (InvalidApiKeyError, PrincipalLookupError) as exc:
            answer = exc
        _answers[cache_key] = (answer, time.monotonic())
    answer = _answers[cache_key][0]
    if isinstance(answer, Exception):
        raise answer
    return answer


def _request(
    secret: str,
    url: str,
    timeout: float,
    transport: httpx.BaseTransport | None,
    sent: list[float],
) -> Principal:
    http = _import_httpx()

    base_url = shown_url(url.rsplit("/api/", 1)[0])

    def went_out(request: httpx.Request) -> None:
        sent.append(time.monotonic())

    try:
        with http.Client(
            timeout=timeout, transport=transport, event_hooks={"request": [went_out]}
        ) as client:
            response = client.get(url, headers={"Authorization": f"Bearer {secret}"})
    except (UnicodeEncodeError, http.LocalProtocolError) as exc:
        # Refused before a byte went out: the only header of ours is the credential
        # (and the exception's text holds it: never shown).
        raise PrincipalLookupError(
            "the API key or token cannot be sent in an HTTP header: it holds a space,"
            " a line break, or a control or non-ASCII character"
        ) from exc
    except (http.UnsupportedProtocol, http.InvalidURL) as exc:
        raise PrincipalLookupError(f"{base_url} is not an http:// or https:// URL") from exc
    except Exception as exc:  # refused, reset, TLS: all mean "no answer"
        raise PrincipalLookupError(f"cannot reach Arcade Cloud at {base_url}") from exc
    if response.status_code in (401, 403):
        raise InvalidApiKeyError("Arcade Cloud rejected the API key")
    if response.status_code != 200:
        raise PrincipalLookupError(
            f"Arcade Cloud at {base_url} answered HTTP {response.status_code}"
        )
    try:
        body = response.json()
        data = body.get("data", body)
        principal_id = data.get("account_id") or data["principal_id"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PrincipalLookupError(f"Arcade Cloud at {base_url} sent an unexpected reply") from exc
    if not isinstance(principal_id, str) or not principal_id:
        raise PrincipalLookupError(f"Arcade Cloud at {base_url} sent no principal id")
    email = data.get("email")
    return Principal(principal_id, email if isinstance(email, str) else None)


def shown_url(url: str) -> str:
    """`url` as it may be shown: without the user name and password it may carry."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    return f"{scheme}://***@{netloc.rpartition('@')[2]}{slash}{path}"


def _import_httpx() -> ModuleType:
    """httpx, without the command-line client its package loads when it can (`httpx._main`:
    rich, click and pygments, 40% of its import, inside the lookup's budget); httpx then
    falls back to a stub `main`. A process that has httpx already keeps it as it is."""
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # import refuses it
        try:
            import httpx
        except ImportError:  # a release that cannot do without it: loaded after all
            pass
        finally:
            if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
                sys.modules.pop("httpx._main", None)
    import httpx

    return httpx


def _within(timeout: float, sent: list[float], call: Callable[[], T]) -> T:
    """Run `call` on a daemon thread and give up after `timeout` seconds.

    httpx's timeouts apply per phase and not to DNS; a thread with a deadline
    bounds the whole exchange. An abandoned thread dies with the process.

    Giving up is Cloud's failure only when Cloud had a fair chance to answer: the
    request went out (`sent` holds when) with at least CLOUD_FAIR_WAIT left. A
    process that spent its time importing and connecting on a starved machine, and
    sent its request too late to hear back, raises LookupNotSentError: not Cloud's
    failure, not remembered.
    """
    if timeout <= 0:
        raise LookupNotSentError("no time was left to ask Arcade Cloud")
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            failure.append(exc)

    deadline = time.monotonic() + timeout
    worker = threading.Thread(target=run, name="arcade-principal-lookup", daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    if not outcome:
        if not sent:
            raise LookupNotSentError(
                f"the request to Arcade Cloud could not be sent within {timeout:g} s"
            )
        if deadline - sent[0] < min(CLOUD_FAIR_WAIT, timeout / 2):
            raise LookupNotSentError(
                f"the request to Arcade Cloud went out too late to be answered within {timeout:g} s"
            )
        raise PrincipalLookupError(f"Arcade Cloud did not answer within {timeout:g} s")
    return outcome[0]


class FailedLookups:
    """`principal_lookup.json`: the last lookup that failed, and for which credentials.

    An offline user's commands then pay one stat and one small read for five
    minutes, not a YAML parse and a 2 s wait each. A lookup with other
    credentials (a new login) or another Cloud URL is not held back.
    """

    def __init__(
        self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._clock = clock

    def recent(self, attempt: dict[str, Any]) -> bool:
        """Whether a lookup of this very `attempt` failed less than five minutes ago."""
        try:
            found = read_regular(self.path, limit=4096)
            record = json.loads(found[0]) if found else {}
            failed_at = float(record["failed_at"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return False
        if not isinstance(record, dict):
            return False
        same = record.get("attempt") == attempt
        return same and 0 <= self._clock() - failed_at < FAILED_LOOKUP_MEMORY

    def remember(self, attempt: dict[str, Any]) -> None:
        data = json.dumps({"failed_at": self._clock(), "attempt": attempt}).encode()
        # If this cannot be written, the next command simply tries again.
        with contextlib.suppress(OSError):
            try:
                write_atomic(self.path, data)
            except OSError:
                # A directory in its place (a rename cannot replace one) would have every
                # command of an outage wait for Cloud again: it is moved aside, kept whole.
                if not stat.S_ISDIR(os.lstat(self.path).st_mode):
                    raise
                os.rename(self.path, f"{os.fspath(self.path)}.{os.urandom(4).hex()}.displaced")
                write_atomic(self.path, data)
