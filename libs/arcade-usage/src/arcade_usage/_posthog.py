"""What talks to PostHog: one request, with the posthog SDK, and what its answer means.

Every answer is one of three kinds. Delivered (2xx). Passing (no connection, a
timeout, 408, 429, 5xx): `DeliveryError`, with PostHog's `Retry-After` (an hour
at most) and whether the request timed out (it may have landed). Refused for
good (any other 4xx): `MessageRefusedError`. What follows from each (back-off,
bisection, order) is the protocol's: `_outbox`.
"""

from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING, Any

from arcade_usage.exceptions import DeliveryError, MessageRefusedError

if TYPE_CHECKING:
    from arcade_usage._events import Message

SEND_TIMEOUT = 5.0
"""Seconds for one request (connect and read) when no shorter time is left."""
MAX_RETRY_AFTER = 3600.0
"""A `Retry-After` beyond an hour (a day, `inf`, `1e309`, `nan`) counts as an hour."""


def load_sdk() -> None:
    """Import the posthog SDK (about 0.2 CPU-s) so that a timed request is timed alone."""
    from posthog import request  # noqa: F401


def post_batch(
    messages: list[Message], *, host: str, api_key: str, timeout: float = SEND_TIMEOUT
) -> None:
    """Send `messages` in one gzip request with the posthog SDK.

    Raises MessageRefusedError when PostHog refuses them for good, DeliveryError
    (with `retry_after`) when it might take them later. Retries are explicit: none
    here. The SDK's session retries reads twice on https (three times the
    timeout); an undelivered message stays in the outbox instead.
    """
    from posthog import request as posthog_request
    from posthog.version import VERSION

    batch = [with_library(m, VERSION) for m in messages]
    try:
        response = posthog_request.post(
            api_key, host, "/batch/", True, timeout, batch=batch, **_no_retries(posthog_request)
        )
    except Exception as exc:  # refused, reset, timed out, a malformed host: no answer
        from requests.exceptions import ReadTimeout

        raise DeliveryError(
            f"PostHog at {host} could not be reached", timed_out=isinstance(exc, ReadTimeout)
        ) from exc
    status = int(response.status_code)
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise DeliveryError(
            f"PostHog at {host} answered HTTP {status}",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    raise MessageRefusedError(f"PostHog at {host} refused the batch: HTTP {status}", status)


@functools.cache
def _no_retries(posthog_request: Any) -> dict[str, Any]:
    """Arguments that make `post` try once, worked out once per process: a retry-free
    session of our own (7.x takes `session=`). posthog 6.x has no such argument: there
    its shared session (used only by this short-lived sender, or for one alias) gets a
    retry-free adapter instead."""
    from requests import Session
    from requests.adapters import HTTPAdapter

    takes_session = "session" in posthog_request.post.__code__.co_varnames
    session = Session() if takes_session else getattr(posthog_request, "_session", None)
    if session is not None:
        adapter = HTTPAdapter(max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return {"session": session} if takes_session else {}


def with_library(message: Message, version: str) -> dict[str, Any]:
    """`message` as posthog's client posts it: with `$lib` and `$lib_version` (`version`)."""
    properties = {"$lib": "posthog-python", "$lib_version": version, **message["properties"]}
    return {**message, "properties": properties}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), an hour at most."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if math.isnan(seconds):
        return MAX_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
