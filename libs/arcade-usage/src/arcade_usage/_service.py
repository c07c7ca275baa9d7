"""UsageService: capture (detached) and alias (synchronous) against PostHog."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from arcade_identity._files import ensure_private_dir
from arcade_usage._consent import is_tracking_enabled
from arcade_usage._outbox import Message, Outbox
from arcade_usage._settings import (
    API_KEY_ENV,
    HOST_ENV,
    OUTBOX_ENV,
    debug_enabled,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._spawn import spawn_sender

ALIAS_TIMEOUT = 2.0
MIN_ALIAS_WAIT = 0.25


class UsageService:
    """Sends usage events to PostHog without making the caller wait.

    `host`, `api_key` and `work_dir` default to `ARCADE_USAGE_POSTHOG_HOST`,
    `ARCADE_USAGE_POSTHOG_API_KEY` and `ARCADE_WORK_DIR` (read when used, so a
    service made at import time still honours the environment of the call).
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        api_key: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._host = host
        self._api_key = api_key
        self._work_dir = work_dir

    @property
    def host(self) -> str:
        return self._host or posthog_host()

    @property
    def api_key(self) -> str:
        return self._api_key or posthog_api_key()

    @property
    def outbox(self) -> Outbox:
        return Outbox(self._work_dir)

    def capture(
        self,
        event_name: str,
        distinct_id: str,
        properties: dict[str, Any],
        is_anon: bool = False,
        *,
        timestamp: datetime | None = None,
    ) -> None:
        """Hand the event to a detached sender and return at once.

        Anonymous events carry `$process_person_profile: false`, so PostHog keeps no
        person profile for someone who never logged in.
        """
        if not is_tracking_enabled(self._work_dir):
            return
        properties = dict(properties)
        if is_anon:
            properties["$process_person_profile"] = False
        message = _message(event_name, distinct_id, properties, timestamp)
        if debug_enabled():
            _print_debug(message)
            return
        outbox = self.outbox
        directory = outbox.directory.parent  # `.arcade`: the sender's working directory
        env = {
            HOST_ENV: self.host,
            API_KEY_ENV: self.api_key,
            OUTBOX_ENV: os.fspath(outbox.directory),
        }
        if self._work_dir is not None:
            env["ARCADE_WORK_DIR"] = os.fspath(self._work_dir)
        try:
            ensure_private_dir(directory)
            spawn_sender(message, cwd=directory, env=env)
        except OSError:
            pass  # analytics never break the command

    def alias(self, previous_id: str, distinct_id: str, *, timeout: float = ALIAS_TIMEOUT) -> bool:
        """Tell PostHog that `previous_id` and `distinct_id` are one person; wait `timeout` at most.

        Synchronous, so that the alias reaches PostHog before any event sent as
        `distinct_id`. If it cannot be delivered in time it is queued in the outbox,
        where it sorts ahead of every later event. With less than MIN_ALIAS_WAIT
        left it is queued straight away (loading the SDK alone takes about that).
        Returns whether it was delivered.
        """
        if not is_tracking_enabled(self._work_dir):
            return False
        message = _message(
            "$create_alias",
            previous_id,
            {"distinct_id": previous_id, "alias": distinct_id},
            None,
        )
        if debug_enabled():
            _print_debug(message)
            return True
        if timeout >= MIN_ALIAS_WAIT and _deliver_within(timeout, message, self.host, self.api_key):
            return True
        with contextlib.suppress(OSError):
            self.outbox.put(message)
        return False


def _message(
    event: str, distinct_id: str, properties: dict[str, Any], timestamp: datetime | None
) -> Message:
    when = timestamp or datetime.now(timezone.utc)
    return {
        "event": event,
        "distinct_id": distinct_id,
        "properties": properties,
        "timestamp": when.isoformat(),
        "uuid": str(uuid.uuid4()),
    }


def _print_debug(message: Message) -> None:
    print(json.dumps(message, sort_keys=True), file=sys.stderr, flush=True)


def _deliver_within(timeout: float, message: Message, host: str, api_key: str) -> bool:
    """Post `message` on a daemon thread; True only if PostHog took it within `timeout`.

    The request's own timeout does not cover name resolution, the thread's deadline
    does. A request that outlives the deadline is abandoned; the outbox copy has the
    same uuid, so a late arrival of both is one event to PostHog.
    """
    from arcade_usage._delivery import post_batch
    from arcade_usage.exceptions import DeliveryError

    done = threading.Event()
    delivered: list[bool] = []

    def post() -> None:
        try:
            post_batch([message], host=host, api_key=api_key, timeout=timeout)
            delivered.append(True)
        except DeliveryError:
            pass
        finally:
            done.set()

    threading.Thread(target=post, name="arcade-usage-alias", daemon=True).start()
    done.wait(timeout)
    return bool(delivered)
