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
    ACCEPT_FD_ENV,
    API_KEY_ENV,
    HOST_ENV,
    OUTBOX_ENV,
    SENDER_ENV,
    TAKE_ACCEPT,
    TIMINGS_ENV,
    WORK_DIR_ENV,
    debug_enabled,
    in_sender,
    posthog_api_key,
    posthog_host,
)
from arcade_usage._events import Message, alias_message, make_message
from arcade_usage._outbox import Outbox, timings_from

ALIAS_TIMEOUT = 2.0
MIN_REQUEST_SECONDS = 0.1
ABANDON_GRACE = 0.1
"""How long past its timeout the alias's request is waited for before it is abandoned."""
MIN_ALIAS_WAIT = 0.25

# Windows: no console window, not tied to the parent's console or Ctrl+C.
WINDOWS_FLAGS = 0x00000008 | 0x00000200 | 0x08000000  # DETACHED, NEW_PROCESS_GROUP, NO_WINDOW


class UsageService:
    """Sends usage events to PostHog without making the caller wait.

    `host`, `api_key` and `work_dir` default to `ARCADE_USAGE_POSTHOG_HOST`,
    `ARCADE_USAGE_POSTHOG_API_KEY` and `ARCADE_WORK_DIR` (read when used, so a
    service made at import time still honours the environment of the call).
    Thread-safe: calls share only files and the outbox's per-process state, which holds
    no lock across file I/O.
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
        """The outbox of `work_dir` (else of `ARCADE_WORK_DIR` now). Its per-process state
        belongs to the directory: every Outbox of this process viewing it shares it."""
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
        """File `message` in the outbox, then start a sender unless one accepts already.

        The message is on disk before any other process is asked to carry it. When
        it cannot be filed (a full disk, an unwritable outbox), nothing is started.
        """
        if debug_enabled():
            _print_debug(message)
            return
        try:
            outbox = self.outbox
            timings = timings_from(os.environ.get(TIMINGS_ENV))
            outbox.deliver(
                message,
                (self.host, self.api_key),
                lambda fd: self.start_sender(outbox, fd),
                timings=timings,
            )
        except OSError:
            pass  # nowhere to keep it: analytics never break the caller

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
            waiting = outbox.backoff_remaining((self.host, self.api_key)) > 0
        except OSError:
            outbox, waiting = None, False
        if timeout >= MIN_ALIAS_WAIT and not waiting:
            answer = _deliver_within(timeout, message, self.host, self.api_key)
            if answer != "failed":
                return answer == "delivered"
        if outbox is not None:
            with contextlib.suppress(OSError):
                outbox.put(message, (self.host, self.api_key), durable=True)
        return False

    def start_sender(self, outbox: Outbox, accept_fd: int | None) -> bool:
        """Start `python -m arcade_usage` in its own session, holding `accept_fd` (POSIX).

        stdio goes to the null device and no other descriptor is inherited, so a pipe
        the user reads from (`arcade ... | head`) closes when the command does. The
        working directory is `.arcade`, never the user's project, which `-m` would
        otherwise put first on the sender's import path. The user's Python
        configuration stays out too: no user site-packages or usercustomize (`-s`,
        unless arcade-usage itself is installed there), no PYTHONSTARTUP or
        PYTHONINSPECT, and warnings are ignored rather than turned into errors.

        A bare thread waits for the child: a long-lived caller collects no zombies,
        and the Popen object is never garbage-collected while the sender runs (a
        ResourceWarning). `threading.Thread.start()` would wait for the new thread to
        be scheduled, milliseconds on a busy machine.
        """
        import subprocess

        if not sys.executable:
            return False
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
        env[ACCEPT_FD_ENV] = TAKE_ACCEPT if accept_fd is None else str(accept_fd)
        try:
            process = subprocess.Popen(
                [sender_executable(sys.platform), *_isolation_flags(), "-m", "arcade_usage"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                cwd=os.path.dirname(outbox.directory),
                env=env,
                **spawn_options(sys.platform, accept_fd),
            )
        except OSError:  # no process to be had (limits): the event waits on disk
            return False
        _thread.start_new_thread(process.wait, ())
        return True


def sender_executable(platform: str, executable: str | None = None) -> str:
    """The interpreter for the sender: on Windows `pythonw.exe` beside it when there is one
    (no console window flashes), else this one."""
    executable = executable or sys.executable
    if platform == "win32":
        folder, name = os.path.split(executable)
        if name.lower() == "python.exe":
            windowless = os.path.join(folder, "pythonw.exe")
            if os.path.exists(windowless):
                return windowless
    return executable


def spawn_options(platform: str, accept_fd: int | None) -> dict[str, Any]:
    """Popen options for the sender: detached, with no console on Windows; elsewhere a new
    session, inheriting the accepting lock's descriptor and nothing else."""
    if platform == "win32":
        return {"creationflags": WINDOWS_FLAGS}
    options: dict[str, Any] = {"start_new_session": True}
    if accept_fd is not None:
        options["pass_fds"] = (accept_fd,)
    return options


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
