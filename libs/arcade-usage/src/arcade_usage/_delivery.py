"""Posting messages to PostHog's batch endpoint with the posthog SDK."""

from __future__ import annotations

from typing import Any

from arcade_usage.exceptions import DeliveryError

SEND_TIMEOUT = 5.0
"""Seconds for one request (connect and read), in the detached sender."""


def post_batch(messages: list[dict[str, Any]], *, host: str, api_key: str, timeout: float) -> None:
    """Send `messages` in one request; raises DeliveryError unless PostHog took them.

    Retries are explicit: none here. The SDK's shared session retries reads twice
    on https (three times the timeout); an undelivered message instead stays in
    the outbox for the next sender.
    """
    import requests
    from posthog.request import batch_post
    from posthog.version import VERSION

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    batch = [_with_library(m, VERSION) for m in messages]
    try:
        batch_post(api_key, host, timeout=timeout, batch=batch, session=session)
    except Exception as exc:  # refused, timed out, 5xx, malformed host: all "not delivered"
        raise DeliveryError(f"PostHog at {host} did not accept {len(batch)} message(s)") from exc
    finally:
        session.close()


def _with_library(message: dict[str, Any], version: str) -> dict[str, Any]:
    properties = {"$lib": "posthog-python", "$lib_version": version, **message["properties"]}
    return {**message, "properties": properties}
