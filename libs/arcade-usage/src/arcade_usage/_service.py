"""UsageService: capture (handed over at once) and alias (synchronous) against PostHog."""

from __future__ import annotations

import _thread
import contextlib
import os
import sys
import threading
import time
from datetime import datetime
from typing import Any

from arcade_usage._consent import is_tracking_enabled
from arcade_usage._env import (
    API_KEY_ENV,
    EVENT_ENV,
    HOST_ENV,
    OUTBOX_ENV,
    SENDER_ENV,
    WORK_DIR_ENV,
    debug_enabled,
    in_sender,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._events import Message, alias_message, make_message
from arcade_usage._outbox import AT_WORK_GRACE, Outbox

ALIAS_TIMEOUT = 2.0
MIN_REQUEST_SECONDS = 0.1
ABANDON_GRACE = 0.1
"""How long past its timeout the alias's request is waited for before it is abandoned."""
MAX_ENVIRONMENT_CHARS = 32 * 1024
MIN_ALIAS_WAIT = 0.25

# Windows: no console window, not tied to the parent's console or Ctrl+C.
_WINDOWS_FLAGS = 0x00000008 | 0x00000200 | 0x08000000  # DETACHED, NEW_PROCESS_GROUP, NO_WINDOW


class UsageService:
    """Sends usage events to PostHog without making the caller wait.

    `host`, `api_key` and `work_dir` default to `ARCADE_USAGE_POSTHOG_HOST`,
    `ARCADE_USAGE_POSTHOG_API_KEY` and `ARCADE_WORK_DIR` (read when used, so a
    service made at import time still honours the environment of the call).
    Thread-safe: nothing is shared between calls but files.
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
        self._outbox: Outbox | None = None

    @property
    def host(self) -> str:
        return self._host or posthog_host()

    @property
    def api_key(self) -> str:
        return self._api_key or posthog_api_key()

    @property
    def outbox(self) -> Outbox:
        """The outbox of `work_dir`: one instance when it was given, else the environment's now."""
        if self._work_dir is None:
            return Outbox()
        if self._outbox is None:
            self._outbox = Outbox(self._work_dir)
        return self._outbox

    def capture(
        self,
        event_name: str,
        distinct_id: str,
        properties: dict[str, Any],
        is_anon: bool = False,
        *,
        timestamp: datetime | None = None,
    ) -> None:
        """Record the event and return at once; PostHog gets it from a detached sender.

        Anonymous events carry `$process_person_profile: false`, so PostHog keeps no
        person profile for someone who never logged in. Once this returns the event
        survives the caller's death (SIGKILL, `os._exit`).
        """
        if in_sender() or not is_tracking_enabled(self._work_dir):
            return
        message = make_message(
            event_name, distinct_id, properties, is_anon=is_anon, timestamp=timestamp
        )
        self.send(message)

    def send(self, message: Message) -> None:
        """Hand `message` over for delivery: to the uploader at work, else to a new sender.

        A sender is started only when none is at work or on its way (at most one per
        second per outbox) and no back-off is running. A message filed for an
        uploader is checked for again after filing: if the uploader left meanwhile,
        a sender is started for it, so nothing waits for a later command.
        """
        if debug_enabled():
            _print_debug(message)
            return
        try:
            outbox = self.outbox
            if not _too_large_for_environment(message) and self._start_sender_if_needed(
                outbox, message
            ):
                return
            outbox.put(message)
            self._start_sender_if_needed(outbox, None)
        except OSError:
            pass  # nowhere to keep it: analytics never break the caller

    def _start_sender_if_needed(self, outbox: Outbox, message: Message | None) -> bool:
        """Start a sender (with `message`) unless one is at work or on its way; True if started.

        One thread of this process starts it while the others file their messages
        for it; other processes see the start stamp, written as soon as it runs.
        """
        if _taken_care_of(outbox) or not outbox.starting.acquire(blocking=False):
            return False
        try:
            if _taken_care_of(outbox):
                return False
            self._start_sender(outbox, message)
            return True
        finally:
            outbox.starting.release()

    def alias(self, previous_id: str, distinct_id: str, *, timeout: float = ALIAS_TIMEOUT) -> bool:
        """Tell PostHog that `previous_id` and `distinct_id` are one person; wait `timeout` at most.

        Synchronous, so that the alias reaches PostHog before any event sent as
        `distinct_id`. If it cannot be delivered in time it is queued in the outbox,
        where it sorts ahead of every later event. With less than MIN_ALIAS_WAIT
        left, or during a back-off, it is queued straight away. Returns whether it
        was delivered.
        """
        if in_sender() or not is_tracking_enabled(self._work_dir):
            return False
        message = alias_message(previous_id, distinct_id)
        if debug_enabled():
            _print_debug(message)
            return True
        try:
            outbox = self.outbox
            waiting = outbox.backoff_remaining() > 0
        except OSError:
            outbox, waiting = None, False
        if timeout >= MIN_ALIAS_WAIT and not waiting:
            answer = _deliver_within(timeout, message, self.host, self.api_key)
            if answer != "failed":
                return answer == "delivered"
        if outbox is not None:
            with contextlib.suppress(OSError):
                outbox.put(message, durable=True)
        return False

    def _start_sender(self, outbox: Outbox, message: Message | None) -> None:
        """Start `python -m arcade_usage` in its own session, `message` in its environment.

        stdio goes to the null device and no descriptor is inherited, so a pipe the
        user reads from (`arcade ... | head`) closes when the command does. The working
        directory is `.arcade`, never the user's project, which `-m` would otherwise
        put first on the sender's import path. The user's Python configuration stays
        out too: no user site-packages or usercustomize (`-s`, unless arcade-usage
        itself is installed there), no PYTHONSTARTUP or PYTHONINSPECT, and warnings
        are ignored rather than turned into errors.

        A bare thread waits for the child: a long-lived caller collects no zombies,
        and the Popen object is never garbage-collected while the sender runs (a
        ResourceWarning). `threading.Thread.start()` would wait for the new thread to
        be scheduled, milliseconds on a busy machine.
        """
        import json
        import subprocess

        outbox.prepare()
        if not sys.executable:
            if message is not None:
                outbox.put(message)
            return
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP", "PYTHONINSPECT")}
        env.update(
            {
                HOST_ENV: self.host,
                API_KEY_ENV: self.api_key,
                OUTBOX_ENV: outbox.directory,
                WORK_DIR_ENV: os.path.dirname(outbox.directory),
                SENDER_ENV: "1",
                "PYTHONWARNINGS": "ignore",
            }
        )
        if message is not None:
            env[EVENT_ENV] = json.dumps(message, separators=(",", ":"))
        else:
            env.pop(EVENT_ENV, None)
        options: dict[str, Any] = {}
        if os.name == "nt":
            options["creationflags"] = _WINDOWS_FLAGS
        else:
            options["start_new_session"] = True
        try:
            process = subprocess.Popen(
                [sys.executable, *_isolation_flags(), "-m", "arcade_usage"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                cwd=os.path.dirname(outbox.directory),
                env=env,
                **options,
            )
        except OSError:  # no process to be had (limits, E2BIG): the event waits on disk
            if message is not None:
                outbox.put(message)
            return
        _thread.start_new_thread(process.wait, ())
        # For the other processes (this one's threads wait on `outbox.starting`).
        with contextlib.suppress(OSError):  # unstamped, a capture may start another
            outbox.mark_sender_started(process.pid)


def _taken_care_of(outbox: Outbox) -> bool:
    """Whether a message filed now will be uploaded without starting a sender for it.

    An uploader's last request under way is not a back-off: its lease is gone, so
    what is filed now is not in that request, and a sender must wait to take it.
    """
    return (
        outbox.uploader_at_work(grace=AT_WORK_GRACE)
        or outbox.sender_started_recently()
        or outbox.held_back()
    )


def _too_large_for_environment(message: Message) -> bool:
    """Whether `message` is too large to hand over in the environment (Linux: 128 KiB a string).

    Rare (the properties are short); such a message is filed for the sender instead.
    """
    return sum(len(str(v)) for v in message["properties"].values()) > MAX_ENVIRONMENT_CHARS


def _isolation_flags() -> list[str]:
    """`-s` (no user site-packages), unless that is where this package was installed."""
    import site

    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
    here = os.path.abspath(__file__)
    if user_site and here.startswith(os.path.join(os.path.abspath(user_site), "")):
        return []
    return ["-s"]


def _print_debug(message: Message) -> None:
    import json

    with contextlib.suppress(OSError, ValueError, AttributeError):  # no usable stderr
        print(json.dumps(message, sort_keys=True), file=sys.stderr, flush=True)


def _deliver_within(timeout: float, message: Message, host: str, api_key: str) -> str:
    """Post `message` on a daemon thread: "delivered", "refused" (for good) or "failed".

    The request gets what is left of `timeout` once the SDK is loaded (on a busy
    machine that alone takes a while), so that it ends in time rather than being
    abandoned while in flight: an abandoned request may still land after its copy
    was queued, and the alias would reach PostHog twice. The thread's deadline,
    a moment later, also bounds name resolution, which no request timeout covers.
    """
    from arcade_usage.exceptions import DeliveryError, MessageRefusedError

    deadline = time.monotonic() + timeout
    done = threading.Event()
    answer: list[str] = []

    def post() -> None:
        try:
            from arcade_usage._posthog import load_sdk, post_batch

            load_sdk()
            left = deadline - time.monotonic()
            if left < MIN_REQUEST_SECONDS:
                return  # no time left for a request: it is queued instead, never sent twice
            post_batch([message], host=host, api_key=api_key, timeout=left)
            answer.append("delivered")
        except MessageRefusedError:
            answer.append("refused")
        except DeliveryError:
            pass
        finally:
            done.set()

    threading.Thread(target=post, name="arcade-usage-alias", daemon=True).start()
    done.wait(timeout + ABANDON_GRACE)
    return answer[0] if answer else "failed"
