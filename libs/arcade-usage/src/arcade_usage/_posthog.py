"""Everything that talks to PostHog: one request, and the ordered upload of the outbox.

Every answer is one of three kinds. Delivered (2xx): the messages leave the
outbox. Passing (no connection, a timeout, 408, 429, 5xx): everything stays, and
the outbox records a back-off (exponential, never shorter than `Retry-After`)
that every process honours. Refused for good (any other 4xx): only the
message(s) PostHog refuses are dropped, found by splitting the batch, and the
rest is delivered in order; a key PostHog does not know (401, 403) refuses every
message alike, so the batch goes whole.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from arcade_usage._events import ALIAS, UNNAMED
from arcade_usage._outbox import AT_WORK_GRACE
from arcade_usage.exceptions import DeliveryError, MessageRefusedError

if TYPE_CHECKING:
    from arcade_usage._events import Message
    from arcade_usage._outbox import Outbox

SEND_TIMEOUT = 5.0
"""Seconds for one request (connect and read), in the detached sender."""
BATCH_SIZE = 500
REQUEST_INTERVAL = 1.0
"""While events keep coming, one request per this many seconds, not one per event."""
LINGER_SECONDS = 1.0
"""How long the uploader waits for more after the last message it saw."""
HANDOFF_SECONDS = 0.6
"""The lease ends this long before the last moment a request may start, so that what
was filed while it was fresh still gets its request."""
POLL_SECONDS = 0.05
MAX_RETRY_AFTER = 24 * 3600.0


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

    batch = [_with_library(m, VERSION) for m in messages]
    try:
        response = posthog_request.post(
            api_key, host, "/batch/", True, timeout, batch=batch, **_no_retries(posthog_request)
        )
    except Exception as exc:  # refused, reset, timed out, a malformed host: no answer
        raise DeliveryError(f"PostHog at {host} could not be reached") from exc
    status = int(response.status_code)
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise DeliveryError(
            f"PostHog at {host} answered HTTP {status}",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    raise MessageRefusedError(f"PostHog at {host} refused the batch: HTTP {status}", status)


def upload(
    outbox: Outbox,
    *,
    host: str,
    api_key: str,
    last_start: float,
    allowed: Callable[[], bool] = lambda: True,
    anon_id: Callable[[], str | None] = lambda: None,
    linger: float = LINGER_SECONDS,
    interval: float = REQUEST_INTERVAL,
    timeout: float = SEND_TIMEOUT,
) -> None:
    """Post what waits in `outbox`, oldest first; the caller holds the upload lock.

    Holds the outbox's lease while it takes new messages, and keeps at it while
    they come, until `linger` seconds pass with none, or the lease must end in time
    for a last request before `last_start` (a monotonic time after which no request
    may start: the hard exit never cuts one short, which could deliver its messages
    twice). Then, without the lease, it takes one last look. Stops at a passing
    failure, leaving everything for a later sender after the back-off, and as soon
    as `allowed()` says tracking was turned off meanwhile.
    """
    delivery = _Delivery(outbox, host, api_key, timeout, last_start, allowed, anon_id)
    with outbox.lease():
        seen_at = time.monotonic()
        next_request = 0.0
        while True:
            now = time.monotonic()
            if now >= last_start - HANDOFF_SECONDS:
                break
            names = outbox.names()
            if not names:
                if now - seen_at >= linger:
                    break
                time.sleep(POLL_SECONDS)
                continue
            seen_at = now
            if now < next_request and len(names) < BATCH_SIZE:
                time.sleep(min(POLL_SECONDS, next_request - now))
                continue
            next_request = now + interval
            # One batch a turn: the time check above then governs every request.
            if not delivery.send(outbox.prune()[:BATCH_SIZE]):
                if delivery.failed:
                    return
                break
    # The lease is gone. A process that saw it (trusted for at most AT_WORK_GRACE)
    # has filed what it filed by now: take it all.
    time.sleep(AT_WORK_GRACE + POLL_SECONDS)
    if delivery.send(outbox.prune()):
        outbox.reset_sequence()


class _Delivery:
    def __init__(
        self,
        outbox: Outbox,
        host: str,
        api_key: str,
        timeout: float,
        last_start: float,
        allowed: Callable[[], bool],
        anon_id: Callable[[], str | None],
    ) -> None:
        self.outbox = outbox
        self.failed = False
        self.allowed = allowed
        self.anon_id = anon_id
        self.host = host
        self.api_key = api_key
        self.timeout = timeout
        self.last_start = last_start

    def send(self, names: list[str]) -> bool:
        """Deliver `names` in order, in batches; False if it had to stop (failure, time)."""
        batch_names: list[str] = []
        batch: list[Message] = []
        for name in names:
            message = self.outbox.read(name)
            if message is None:
                continue
            if message["distinct_id"] == UNNAMED:
                named = self.anon_id()
                if named is None:
                    continue  # no identity yet: it waits for the next sender
                message = {**message, "distinct_id": named}
            batch_names.append(name)
            batch.append(message)
            # An alias ends its batch: what follows it is sent only once it is in.
            if len(batch) == BATCH_SIZE or message["event"] == ALIAS:
                if not self._post(batch_names, batch):
                    return False
                batch_names, batch = [], []
        return not batch or self._post(batch_names, batch)

    def _post(self, names: list[str], batch: list[Message]) -> bool:
        if time.monotonic() > self.last_start or not self.allowed():
            return False
        # Counted as failed until it is known not to be: an uploader killed mid-request
        # (the hard exit during a DNS lookup that never ends, SIGKILL) leaves this
        # back-off behind, so the next commands do not each start a sender to hang too.
        self.outbox.back_off_pending(self.timeout + HANDOFF_SECONDS)
        try:
            post_batch(batch, host=self.host, api_key=self.api_key, timeout=self.timeout)
        except MessageRefusedError as exc:
            if len(batch) == 1 or exc.status in (401, 403):
                self._remove(names)
                self.outbox.clear_backoff()
                return True
            half = len(batch) // 2
            return self._post(names[:half], batch[:half]) and self._post(names[half:], batch[half:])
        except DeliveryError as exc:
            self.outbox.back_off(exc.retry_after)
            self.failed = True
            return False
        self._remove(names)
        self.outbox.clear_backoff()
        return True

    def _remove(self, names: list[str]) -> None:
        for name in names:
            self.outbox.remove(name)


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


def _with_library(message: Message, version: str) -> dict[str, Any]:
    properties = {"$lib": "posthog-python", "$lib_version": version, **message["properties"]}
    return {**message, "properties": properties}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), capped at a day."""
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
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
